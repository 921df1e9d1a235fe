"""A challenger's offline evidence: what the golden set and off-policy evaluation said at its gate.

An experiment stores it when it starts (beside the gate report), and reads it twice: a canary that is
non-inferior online is promoted only when this evidence says it is *better* (the online test alone
needs far more traffic to show a small gain than to rule out a large loss), and a newer challenger
replaces a running canary only when its evidence beats the canary's.

Examples
--------
>>> e = OfflineEvidence(golden_accuracy=0.91, champion_golden_accuracy=0.88, ope_value=0.84,
...                     champion_value=0.82)
>>> e.better, round(e.golden_gain, 4)
(True, 0.03)
>>> e.beats(OfflineEvidence(0.90, 0.88))
True
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any


def _finite(name: str, value: float | None) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name}: must be a finite number, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class OfflineEvidence:
    """Golden-set accuracy and OPE value of a challenger and of the champion it was gated against.

    Parameters
    ----------
    golden_accuracy, champion_golden_accuracy : float
        Accuracy on the golden set of the challenger and of the champion.
    ope_value, champion_value : float, optional
        The challenger's off-policy value estimate (point) on the champion's logged traffic, scored as
        it would be served, and the champion's logged value on the same traffic.
    """

    golden_accuracy: float
    champion_golden_accuracy: float
    ope_value: float | None = None
    champion_value: float | None = None

    def __post_init__(self) -> None:
        for name in ("golden_accuracy", "champion_golden_accuracy", "ope_value", "champion_value"):
            _finite(name, getattr(self, name))
        if (self.ope_value is None) != (self.champion_value is None):
            raise ValueError("ope_value: give both the challenger's OPE value and the champion's, or neither")

    @property
    def golden_gain(self) -> float:
        return self.golden_accuracy - self.champion_golden_accuracy

    @property
    def ope_gain(self) -> float | None:
        if self.ope_value is None or self.champion_value is None:
            return None
        return self.ope_value - self.champion_value

    @property
    def better(self) -> bool:
        """Better than the champion: a higher golden accuracy, and no lower OPE value when there is one."""
        ope = self.ope_gain
        return self.golden_gain > 0 and (ope is None or ope >= 0)

    def beats(self, other: OfflineEvidence) -> bool:
        """Stronger evidence than ``other``'s (a running canary's): better than the champion itself,
        with a strictly higher golden accuracy. OPE values are not compared: they were estimated on
        different windows of traffic."""
        return self.better and self.golden_accuracy > other.golden_accuracy

    def summary(self) -> str:
        ope = self.ope_gain
        tail = "" if ope is None else f", OPE {self.ope_value:.4f} vs {self.champion_value:.4f} ({ope:+.4f})"
        return (
            f"golden accuracy {self.golden_accuracy:.4f} vs champion {self.champion_golden_accuracy:.4f} "
            f"({self.golden_gain:+.4f}){tail}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "better": self.better}

    @classmethod
    def from_mapping(cls, data: Any, source: str = "offline evidence") -> OfflineEvidence | None:
        """The evidence stored by :meth:`to_dict`; None when ``data`` is None (none was stored)."""
        if data is None:
            return None
        if not isinstance(data, Mapping):
            raise ValueError(f"{source}: must be an object, got {type(data).__name__}")
        try:
            return cls(
                data["golden_accuracy"],
                data["champion_golden_accuracy"],
                data.get("ope_value"),
                data.get("champion_value"),
            )
        except KeyError as err:
            raise ValueError(f"{source}: missing {err.args[0]!r}") from None


__all__ = ["OfflineEvidence"]
