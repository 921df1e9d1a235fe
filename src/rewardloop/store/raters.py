"""What each rater said: their latest label per decision, with the decision's text (for golden matching).

Labels come from non-voided ``correction`` feedback with a ``rater_id``; rows with ``source="golden"``
are truth, not a rater. The latest row of a (rater, decision) pair wins, as in the reward compiler.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from rewardloop.store.engine import Store
from rewardloop.store.repository import read_decisions


@dataclass(frozen=True)
class RaterLabel:
    """One rater's latest label on one decision."""

    rater: str
    decision_id: str
    label: str
    authority: float
    source: str
    created_at: datetime


@dataclass(frozen=True)
class RaterLabels:
    """Every rater's labels in a window, and the truth the store holds for some decisions."""

    labels: list[RaterLabel]
    golden: dict[str, str]  # decision id → label, from source="golden" feedback
    texts: dict[str, str]  # decision id → request text (to match a golden set file by text)


def read_rater_labels(
    store: Store, *, policy: str | None = None, since: datetime | None = None, until: datetime | None = None
) -> RaterLabels:
    """The labels of every rater on the decisions of ``policy`` (default: all) made in the window."""
    batch = read_decisions(
        store, policy=policy, since=since, until=until, with_feedback=True, include_feedback=True
    )
    latest: dict[tuple[str, str], RaterLabel] = {}
    golden: dict[str, str] = {}
    texts: dict[str, str] = {}
    for d in batch.decisions:
        if d.text is not None:
            texts[d.id] = d.text
        for f in sorted(batch.feedback.get(d.id, []), key=lambda f: f.created_at):
            if f.kind != "correction" or f.label is None:
                continue
            if f.source == "golden":
                golden[d.id] = f.label
            elif f.rater_id is not None:
                latest[(f.rater_id, d.id)] = RaterLabel(
                    f.rater_id, d.id, f.label, f.authority, f.source, f.created_at
                )
    return RaterLabels(list(latest.values()), golden, texts)


__all__ = ["RaterLabel", "RaterLabels", "read_rater_labels"]
