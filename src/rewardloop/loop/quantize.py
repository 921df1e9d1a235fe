"""Register an int8 copy of a registered generator as a version of its own.

The int8 version is a child of the version it was quantised from (``parent_version``), with the method
in its config, so the registry's lineage says what it is; it is served, evaluated, canaried and
rolled back like any other version. Nothing is registered unless the whole copy was written: the
quantised policy is saved to a temporary folder, which the registry copies and checksums.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from rewardloop.policies.contract import PolicyInputError
from rewardloop.policies.int8 import QUANTIZATIONS, Quantization
from rewardloop.registry import Registry, RegistryError
from rewardloop.types import PolicyVersion


def register_quantized(
    registry: Registry,
    ref: str,
    method: Quantization = "int8-dynamic",
    version: str | None = None,
) -> PolicyVersion:
    """Quantise the generator ``ref`` names (``policy@version``, ``policy@alias``, ``policy``) with
    ``method`` and register the copy as ``version`` (default: the next patch). No alias moves: the copy
    becomes champion through a gate or an experiment, like any challenger.

    Raises :class:`~rewardloop.registry.RegistryError` for a reference that names nothing, a version
    that exists, a policy that is not a generator or is int8 already, or an unknown method.
    """
    from rewardloop.policies.generator import GeneratorPolicy

    if method not in QUANTIZATIONS:
        raise RegistryError(f"method: must be one of {', '.join(QUANTIZATIONS)}, got {method!r}")
    source = registry.resolve(ref)
    if source.kind != "generator":
        raise RegistryError(
            f"{ref}: {source.policy}@{source.version} is a {source.kind} policy, not a generator"
        )
    if version is not None and any(v.version == version for v in registry.versions(source.policy)):
        raise RegistryError(f"version: {source.policy}@{version} is registered already")
    new_version = version or registry.next_version(source.policy)
    try:
        policy = GeneratorPolicy.load(registry.artifact_path(f"{source.policy}@{source.version}"))
        quantized = policy.quantized(method, version=new_version)
    except PolicyInputError as err:
        raise RegistryError(f"{source.policy}@{source.version}: {err.reason}") from None
    with tempfile.TemporaryDirectory(prefix="rewardloop-int8-") as tmp:
        folder = quantized.save(Path(tmp) / "policy")
        pv = registry.register(
            source.policy,
            folder,
            "generator",
            new_version,
            config={"quantization": method, "quantized_from": source.version},
            parent_version=source.version,
            training_run_id=source.training_run_id,
        )
    return pv


__all__ = ["register_quantized"]
