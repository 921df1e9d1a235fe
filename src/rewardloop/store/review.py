"""The review queue's persistence: enqueue (deduplicated per decision), list, claim, resolve.

Resolving writes the reviewer's correction as feedback and closes the item in one transaction, so an
item is never resolved without its feedback, nor the feedback written twice. An open item whose
decision has since got feedback that says enough (:func:`answering_feedback`) is closed by
:func:`close_answered_items`: resolved, pointing at that feedback, with no reviewer's time spent.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy import (
    ColumnElement,
    Connection,
    Update,
    and_,
    case,
    exists,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from rewardloop.store.engine import Store
from rewardloop.store.insights import project_of_decision
from rewardloop.store.repository import decision_from_row, insert_feedback, read_feedback
from rewardloop.store.review_order import after_key, queue_order
from rewardloop.store.rows import record_from_row, row_values
from rewardloop.store.tables import DecisionRow, ReviewItemRow, ReviewMarkRow
from rewardloop.types import Decision, Feedback, RecordError, ReviewItem, new_id, utcnow
from rewardloop.types.answers import review_pair
from rewardloop.types.sets import check_labels_against

REVIEW_STATUSES = ("open", "claimed", "resolved")

#: Minutes a claim holds by default (``review.claim_minutes``): then the item is open to others again.
CLAIM_MINUTES = 30.0


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
        # An overlap item its first reviewer answered waits for the second: its own feedback does
        # not close it.
        .where(~exists().where(ReviewMarkRow.item_id == r.id, ReviewMarkRow.mark == "answer"))
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
    staleness_per_day: float = 0.0,
) -> list[ReviewEntry]:
    """The project's items in the given statuses, highest rank first (oldest first among equals,
    then by id: a total order); the rank is the priority plus ``staleness_per_day`` for every day an
    item has waited (:mod:`rewardloop.store.review_order`).

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
        .order_by(*queue_order(staleness_per_day))
        .limit(limit)
        .offset(offset)
    )
    if after is not None:
        query = query.where(after_key(staleness_per_day, *after))
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


def review_counts(
    store: Store, project: str, claim_minutes: float = CLAIM_MINUTES, now: datetime | None = None
) -> dict[str, int]:
    """Items per status for the project (every status present, zero when none); a lapsed claim counts
    as open (anyone may take the item)."""
    r = ReviewItemRow
    now = now or utcnow()
    live = and_(r.status == "claimed", r.claimed_at.is_not(None), r.claimed_at >= _lapse(now, claim_minutes))
    status = case((live, "claimed"), (r.status == "claimed", "open"), else_=r.status)
    query = (
        select(status, func.count())
        .join(DecisionRow, DecisionRow.id == r.decision_id)
        .where(project_of_decision() == project)
        .group_by(status)
    )
    with store.engine.connect() as conn:
        counts = {str(k): int(v) for k, v in conn.execute(query)}
    return {s: counts.get(s, 0) for s in REVIEW_STATUSES}


def _lapse(now: datetime, claim_minutes: float) -> datetime:
    return now - timedelta(minutes=claim_minutes)


def claim_free(reviewer: str, now: datetime, claim_minutes: float) -> ColumnElement[bool]:
    """The item is open, or claimed by ``reviewer``, or its claim has lapsed (claimed before
    ``now − claim_minutes``, or at no recorded time: a claim made before claims expired)."""
    r = ReviewItemRow
    lapsed = or_(r.claimed_at.is_(None), r.claimed_at < _lapse(now, claim_minutes))
    return or_(r.status == "open", and_(r.status == "claimed", or_(r.claimed_by == reviewer, lapsed)))


def _open_to(item_id: str, reviewer: str, now: datetime, claim_minutes: float) -> Update:
    """An update of the item that applies only while :func:`claim_free` holds for ``reviewer``."""
    r = ReviewItemRow
    return update(r).where(r.id == item_id, claim_free(reviewer, now, claim_minutes))


