"""What each contributor gave in a time range: the people whose feedback the loop learns from.

A *contributor* is the ``rater_id`` of non-voided ``source="human"`` feedback (reviewers answering the
queue, users correcting the product); judge models, implicit signals and golden rows are not people.
The range is on the feedback's own time (when the contribution was made), ``[since, until)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, case, func, select

from rewardloop.store.engine import Store
from rewardloop.store.rows import utc
from rewardloop.store.tables import DecisionRow, FeedbackRow, ReviewMarkRow

#: Feedback kinds that name the right answer (a label or a set).
LABEL_KINDS = ("correction", "set_correction")


@dataclass(frozen=True)
class ContributorTotals:
    """One contributor's non-voided human feedback in the range."""

    rater: str
    #: Feedback rows of every kind.
    feedback: int
    #: Rows naming the right answer: ``correction`` and ``set_correction``.
    corrections: int
    #: Single-label corrections (``correction`` with a label) ...
    label_corrections: int
    #: ... of which named another action than the model chose (the model was wrong).
    changes: int
    #: Distinct decisions the rows are about.
    decisions: int
    #: Review-queue items the contributor answered with these rows.
    reviews: int
    first_at: datetime
    last_at: datetime


def contributor_totals(
    store: Store, project: str, since: datetime | None = None, until: datetime | None = None
) -> list[ContributorTotals]:
    """Every contributor of ``project`` with feedback in ``[since, until)``, most feedback first (ties:
    by name)."""
    f, d = FeedbackRow, DecisionRow
    label = and_(f.kind == "correction", f.label.is_not(None))
    where = [f.project == project, f.voided_at.is_(None), f.source == "human", f.rater_id.is_not(None)]
    if since is not None:
        where.append(f.created_at >= since)
    if until is not None:
        where.append(f.created_at < until)
    query = (
        select(
            f.rater_id,
            func.count(),
            func.sum(case((f.kind.in_(LABEL_KINDS), 1), else_=0)),
            func.sum(case((label, 1), else_=0)),
            func.sum(case((and_(label, f.label != d.action), 1), else_=0)),
            func.count(func.distinct(f.decision_id)),
            func.min(f.created_at),
            func.max(f.created_at),
        )
        .join(d, d.id == f.decision_id)
        .where(*where)
        .group_by(f.rater_id)
    )
    reviews = (
        select(ReviewMarkRow.reviewer, func.count())
        .join(f, and_(f.id == ReviewMarkRow.feedback_id, *where))
        .where(ReviewMarkRow.mark == "answer")
        .group_by(ReviewMarkRow.reviewer)
    )
    with store.engine.connect() as conn:
        answered = {str(r): int(n) for r, n in conn.execute(reviews)}
        rows = [
            ContributorTotals(
                str(rater), int(n), int(corr), int(lab), int(chg), int(dec),
                answered.get(str(rater), 0), utc(first), utc(last),
            )
            for rater, n, corr, lab, chg, dec, first, last in conn.execute(query)
        ]  # fmt: skip
    return sorted(rows, key=lambda r: (-r.feedback, r.rater))


__all__ = ["LABEL_KINDS", "ContributorTotals", "contributor_totals"]
