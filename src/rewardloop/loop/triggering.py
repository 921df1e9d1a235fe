"""Triggered analysis of a champion/challenger stage: when it applies, the trigger-rate bound and τ.

:class:`rewardloop.loop.serving.ServingPath` with ``counterfactual=True`` flags every request of a live
experiment with whether the other variant would have served it otherwise; the verdict then compares
the arms on the triggered requests (:mod:`rewardloop.evaluation.sequential`, "Triggered analysis").
"""

from __future__ import annotations

from datetime import datetime

from rewardloop.config.sections import ExperimentsConfig
from rewardloop.evaluation.sequential import trigger_rate_upper
from rewardloop.store import Store
from rewardloop.store.experiments import trigger_counts
from rewardloop.types import Experiment


def stage_trigger(
    store: Store, exp: Experiment, since: datetime | None, config: ExperimentsConfig
) -> tuple[float, float] | None:
    """(upper bound on the trigger rate, τ of the triggered test) of the stage that began at
    ``since``, when every decision of a live two-variant stage carries the counterfactual flag and
    some are not triggered; None otherwise (the verdict compares all decisions).

    τ is ``config.tau`` / rate (capped at 1), fixed at the stage's first look: the experiment keeps
    it as ``tau_triggered`` in its state until the next stage, so the mixture of the sequential test
    does not move between looks.
    """
    if exp.shadow or len(exp.variants) != 2:
        return None
    counts = trigger_counts(store, exp.name, since)
    if not counts.complete or counts.triggered == counts.n:
        return None
    rate = trigger_rate_upper(counts.triggered, counts.n, config.alpha)
    stored = (exp.verdict or {}).get("tau_triggered")
    tau = float(stored) if isinstance(stored, int | float) else min(1.0, config.tau / rate)
    return rate, tau


__all__ = ["stage_trigger"]
