"""Shared data of the evaluation tests: stored decisions + feedback with four regressions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from rewardloop.store import Store, write_decisions, write_feedback
from rewardloop.types.records import Decision, Feedback

MONITOR_NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
ACTIONS = ("a", "b", "c", "d")


def _decisions(version, start, n, *, right, latency, conf, actions=ACTIONS):
    """n decisions every 30 minutes from ``start``; the first ``right`` get a confirming correction."""
    ds, fb = [], []
    for i in range(n):
        action = actions[i % len(actions)]
        dist = [conf if a == action else (1 - conf) / (len(ACTIONS) - 1) for a in ACTIONS]
        d = Decision(
            policy="intent",
            policy_version=version,
            kind="classifier",
            actions=ACTIONS,
            action=action,
            action_dist=dist,
            pscore=conf,
            latency_ms=latency,
            created_at=start + timedelta(minutes=30 * i),
        )
        ds.append(d)
        label = action if i < right else ("b" if action != "b" else "a")
        fb.append(Feedback(decision_id=d.id, kind="correction", label=label, created_at=d.created_at))
    return ds, fb


def fill_monitor_logs(store: Store) -> None:
    """intent@1: 39/40 right the day before, then 32/40 right, 600 ms, 99% confident, always 'a'.
    intent@2 (new today): 36/40 right, 30 ms, 90% confident, the four actions in turn."""
    now = MONITOR_NOW
    old, old_fb = _decisions("1", now - timedelta(hours=47), 40, right=39, latency=40.0, conf=0.9)
    cur, cur_fb = _decisions(
        "1", now - timedelta(hours=23), 40, right=32, latency=600.0, conf=0.99, actions=("a",)
    )
    v2, v2_fb = _decisions("2", now - timedelta(hours=23), 40, right=36, latency=30.0, conf=0.9)
    write_decisions(store, old + cur + v2)
    write_feedback(store, old_fb + cur_fb + v2_fb)
