"""The HTTP service: the JSON API, the review queue, the dashboard and Prometheus metrics.

Build it with :func:`create_app`; ``rewardloop serve`` runs it under uvicorn.
"""

from rewardloop.service.app import create_app
from rewardloop.service.providers import (
    AliasMove,
    DecideInput,
    DecideOutcome,
    ExperimentInfo,
    PolicyAdmin,
    PolicyInfo,
    PolicyProvider,
    ProviderError,
)

__all__ = [
    "AliasMove",
    "DecideInput",
    "DecideOutcome",
    "ExperimentInfo",
    "PolicyAdmin",
    "PolicyInfo",
    "PolicyProvider",
    "ProviderError",
    "create_app",
]
