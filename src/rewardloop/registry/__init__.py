"""The registry layer: versions, checksummed artifacts on disk, aliases, promotion history, rollback.

>>> from rewardloop.registry import Registry, JsonGateReport  # doctest: +SKIP
"""

from rewardloop.registry.artifacts import ArtifactError, checksum
from rewardloop.registry.registry import (
    CHALLENGER,
    CHAMPION,
    GateReport,
    JsonGateReport,
    Registry,
    RegistryError,
    semver_key,
)

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "ArtifactError",
    "GateReport",
    "JsonGateReport",
    "Registry",
    "RegistryError",
    "checksum",
    "semver_key",
]
