"""A reviewer's view of the queue: the page of items they may take, claimed as it opens; skips; and
the overlap items' answers, from which the reviewers' agreement is measured.

An item is *available* to a reviewer when it is not resolved, nobody else holds a live claim on it
(:func:`~rewardloop.store.review.claim_free`) and the reviewer has neither answered nor skipped it. An
overlap item (``answers_needed == 2``) that one reviewer answered is available to the others only.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, and_, exists, func, insert, select, update

from rewardloop.store.engine import Store
from rewardloop.store.insights import project_of_decision
from rewardloop.store.review import (
    CLAIM_MINUTES,
    REVIEW_STATUSES,
    ReviewEntry,
    ReviewError,
    _conflict,
    _marked,
    claim_free,
    get_review_entry,
)
from rewardloop.store.review_order import queue_order
from rewardloop.store.rows import decision_from_row, feedback_from_row, record_from_row
from rewardloop.store.tables import DecisionRow, FeedbackRow, ReviewItemRow, ReviewMarkRow
from rewardloop.types import Feedback, ReviewItem, new_id, utcnow


@dataclass(frozen=True, slots=True)
class QueueFilter:
    """Which items a reviewer asks for: a policy, a reason (``low_confidence``, ``audit``, …), a
    decision kind; None means any."""

    policy: str | None = None
    reason: str | None = None
    kind: str | None = None


def _available(reviewer: str, now: datetime, claim_minutes: float) -> ColumnElement[bool]:
    r, m = ReviewItemRow, ReviewMarkRow
    return and_(
        claim_free(reviewer, now, claim_minutes),
        ~exists().where(m.item_id == r.id, m.reviewer == reviewer),
    )


def _filtered(flt: QueueFilter) -> list[ColumnElement[bool]]:
    wanted = (
        (DecisionRow.policy, flt.policy),
        (ReviewItemRow.reason, flt.reason),
        (DecisionRow.kind, flt.kind),
    )
    return [column == value for column, value in wanted if value is not None]


def reviewer_queue(
    store: Store,
    project: str,
    reviewer: str,
    *,
    flt: QueueFilter | None = None,
    limit: int = 10,
    offset: int = 0,
    claim_minutes: float = CLAIM_MINUTES,
    staleness_per_day: float = 0.0,
) -> tuple[list[ReviewEntry], int]:
    """A page of the items available to ``reviewer`` (highest rank first — the priority plus
    ``staleness_per_day`` for every day waited, see :mod:`rewardloop.store.review_order` — oldest
    first among equals) and how many are available in all."""
    r, d = ReviewItemRow, DecisionRow
    where = [
        project_of_decision() == project,
        _available(reviewer, utcnow(), claim_minutes),
        *_filtered(flt or QueueFilter()),
    ]
    page = select(r, d).join(d, d.id == r.decision_id).where(*where)
    page = page.order_by(*queue_order(staleness_per_day)).limit(limit).offset(offset)
    total = select(func.count()).select_from(r).join(d, d.id == r.decision_id).where(*where)
    with store.session() as s:
        entries = [
            ReviewEntry(record_from_row(ReviewItem, i), decision_from_row(x)) for i, x in s.execute(page)
        ]
        return entries, int(s.execute(total).scalar_one())


def claim_page(
    store: Store, item_ids: Sequence[str], reviewer: str, project: str, claim_minutes: float = CLAIM_MINUTES
) -> int:
    """Claim-on-open: claim (or renew the claim on) each item of a page the reviewer opened that is
    still available to them; returns how many are now theirs (an item someone took meanwhile is
    left to them)."""
    if not item_ids:
        return 0
    r = ReviewItemRow
    now = utcnow()
    in_project = select(r.id).join(DecisionRow, DecisionRow.id == r.decision_id)
    in_project = in_project.where(project_of_decision() == project, r.id.in_(list(item_ids)))
    stmt = (
        update(r)
        .where(r.id.in_(in_project.scalar_subquery()), _available(reviewer, now, claim_minutes))
        .values(status="claimed", claimed_by=reviewer, claimed_at=now)
    )
    with store.engine.begin() as conn:
        return int(conn.execute(stmt).rowcount)


def skip_review_item(store: Store, item_id: str, reviewer: str, project: str) -> ReviewItem:
    """The reviewer passes on the item: it is not shown to them again, and their claim on it (if any)
    is released for the others. Skipping an item one answered, or skipped, is refused (``conflict``)."""
    entry = get_review_entry(store, item_id, project)
    if entry.item.status == "resolved":
        raise _conflict(store, item_id, project, reviewer)
    r = ReviewItemRow
    with store.engine.begin() as conn:
        if _marked(conn, item_id, reviewer) is not None:
            raise _conflict(store, item_id, project, reviewer)
        conn.execute(
            insert(ReviewMarkRow).values(
                id=new_id(),
                item_id=item_id,
                reviewer=reviewer,
                mark="skip",
                feedback_id=None,
                created_at=utcnow(),
            )
        )
        mine = and_(r.id == item_id, r.status == "claimed", r.claimed_by == reviewer)
        conn.execute(update(r).where(mine).values(status="open", claimed_by=None, claimed_at=None))
    return get_review_entry(store, item_id, project).item


def answer_key(fb: Feedback) -> Hashable:
    """What two reviewers' answers are compared by: the label of a correction, the set of a set
    correction, the value of a rating, the preferred candidate of a preference."""
    if fb.kind == "correction":
        return fb.label
    if fb.kind == "set_correction":
        return tuple(sorted(fb.labels or ()))
    if fb.kind == "preference":
        return fb.preferred
    return fb.value


def overlap_answers(
    store: Store, project: str, since: datetime | None = None
) -> list[tuple[str, str, Hashable]]:
    """(reviewer, item id, answer key) of every answer to the project's overlap items (those two
    reviewers answer), oldest first; ``since`` keeps the items queued at or after it."""
    r, m = ReviewItemRow, ReviewMarkRow
    query = (
        select(m.reviewer, m.item_id, m.feedback_id)
        .join(r, r.id == m.item_id)
        .join(DecisionRow, DecisionRow.id == r.decision_id)
        .where(project_of_decision() == project, r.answers_needed == 2, m.mark == "answer")
        .order_by(m.created_at, m.id)
    )
    if since is not None:
        query = query.where(r.created_at >= since)
    with store.engine.connect() as conn:
        marks = [(str(a), str(b), str(c)) for a, b, c in conn.execute(query)]
        ids = [f for _, _, f in marks]
        query_fb = select(FeedbackRow.__table__).where(FeedbackRow.id.in_(ids))
        by_id = {fb.id: fb for fb in map(feedback_from_row, conn.execute(query_fb))} if ids else {}
    return [(rev, item, answer_key(by_id[f])) for rev, item, f in marks if f in by_id]


__all__ = [
    "REVIEW_STATUSES",
    "QueueFilter",
    "ReviewError",
    "answer_key",
    "claim_page",
    "overlap_answers",
    "reviewer_queue",
    "skip_review_item",
]
