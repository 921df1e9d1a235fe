"""Reward specs: a named, versioned definition of how feedback becomes a reward.

Specs are declared in ``rewardloop.yaml`` (section ``rewards``) or built in code; both are the one
definition :class:`rewardloop.config.RewardSpecConfig`, which checks every field and what one field
cannot say (a latency spec needs ``options.target_ms``, a weighted spec needs weights).
:class:`RewardSpec` is that definition, immutable, raising :class:`RewardError` when built in code.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import ConfigDict, ValidationError

from rewardloop.config.sections import REWARD_FUNCTIONS, RewardCombine, RewardScale, RewardSpecConfig
from rewardloop.rewards.functions import RewardError

Scale = RewardScale
Combine = RewardCombine

#: The reward functions a spec can name, and what each computes (defined once, in the config schema).
FUNCTIONS: dict[str, str] = REWARD_FUNCTIONS


class UnknownSpecError(RewardError, KeyError):
    """No reward spec of that name (the message lists the known ones)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class RewardSpec(RewardSpecConfig):
    """A named, versioned reward definition: a ``rewards:`` entry of ``rewardloop.yaml``, immutable.

    The fields and their checks are :class:`rewardloop.config.RewardSpecConfig`'s (one definition);
    built in code, a bad spec raises :class:`RewardError` naming the field.

    Parameters
    ----------
    name : str
        Rewards carry it; ``(name, version)`` identifies a compiled reward.
    function : str
        One of :data:`FUNCTIONS`.
    version : int, default 1
        Bump it whenever the definition changes: rewards of different versions live side by side.
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

    model_config = ConfigDict(extra="forbid", frozen=True)

    def __init__(self, name: str, **fields: Any) -> None:
        try:
            super().__init__(name=name, **fields)
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            msg = str(first["msg"]).removeprefix("Value error, ")
            raise RewardError(f"reward spec {name!r}: {where + ': ' if where else ''}{msg}") from None

    @property
    def key(self) -> tuple[str, int]:
        return (self.name, self.version)

    @property
    def target_ms(self) -> float:
        return float(self.options["target_ms"])

    @classmethod
    def from_config(cls, cfg: RewardSpecConfig) -> RewardSpec:
        """The spec a ``rewards:`` entry of ``rewardloop.yaml`` declares."""
        return cfg if isinstance(cfg, RewardSpec) else cls(cfg.name, **cfg.model_dump(exclude={"name"}))


def find_spec(specs: Iterable[RewardSpecConfig], name: str) -> RewardSpec:
    """The spec called ``name``; :class:`UnknownSpecError` listing the known names otherwise."""
    known: list[str] = []
    for s in specs:
        if s.name == name:
            return RewardSpec.from_config(s)
        known.append(s.name)
    raise UnknownSpecError(f"no reward spec named {name!r} (known: {', '.join(known) or 'none'})")


__all__ = ["FUNCTIONS", "Combine", "RewardSpec", "Scale", "UnknownSpecError", "find_spec"]
