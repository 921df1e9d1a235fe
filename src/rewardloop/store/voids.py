"""Void a piece of feedback: it stays stored, audited (who, when, why), and counts for nothing.

A voided row is left out of every reader (``read_feedback``, ``read_decisions(include_feedback=True)``,
the reward compiler's inputs), so training and rewards never see it again. Voiding deletes the stored
rewards of its decision in the same transaction (no reward built on it survives) and marks the
decision as changed for the next incremental compile (``touched_decisions``), which recompiles it from
its remaining feedback.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, delete, or_, select, update

from rewardloop.store.engine import Store
from rewardloop.store.repository import time_window
from rewardloop.store.rows import aware
from rewardloop.store.tables import DecisionRow, FeedbackRow, RewardRow
from rewardloop.types import TimeWindow, utcnow


class VoidError(ValueError):
    """A void was refused: ``kind`` is "not_found", "conflict" or "invalid"; the message names the field."""

    def __init__(self, kind: str, message: str, field: str) -> None:
        self.kind = kind
        self.field = field
        super().__init__(message)


@dataclass(frozen=True)
class VoidRecord:
    """The audit of one void: which row, who, when, why, and how many rewards were withdrawn."""

    feedback_id: str
    project: str
    decision_id: str
    voided_by: str
    voided_at: datetime
    reason: str
    rewards_withdrawn: int


def void_feedback(
    store: Store, feedback_id: str, *, reason: str, actor: str, project: str | None = None
) -> VoidRecord:
    """Void feedback ``feedback_id`` (of ``project``; any project if None and the id is unambiguous).

    Raises
    ------
    VoidError
        No such feedback (in that project), the id names rows of several projects, the row is voided
        already, or the reason or actor is empty.
    """
    if not reason.strip():
        raise VoidError("invalid", "reason: say why the feedback is voided", "reason")
    if not actor.strip():
        raise VoidError("invalid", "actor: say who voids the feedback", "actor")
    f = FeedbackRow
    now = utcnow()
    with store.engine.begin() as conn:
        query = select(f.project, f.decision_id, f.voided_at, f.voided_by).where(f.id == feedback_id)
        if project is not None:
            query = query.where(f.project == project)
        rows = conn.execute(query).all()
        where = f" in project {project!r}" if project is not None else ""
        if not rows:
            raise VoidError("not_found", f"feedback_id: no feedback {feedback_id!r}{where}", "feedback_id")
        if len(rows) > 1:
            names = ", ".join(sorted(r.project for r in rows))
            raise VoidError(
                "invalid",
                f"feedback_id: {feedback_id!r} names feedback of projects {names}; pass --project",
                "project",
            )
        (row,) = rows
        if row.voided_at is not None:
            raise VoidError(
                "conflict",
                f"feedback_id: {feedback_id!r} was voided already by {row.voided_by}",
                "feedback_id",
            )
        changed = conn.execute(
            update(f)
            .where(f.project == row.project, f.id == feedback_id, f.voided_at.is_(None))
            .values(voided_at=now, voided_by=actor, void_reason=reason)
        ).rowcount
        if not changed:  # voided by someone else between the read and the update
            raise VoidError("conflict", f"feedback_id: {feedback_id!r} was voided already", "feedback_id")
        withdrawn = conn.execute(delete(RewardRow).where(RewardRow.decision_id == row.decision_id)).rowcount
    return VoidRecord(feedback_id, row.project, row.decision_id, actor, now, reason, int(withdrawn or 0))


def touched_decisions(store: Store, policy: str | None, since: datetime) -> list[str]:
    """Ids of ``policy``'s decisions whose feedback came in, or was voided, since ``since`` (the
    incremental compile's work list)."""
    f = FeedbackRow
    came = and_(True, *time_window(store, f.created_at, TimeWindow(since)))
    voided = and_(True, *time_window(store, f.voided_at, TimeWindow(since)))
    query = select(f.decision_id).where(or_(came, voided))
    if policy is not None:
        owned = select(DecisionRow.id).where(DecisionRow.policy == policy)
        query = query.where(f.decision_id.in_(owned.scalar_subquery()))
    with store.engine.connect() as conn:
        return list(dict.fromkeys(conn.scalars(query.order_by(f.created_at))))


def voids(store: Store, decision_ids: Sequence[str] | None = None) -> list[VoidRecord]:
    """The audit trail of voided feedback (optionally of some decisions), oldest void first."""
    f = FeedbackRow
    query = select(f.id, f.project, f.decision_id, f.voided_by, f.voided_at, f.void_reason).where(
        f.voided_at.is_not(None)
    )
    if decision_ids is not None:
        query = query.where(f.decision_id.in_(list(decision_ids)))
    with store.engine.connect() as conn:
        rows = conn.execute(query.order_by(f.voided_at)).all()
    return [VoidRecord(r[0], r[1], r[2], r[3], aware(r[4]), r[5], 0) for r in rows]  # type: ignore[arg-type]


__all__ = ["VoidError", "VoidRecord", "touched_decisions", "void_feedback", "voids"]