def _conflict(store: Store, item_id: str, project: str, reviewer: str) -> ReviewError:
    """Why the item could not be claimed or answered: the reviewer's own mark on it, who claimed it,
    or that it is resolved."""
    current = get_review_entry(store, item_id, project).item
    with store.engine.connect() as conn:
        mark = _marked(conn, item_id, reviewer)
    if mark is not None and current.status != "resolved":
        done = "answered" if mark == "answer" else "skipped"
        return ReviewError("conflict", f"item_id: you already {done} review item {item_id!r}")
    who = f" by {current.claimed_by!r}" if current.claimed_by else ""
    return ReviewError("conflict", f"item_id: review item {item_id!r} is already {current.status}{who}")


def claim_review_item(
    store: Store, item_id: str, reviewer: str, project: str, claim_minutes: float = CLAIM_MINUTES
) -> ReviewItem:
    """Claim an item for ``reviewer`` for ``claim_minutes`` (claiming one's own claimed item again
    renews the claim; a lapsed claim of someone else's may be taken). An item the reviewer already
    answered or skipped is refused (``conflict``)."""
    entry = get_review_entry(store, item_id, project)
    now = utcnow()
    with store.engine.begin() as conn:
        changed = 0
        if not _marked(conn, item_id, reviewer):
            changed = conn.execute(
                _open_to(item_id, reviewer, now, claim_minutes).values(
                    status="claimed", claimed_by=reviewer, claimed_at=now
                )
            ).rowcount
    if not changed:
        raise _conflict(store, item_id, project, reviewer)
    return get_review_entry(store, entry.item.id, project).item


def _marked(conn: Connection, item_id: str, reviewer: str) -> str | None:
    """The reviewer's mark on the item (``answer`` or ``skip``), or None."""
    m = ReviewMarkRow
    query = select(m.mark).where(m.item_id == item_id, m.reviewer == reviewer)
    found = conn.execute(query).scalar_one_or_none()
    return None if found is None else str(found)


@dataclass(frozen=True, slots=True)
class ReviewAnswer:
    """What a reviewer answers for one item; which fields apply depends on the decision's kind:

    ========================== ===================================================================
    classifier, router         ``label``: the right action (a ``correction``)
    set                        ``labels``: the right set (a ``set_correction``)
    reranker, generator        any of ``label`` (the best candidate), ``rating`` (1–5, a ``rating``
                               of the served answer), ``better`` (the better of the two top
                               candidates, a ``preference``)
    ========================== ===================================================================

    A decision of another kind that carries a set takes ``labels`` beside its ``label``.
    """

    label: str | None = None
    labels: Sequence[str] | None = None
    rating: int | None = None
    better: str | None = None
    comment: str | None = None


#: The scale of a reviewer's rating of an answer.
RATING_SCALE = (1.0, 5.0)


def _invalid(field: str, why: str) -> ReviewError:
    return ReviewError("invalid", f"{field}: {why}", field)


def _label_feedback(decision: Decision, answer: ReviewAnswer, rater: Feedback) -> list[Feedback]:
    """The ``correction`` for ``answer.label`` (none for a ``set`` decision, or when not given to a
    reranker or generator); refuses a label a decision of the kind cannot take."""
    label = answer.label
    if decision.kind == "set":
        if label is not None:
            raise _invalid("label", "a set decision is resolved with labels (the right set)")
        return []
    if label is None:
        if decision.kind in ("reranker", "generator"):
            return []
        raise _invalid("label", "is required (the right action)")
    if label not in decision.actions:
        raise _invalid(
            "label", f"{label!r} is not one of the decision's actions ({', '.join(decision.actions)})"
        )
    return [replace(rater, kind="correction", label=label, labels=None)]


def _answer_feedback(decision: Decision, answer: ReviewAnswer, rater: Feedback) -> list[Feedback]:
    """A reranker's or generator's ``rating`` and ``preference`` rows (none for other kinds)."""
    if decision.kind not in ("reranker", "generator"):
        for name in ("rating", "better"):
            if getattr(answer, name) is not None:
                raise _invalid(name, f"applies to reranker and generator decisions, not {decision.kind}")
        return []
    out = []
    if answer.rating is not None:
        if answer.rating not in range(1, 6):
            raise _invalid("rating", f"must be an integer from 1 to 5; got {answer.rating!r}")
        out.append(
            replace(
                rater, kind="rating", value=float(answer.rating), scale=RATING_SCALE, labels=None, id=new_id()
            )
        )
    if answer.better is not None:
        pair = review_pair(decision)
        if pair is None or answer.better not in pair:
            shown = f"one of {', '.join(pair)}" if pair else "no pair to compare"
            raise _invalid("better", f"{answer.better!r} is not one of the two candidates shown ({shown})")
        worse = pair[1] if answer.better == pair[0] else pair[0]
        out.append(
            replace(
                rater, kind="preference", preferred=answer.better, rejected=worse, labels=None, id=new_id()
            )
        )
    return out


