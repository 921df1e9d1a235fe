"""The one metrics recorder every learner and reward model writes its ``history_`` with.

Stable-Baselines3's ``logger.record("train/clip_fraction", v)`` / ``logger.dump(step)`` and CleanRL's
``losses/approx_kl``: metrics are recorded under a namespace during a step, and ``dump`` closes the
step into one row of the history. The orchestration stores :meth:`MetricsRecorder.summary` (the last
value of every key) on the TrainingRun, so what a learner records reaches the run without probing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping


class MetricsRecorder:
    """Namespaced per-step metrics.

    Parameters
    ----------
    namespace : str
        Prefix of keys recorded without one (``"loss"`` → ``"train/loss"``).

    Examples
    --------
    >>> rec = MetricsRecorder()
    >>> rec.record_many({"loss": 0.5, "approx_kl": 0.01}, epoch=0)
    >>> rec.dump(1)["train/loss"]
    0.5
    >>> rec.summary()["train/approx_kl"]
    0.01
    """

    def __init__(self, namespace: str = "train") -> None:
        self.namespace = namespace
        self.history: list[dict[str, float]] = []
        self._current: dict[str, float] = {}

    def key(self, name: str) -> str:
        """``name`` with its namespace: ``epoch``/``step`` → ``time/``, others → ``<namespace>/``."""
        if "/" in name:
            return name
        return f"time/{name}" if name in ("epoch", "step") else f"{self.namespace}/{name}"

    def record(self, name: str, value: float) -> None:
        self._current[self.key(name)] = float(value)

    def record_many(self, metrics: Mapping[str, float], epoch: int | None = None) -> None:
        for name, value in metrics.items():
            self.record(name, value)
        if epoch is not None:
            self._current["time/epoch"] = float(epoch)

    def dump(self, step: int) -> dict[str, float]:
        """Close the step: one history row ``{"time/step": step, ...}``; returns it."""
        row = {"time/step": float(step), **self._current}
        self.history.append(row)
        self._current = {}
        return row

    def summary(self) -> dict[str, float]:
        """The last finite value of every key over the history (what a TrainingRun stores)."""
        return summarise(self.history)


def summarise(history: list[dict[str, float]]) -> dict[str, float]:
    """The last finite value of every key of ``history`` rows."""
    out: dict[str, float] = {}
    for row in history:
        for key, value in row.items():
            if isinstance(value, int | float) and math.isfinite(value):
                out[key] = float(value)
    return out


__all__ = ["MetricsRecorder", "summarise"]
