"""The review queue's persistence: enqueue (deduplicated per decision), list, claim, resolve.

Resolving writes the reviewer's correction as feedback and closes the item in one transaction, so an
item is never resolved without its feedback, nor the feedback written twice. An open item whose
decision has since got feedback that says enough (:func:`answering_feedback`) is closed by
:func:`close_answered_items`: resolved, pointing at that feedback, with no reviewer's time spent.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import Connection, Update, and_, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from rewardloop.store.engine import Store
from rewardloop.store.insights import project_of_decision
from rewardloop.store.repository import decision_from_row, insert_feedback, read_feedback
from rewardloop.store.rows import record_from_row, row_values
from rewardloop.store.tables import DecisionRow, ReviewItemRow
from rewardloop.types import Decision, Feedback, RecordError, ReviewItem, new_id, utcnow
from rewardloop.types.sets import check_labels_against

REVIEW_STATUSES = ("open", "claimed", "resolved")


class ReviewError(ValueError):
    """A review action was refused.

    ``kind`` is ``"not_found"`` (no such item in this project), ``"conflict"`` (claimed by someone else,
    or already resolved) or ``"invalid"`` (a bad value; ``field`` names it).
    """

    def __init__(self, kind: str, message: str, field: str | None = None) -> None:
        self.kind = kind
        self.field = field
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class ReviewEntry:
    """A queue item with the decision it is about (the text, the model's guess and confidence)."""

    item: ReviewItem
    decision: Decision


def enqueue_review(store: Store, items: Iterable[ReviewItem]) -> int:
    """Queue items; an item for a decision already queued is skipped. Returns how many were queued."""
    with store.engine.begin() as conn:
        return insert_review_items(conn, items)


def insert_review_items(conn: Connection, items: Iterable[ReviewItem]) -> int:
    """:func:`enqueue_review` inside the caller's transaction (the decision writer logs a decision and
    queues it in one)."""
    rows = [row_values(i) for i in items]
    if not rows:
        return 0
    dialect = sqlite if conn.dialect.name == "sqlite" else postgresql
    stmt = (
        dialect.insert(ReviewItemRow)
        .on_conflict_do_nothing(index_elements=["decision_id"])
        .returning(ReviewItemRow.id)
    )
    # Counted from RETURNING: the driver's rowcount is -1 here on psycopg.
    return sum(len(conn.execute(stmt, row).all()) for row in rows)


def queued_since(store: Store, project: str, since: datetime) -> int:
    """How many items of the project were queued at or after ``since`` (what a daily budget counts)."""
    r = ReviewItemRow
    query = (
        select(func.count())
        .select_from(r)
        .join(DecisionRow, DecisionRow.id == r.decision_id)
        .where(project_of_decision() == project, r.created_at >= since)
    )
    with store.engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def answering_feedback(store: Store, decision_ids: Sequence[str], min_authority: float) -> dict[str, str]:
    """For each decision whose feedback already says enough, the id of the first such feedback.

    Enough is the right label, known: a correction, a positive rating (a value above the middle of
    its scale: "this was right"), or for a ``set`` decision a set correction (the right set), from a
    rater of authority at least ``min_authority``. A negative rating is not enough: it says the label
    was wrong, not which one is right, and that is what a reviewer adds. Voided feedback does not
    count.
    """
    if not decision_ids:
        return {}
    rows = read_feedback(store, decision_ids=list(decision_ids))
    sets = _set_decisions(store, sorted({fb.decision_id for fb in rows if fb.kind == "set_correction"}))
    found: dict[str, str] = {}
    for fb in rows:
        if fb.decision_id in found or fb.authority < min_authority:
            continue
        positive = (
            fb.kind == "rating"
            and fb.value is not None
            and (fb.scale is None or fb.value > (fb.scale[0] + fb.scale[1]) / 2)
        )
        if fb.kind == "correction" or positive or (fb.kind == "set_correction" and fb.decision_id in sets):
            found[fb.decision_id] = fb.id
    return found


def disputing_feedback(store: Store, decision_ids: Sequence[str], min_authority: float) -> dict[str, float]:
    """For each decision a rater of authority at least ``min_authority`` called wrong — a negative
    rating (a value below the middle of its scale) — and no one corrected, the highest such authority.

    Such a decision is known wrong and still unlabelled: what a reviewer's answer adds most to.
    Voided feedback does not count.
    """
    if not decision_ids:
        return {}
    rows = read_feedback(store, decision_ids=list(decision_ids))
    corrected = {fb.decision_id for fb in rows if fb.kind in ("correction", "set_correction")}
    found: dict[str, float] = {}
    for fb in rows:
        if fb.decision_id in corrected or fb.authority < min_authority or fb.kind != "rating":
            continue
        if fb.value is not None and fb.scale is not None and fb.value < (fb.scale[0] + fb.scale[1]) / 2:
            found[fb.decision_id] = max(found.get(fb.decision_id, 0.0), fb.authority)
    return found


def _set_decisions(store: Store, decision_ids: Sequence[str]) -> set[str]:
    """Which of the decisions are of kind ``set`` (a set correction is their whole answer; beside a
    category it leaves the category unanswered)."""
    if not decision_ids:
        return set()
    query = select(DecisionRow.id).where(DecisionRow.id.in_(decision_ids), DecisionRow.kind == "set")
    with store.engine.connect() as conn:
        return {str(i) for i in conn.execute(query).scalars()}


def close_answered_items(store: Store, project: str, min_authority: float) -> int:
    """Close the project's open items whose decision's feedback says enough (see
    :func:`answering_feedback`): resolved, ``feedback_id`` the answering feedback. Returns how many."""
    r = ReviewItemRow
    query = (
        select(r.id, r.decision_id)
        .join(DecisionRow, DecisionRow.id == r.decision_id)
        .where(project_of_decision() == project, r.status == "open")
    )
    with store.engine.connect() as conn:
        open_items = {str(d): str(i) for i, d in conn.execute(query)}
    answered = answering_feedback(store, list(open_items), min_authority)
    now = utcnow()
    closed = 0
    with store.engine.begin() as conn:
        for decision_id, feedback_id in answered.items():
            closed += conn.execute(
                update(r)
                .where(r.id == open_items[decision_id], r.status == "open")
                .values(status="resolved", feedback_id=feedback_id, resolved_at=now)
            ).rowcount
    return closed


def read_review_queue(
    store: Store,
    project: str,
    statuses: Sequence[str] = ("open", "claimed"),
    limit: int = 50,
    offset: int = 0,
    after: tuple[float, datetime, str] | None = None,
) -> list[ReviewEntry]:
    """The project's items in the given statuses, highest priority first (oldest first among equals,
    then by id: a total order).

    ``after`` is the ``(priority, created_at, id)`` of the last item of the previous page (keyset
    pagination: the page starts after that item whatever was inserted meanwhile); ``offset`` skips
    rows instead (an offset shifts when items come in, so the service pages by ``after``)."""
    for status in statuses:
        if status not in REVIEW_STATUSES:
            raise ReviewError(
                "invalid", f"status: must be one of {', '.join(REVIEW_STATUSES)}; got {status!r}", "status"
            )
    r, d = ReviewItemRow, DecisionRow
    query = (
        select(r, d)
        .join(d, d.id == r.decision_id)
        .where(project_of_decision() == project, r.status.in_(list(statuses)))
        .order_by(r.priority.desc(), r.created_at, r.id)
        .limit(limit)
        .offset(offset)
    )
    if after is not None:
        priority, created, item_id = after
        later = or_(r.created_at > created, and_(r.created_at == created, r.id > item_id))
        query = query.where(or_(r.priority < priority, and_(r.priority == priority, later)))
    with store.session() as s:
        return [
            ReviewEntry(record_from_row(ReviewItem, item), decision_from_row(dec))
            for item, dec in s.execute(query)
        ]


def get_review_entry(store: Store, item_id: str, project: str) -> ReviewEntry:
    """One item of the project, or ReviewError("not_found")."""
    r, d = ReviewItemRow, DecisionRow
    query = (
        select(r, d).join(d, d.id == r.decision_id).where(r.id == item_id, project_of_decision() == project)
    )
    with store.session() as s:
        found = s.execute(query).first()
        if found is None:
            raise ReviewError("not_found", f"item_id: no review item {item_id!r} in this project")
        return ReviewEntry(record_from_row(ReviewItem, found[0]), decision_from_row(found[1]))


def review_counts(store: Store, project: str) -> dict[str, int]:
    """Items per status for the project (every status present, zero when none)."""
    r = ReviewItemRow
    query = (
        select(r.status, func.count())
        .join(DecisionRow, DecisionRow.id == r.decision_id)
        .where(project_of_decision() == project)
        .group_by(r.status)
    )
    with store.engine.connect() as conn:
        counts = {str(k): int(v) for k, v in conn.execute(query)}
    return {s: counts.get(s, 0) for s in REVIEW_STATUSES}


def _open_to(item_id: str, reviewer: str) -> Update:
    """An update of the item that applies only while it is open, or claimed by ``reviewer`` already."""
    r = ReviewItemRow
    mine = and_(r.status == "claimed", r.claimed_by == reviewer)
    return update(r).where(r.id == item_id, or_(r.status == "open", mine))


def _conflict(store: Store, item_id: str, project: str) -> ReviewError:
    """Why the item could not be claimed or resolved: who claimed it, or that it is resolved."""
    current = get_review_entry(store, item_id, project).item
    who = f" by {current.claimed_by!r}" if current.claimed_by else ""
    return ReviewError("conflict", f"item_id: review item {item_id!r} is already {current.status}{who}")


def claim_review_item(store: Store, item_id: str, reviewer: str, project: str) -> ReviewItem:
    """Claim an open item for ``reviewer`` (claiming one's own claimed item again is a no-op)."""
    entry = get_review_entry(store, item_id, project)
    with store.engine.begin() as conn:
        changed = conn.execute(
            _open_to(item_id, reviewer).values(status="claimed", claimed_by=reviewer)
        ).rowcount
    if not changed:
        raise _conflict(store, item_id, project)
    return get_review_entry(store, entry.item.id, project).item


def _reviewer_feedback(
    decision: Decision,
    label: str | None,
    labels: Sequence[str] | None,
    rater: Feedback,
) -> list[Feedback]:
    """What a reviewer's answer stores: a ``correction`` with ``label`` and, for a decision with a set,
    a ``set_correction`` with ``labels`` (a ``set`` decision has only the set); the first row is the
    one the item points at; ``rater`` is a template row carrying the reviewer, authority and comment.
    Refused (``ReviewError("invalid")``, naming the field) otherwise."""
    out: list[Feedback] = []
    if decision.kind == "set":
        if label is not None:
            raise ReviewError(
                "invalid", "label: a set decision is resolved with labels (the right set)", "label"
            )
    elif label is None:
        raise ReviewError("invalid", "label: is required (the right action)", "label")
    elif label not in decision.actions:
        raise ReviewError(
            "invalid",
            f"label: {label!r} is not one of the decision's actions ({', '.join(decision.actions)})",
            "label",
        )
    else:
        out.append(replace(rater, kind="correction", label=label, labels=None))
    if labels is None:
        if decision.kind == "set":
            raise ReviewError("invalid", "labels: is required for a set decision (the right set)", "labels")
        return out
    why = check_labels_against("set_correction", labels, decision.label_space, decision.chosen_set or ())
    try:
        if why is not None:
            raise RecordError("labels", why)
        fb = replace(rater, kind="set_correction", label=None, labels=tuple(labels), id=new_id())
    except RecordError as err:
        raise ReviewError("invalid", f"{err.field}: {err.reason}", err.field) from None
    return [*out, fb]


def resolve_review_item(
    store: Store,
    item_id: str,
    project: str,
    *,
    reviewer: str,
    label: str | None = None,
    labels: Sequence[str] | None = None,
    authority: float = 1.0,
    comment: str | None = None,
) -> tuple[ReviewItem, Feedback]:
    """Resolve an item with the right answer, from ``reviewer``, in one transaction: ``label`` (one of
    the decision's actions) as a ``correction``, and for a decision with a set ``labels`` (the right
    set, from its label space) as a ``set_correction``; a ``set`` decision takes ``labels`` alone.
    Returns the item and the feedback it points at (the correction, or a set decision's set).

    An item claimed by someone else, or already resolved, is refused (``ReviewError("conflict")``) and
    nothing is written.
    """
    entry = get_review_entry(store, item_id, project)
    template = Feedback(
        decision_id=entry.decision.id,
        kind="set_correction",
        labels=(),
        rater_id=reviewer,
        authority=authority,
        source="human",
        comment=comment,
    )
    rows = _reviewer_feedback(entry.decision, label, labels, template)
    now = utcnow()
    with store.engine.begin() as conn:
        done = _open_to(item_id, reviewer).values(
            status="resolved", claimed_by=reviewer, feedback_id=rows[0].id, resolved_at=now
        )
        changed = conn.execute(done).rowcount
        if changed:
            insert_feedback(conn, [(fb, project) for fb in rows])
    if not changed:
        raise _conflict(store, item_id, project)
    return get_review_entry(store, item_id, project).item, rows[0]


__all__ = [
    "REVIEW_STATUSES",
    "ReviewEntry",
    "ReviewError",
    "answering_feedback",
    "claim_review_item",
    "close_answered_items",
    "disputing_feedback",
    "enqueue_review",
    "get_review_entry",
    "insert_review_items",
    "queued_since",
    "read_review_queue",
    "resolve_review_item",
    "review_counts",
]