def _reviewer_feedback(decision: Decision, answer: ReviewAnswer, rater: Feedback) -> list[Feedback]:
    """What a reviewer's answer stores (see :class:`ReviewAnswer`); the first row is the one the item
    points at; ``rater`` is a template row carrying the reviewer, authority and comment. Refused
    (``ReviewError("invalid")``, naming the field) otherwise."""
    out = _label_feedback(decision, answer, rater) + _answer_feedback(decision, answer, rater)
    labels = answer.labels
    if labels is None:
        if decision.kind == "set":
            raise _invalid("labels", "is required for a set decision (the right set)")
    else:
        why = check_labels_against("set_correction", labels, decision.label_space, decision.chosen_set or ())
        try:
            if why is not None:
                raise RecordError("labels", why)
            out.append(replace(rater, kind="set_correction", label=None, labels=tuple(labels), id=new_id()))
        except RecordError as err:
            raise _invalid(err.field, err.reason) from None
    if not out:
        raise _invalid("rating", "give a rating (1–5), the better of the two candidates, or the best label")
    return out


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
    answer: ReviewAnswer | None = None,
    claim_minutes: float = CLAIM_MINUTES,
) -> tuple[ReviewItem, Feedback]:
    """Answer an item as ``reviewer`` in one transaction: the feedback of :class:`ReviewAnswer`
    (``answer``, or ``label``/``labels``/``comment``), the reviewer's ``answer`` mark, and the item's
    new state: resolved once ``answers_needed`` reviewers answered, else open again for a second
    reviewer (an overlap item). Returns the item and the feedback the answer points at.

    Refused (``ReviewError("conflict")``, nothing written): an item claimed by someone else (a live
    claim), resolved already, or already answered or skipped by this reviewer.
    """
    entry = get_review_entry(store, item_id, project)
    answer = answer or ReviewAnswer(label=label, labels=labels, comment=comment)
    template = Feedback(
        decision_id=entry.decision.id,
        kind="set_correction",
        labels=(),
        rater_id=reviewer,
        authority=authority,
        source="human",
        comment=answer.comment,
    )
    rows = _reviewer_feedback(entry.decision, answer, template)
    now = utcnow()
    with store.engine.begin() as conn:
        changed = 0
        if not _marked(conn, item_id, reviewer):
            answered = _answers(conn, item_id) + 1
            done = answered >= entry.item.answers_needed
            values: dict[str, object] = (
                {"status": "resolved", "claimed_by": reviewer, "claimed_at": now, "resolved_at": now}
                if done
                else {"status": "open", "claimed_by": None, "claimed_at": None}
            )
            if entry.item.feedback_id is None:
                values["feedback_id"] = rows[0].id
            changed = conn.execute(_open_to(item_id, reviewer, now, claim_minutes).values(**values)).rowcount
        if changed:
            insert_feedback(conn, [(fb, project) for fb in rows])
            conn.execute(
                insert(ReviewMarkRow).values(
                    id=new_id(), item_id=item_id, reviewer=reviewer, mark="answer", feedback_id=rows[0].id,
                    created_at=now,
                )
            )  # fmt: skip
    if not changed:
        raise _conflict(store, item_id, project, reviewer)
    return get_review_entry(store, item_id, project).item, rows[0]


def _answers(conn: Connection, item_id: str) -> int:
    m = ReviewMarkRow
    query = select(func.count()).select_from(m).where(m.item_id == item_id, m.mark == "answer")
    return int(conn.execute(query).scalar_one())


__all__ = [
    "CLAIM_MINUTES",
    "RATING_SCALE",
    "REVIEW_STATUSES",
    "ReviewAnswer",
    "ReviewEntry",
    "ReviewError",
    "answering_feedback",
    "claim_free",
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
