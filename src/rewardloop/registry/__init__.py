"""The registry layer: versions, checksummed artifacts on disk, aliases, promotion history, rollback.

Start at :class:`Registry`; ``docs/deploy.md`` walks through promotion, rollback and retention.
"""

from rewardloop.registry.artifacts import ArtifactError, checksum
from rewardloop.registry.registry import (
    CHALLENGER,
    CHAMPION,
    GateEvidence,
    JsonGateEvidence,
    Registry,
    RegistryError,
    RegistryNotFound,
    attributed_actor,
    semver_key,
)

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "ArtifactError",
    "GateEvidence",
    "JsonGateEvidence",
    "Registry",
    "RegistryError",
    "RegistryNotFound",
    "attributed_actor",
    "checksum",
    "semver_key",
]
