"""Compile rewards in the store: read feedback, run the pure compiler, write rewards.

Full mode compiles every decision with feedback in a policy/time window. Incremental mode compiles only
the decisions that received feedback since this spec version was last compiled (the newest reward's
time), reading *all* of their feedback, so a reward always reflects every row. Both are idempotent:
rewards are upserted on (decision, spec, version), so re-running changes nothing but their time.

Caveat of incremental mode: feedback written with a ``created_at`` older than the last compile (a
back-filled import) is not seen as new; run a full compile after such an import.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime

from rewardloop.rewards import CompileResult, RewardSpec, compile_feedback
from rewardloop.store import Store, write_rewards
from rewardloop.store.reward_compile import (
    DecisionView,
    FeedbackView,
    latest_reward_time,
    read_compile_inputs,
)
from rewardloop.store.voids import touched_decisions
from rewardloop.types import TimeWindow, utcnow

#: Decision ids per read in incremental mode (keeps each IN (...) list well under SQLite's limit).
ID_CHUNK = 5000


@dataclass
class CompileReport:
    """What :func:`compile_rewards` did."""

    spec: str
    spec_version: int
    mode: str  # "full" or "incremental"
    decisions: int = 0
    feedback_rows: int = 0
    written: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    since: datetime | None = None

    def summary(self) -> str:
        skipped = sum(self.skipped.values())
        why = "; ".join(f"{n} {reason}" for reason, n in sorted(self.skipped.items()))
        return (
            f"{self.spec} v{self.spec_version} ({self.mode}): {self.decisions} decisions with "
            f"{self.feedback_rows} feedback rows → {self.written} rewards written, {skipped} without reward"
            + (f" ({why})" if why else "")
            + f" in {self.seconds:.2f} s"
        )


def compile_rewards(
    store: Store,
    spec: RewardSpec,
    *,
    policy: str | None = None,
    window: TimeWindow = TimeWindow(),
    incremental: bool = False,
) -> CompileReport:
    """Compile ``spec``'s rewards for the decisions of ``policy`` created in ``window``.

    Parameters
    ----------
    store : Store
    spec : RewardSpec
    policy : str, optional
        Only this policy's decisions (default: every policy).
    window : TimeWindow, optional
        Window on the decisions' time (default: all of it).
    incremental : bool, default False
        Only decisions with feedback newer than this spec version's last compile (all of them the
        first time).

    Returns
    -------
    CompileReport

    Examples
    --------
    >>> from rewardloop.store import Store
    >>> report = compile_rewards(Store.open("sqlite://"), RewardSpec("thumbs", function="accuracy"))
    >>> report.written
    0
    """
    start = time.perf_counter()
    report = CompileReport(spec.name, spec.version, "incremental" if incremental else "full")
    watermark = latest_reward_time(store, spec.name, spec.version, policy) if incremental else None
    report.since = watermark
    # The rewards carry the time the read began: feedback written while this compile runs is newer,
    # so the next incremental compile picks it up.
    read_started = utcnow()
    decisions: list[DecisionView] = []
    feedback: dict[str, list[FeedbackView]] = {}
    if incremental and watermark is not None:
        touched = touched_decisions(store, policy, watermark)  # new feedback, or feedback voided
        for s in range(0, len(touched), ID_CHUNK):
            ds, fb = read_compile_inputs(store, policy=policy, window=window, ids=touched[s : s + ID_CHUNK])
            decisions.extend(ds)
            feedback.update(fb)
    else:
        decisions, feedback = read_compile_inputs(store, policy=policy, window=window)
    report.decisions = len(decisions)
    report.feedback_rows = sum(len(v) for v in feedback.values())
    result: CompileResult = compile_feedback(decisions, feedback, spec, created_at=read_started)
    if result.rewards:
        write_rewards(store, result.rewards)
    report.written = len(result.rewards)
    report.skipped = dict(result.skipped)
    report.seconds = time.perf_counter() - start
    return report


__all__ = ["CompileReport", "compile_rewards"]
