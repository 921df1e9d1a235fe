"""Reward specs: a named, versioned definition of how feedback becomes a reward.

Specs are declared in ``rewardloop.yaml`` (section ``rewards``, validated by
:class:`rewardloop.config.RewardSpecConfig`) and turned into a :class:`RewardSpec` here, which checks
what the YAML schema cannot (a latency spec needs ``options.target_ms``, a weighted spec needs weights).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from rewardloop.config import RewardSpecConfig
from rewardloop.config.sections import RewardFunctionName
from rewardloop.rewards.functions import RewardError

Scale = Literal["unit", "signed"]
Combine = Literal["authority_mean", "mean", "latest"]

#: The reward functions a spec can name, and what each computes (see docs/rewards.md).
FUNCTIONS: dict[str, str] = {
    "accuracy": "correct in [0, 1] (signed: 2·correct - 1)",
    "calibration": "1 - |confidence - correct|",
    "confidence": "confidence · (2·correct - 1), unit scale maps it to [0, 1]",
    "latency": "correct · (1 - 0.5 · max(0, (latency - target) / target)); needs options.target_ms",
    "multilevel": "roll-up of multi-level scores, levels weighted by `weights` (default equal)",
    "weighted": "Σ w_k · component_k / Σ w_k over named components (correct, calibration, latency, "
    "confidence, implicit, rating, preference, multilevel, or any multi-level score name)",
}
assert set(FUNCTIONS) == set(get_args(RewardFunctionName)), "config and rewards disagree on functions"


class UnknownSpecError(RewardError, KeyError):
    """No reward spec of that name (the message lists the known ones)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


@dataclass(frozen=True)
class RewardSpec:
    """A named, versioned reward definition.

    Parameters
    ----------
    name : str
        Rewards carry it; ``(name, version)`` identifies a compiled reward.
    version : int, default 1
        Bump it whenever the definition changes: rewards of different versions live side by side.
    function : str
        One of :data:`FUNCTIONS`.
    weights : mapping of str to float
        Component weights (``weighted``) or level weights (``multilevel``).
    scale : {"unit", "signed"}
        Output range: [0, 1] or [-1, 1].
    combine : {"authority_mean", "mean", "latest"}
        How several raters' feedback on one decision combine: authority-weighted mean (default), plain
        mean, or the most recent row alone.
    options : mapping
        Function options: ``target_ms`` (latency).

    Examples
    --------
    >>> spec = RewardSpec("thumbs", function="accuracy", scale="signed")
    >>> spec.key
    ('thumbs', 1)
    """

    name: str
    function: str
    version: int = 1
    weights: Mapping[str, float] = field(default_factory=dict)
    scale: Scale = "unit"
    combine: Combine = "authority_mean"
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise RewardError("name: a reward spec needs a non-empty name")
        where = f"reward spec {self.name!r}"
        if self.function not in FUNCTIONS:
            raise RewardError(f"{where}: function: unknown {self.function!r}; known: {', '.join(FUNCTIONS)}")
        if not isinstance(self.version, int) or self.version < 1:
            raise RewardError(f"{where}: version: must be an integer >= 1, got {self.version!r}")
        if self.scale not in get_args(Scale):
            raise RewardError(f"{where}: scale: must be unit or signed, got {self.scale!r}")
        if self.combine not in get_args(Combine):
            raise RewardError(
                f"{where}: combine: must be one of {', '.join(get_args(Combine))}, got {self.combine!r}"
            )
        for k, w in self.weights.items():
            if not (isinstance(w, int | float) and math.isfinite(w) and w >= 0):
                raise RewardError(f"{where}: weights.{k}: must be a number >= 0, got {w!r}")
        if self.weights and sum(self.weights.values()) <= 0:
            raise RewardError(f"{where}: weights: must not all be 0")
        if self.function == "weighted" and not self.weights:
            raise RewardError(f"{where}: weights: a weighted spec needs at least one component weight")
        if self.function == "latency" or "latency" in self.weights:
            target = self.options.get("target_ms")
            if not (isinstance(target, int | float) and math.isfinite(target) and target > 0):
                raise RewardError(f"{where}: options.target_ms: the latency reward needs a target > 0 ms")

    @property
    def key(self) -> tuple[str, int]:
        return (self.name, self.version)

    @property
    def target_ms(self) -> float:
        return float(self.options["target_ms"])

    @classmethod
    def from_config(cls, cfg: RewardSpecConfig) -> RewardSpec:
        """The spec a ``rewards:`` entry of ``rewardloop.yaml`` declares."""
        return cls(
            name=cfg.name,
            version=cfg.version,
            function=cfg.function,
            weights=dict(cfg.weights),
            scale=cfg.scale,
            combine=cfg.combine,
            options=dict(cfg.options),
        )


def find_spec(specs: Iterable[RewardSpec | RewardSpecConfig], name: str) -> RewardSpec:
    """The spec called ``name``; :class:`UnknownSpecError` listing the known names otherwise."""
    known: list[str] = []
    for s in specs:
        if s.name == name:
            return s if isinstance(s, RewardSpec) else RewardSpec.from_config(s)
        known.append(s.name)
    raise UnknownSpecError(f"no reward spec named {name!r} (known: {', '.join(known) or 'none'})")


__all__ = ["FUNCTIONS", "Combine", "RewardSpec", "Scale", "UnknownSpecError", "find_spec"]
