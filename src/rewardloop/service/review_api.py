"""The review queue over HTTP (``review`` scope, the caller's project only).

``GET /v1/review`` lists the queue (cursor pages: ``page_token`` / ``next_page_token``);
``GET /v1/review/next`` is a reviewer's page — the items they may take, claimed as it opens (a claim
lapses after ``review.claim_minutes``), with the queue's counts and the reviewers' agreement on the
overlap items; ``POST /v1/review/{id}/claim``, ``/skip`` and ``/resolve`` act on one item,
``POST /v1/review/bulk`` answers (or skips) a page's items in one request, each in its own
transaction: one refused answer does not lose the others.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query

from rewardloop.evaluation.raters import overlap_agreement
from rewardloop.service.errors import BODY, KEYED, error_responses
from rewardloop.service.paging import DEFAULT_PAGE_SIZE, PageSize, PageToken, decode_key, encode_token
from rewardloop.service.schemas import (
    AgreementModel,
    ReviewBulkRequest,
    ReviewBulkResponse,
    ReviewFailure,
    ReviewListResponse,
    ReviewPageResponse,
    ReviewResolveRequest,
)
from rewardloop.service.security import ReviewKey
from rewardloop.service.state import AppState, StateDep
from rewardloop.store.apikeys import ApiKey
from rewardloop.store.review import (
    ReviewAnswer,
    ReviewEntry,
    ReviewError,
    claim_review_item,
    get_review_entry,
    read_review_queue,
    review_counts,
)
from rewardloop.store.review_work import (
    QueueFilter,
    claim_page,
    overlap_answers,
    reviewer_queue,
    skip_review_item,
)
from rewardloop.types.answers import ReviewQueueItem

router = APIRouter(prefix="/v1", tags=["review"], responses=error_responses(*KEYED))

#: Items on a reviewer's page (bulk review: ten at once, one submit).
PAGE_SIZE = 10


def queue_filter(
    policy: Annotated[str | None, Query(max_length=200, description="items of this policy only")] = None,
    reason: Annotated[str | None, Query(max_length=200, description="e.g. low_confidence, audit")] = None,
    kind: Annotated[str | None, Query(max_length=20, description="decision kind")] = None,
) -> QueueFilter:
    """The queue filter of a request's query (an empty value: any)."""
    return QueueFilter(policy or None, reason or None, kind or None)


QueueFilterDep = Annotated[QueueFilter, Depends(queue_filter)]


def counts_of(state: AppState, project: str) -> dict[str, int]:
    """The queue's counts with the configured claim expiry."""
    return review_counts(state.store, project, state.config.review.claim_minutes)


def agreement_of(state: AppState, project: str) -> AgreementModel:
    """κ and α of the reviewers on the project's overlap items."""
    a = overlap_agreement(overlap_answers(state.store, project))
    return AgreementModel(items=a.items, agreed=a.agreed, kappa=a.kappa, alpha=a.alpha)


def open_page(
    state: AppState, key: ApiKey, flt: QueueFilter, limit: int, offset: int
) -> tuple[list[ReviewEntry], int, int]:
    """A reviewer's page, claimed on open: (entries, items available in all, items claimed now)."""
    minutes = state.config.review.claim_minutes
    entries, total = reviewer_queue(
        state.store,
        key.project,
        key.id,
        flt=flt,
        limit=limit,
        offset=offset,
        claim_minutes=minutes,
        staleness_per_day=state.config.review.staleness_per_day,
    )
    claimed = claim_page(state.store, [e.item.id for e in entries], key.id, key.project, minutes)
    return entries, total, claimed


@dataclass
class BulkOutcome:
    """What one bulk submit did."""

    resolved: int = 0
    answered: int = 0
    skipped: int = 0
    failed: list[ReviewFailure] = field(default_factory=list)


def answer_page(state: AppState, key: ApiKey, answers: list[tuple[str, bool, ReviewAnswer]]) -> BulkOutcome:
    """Apply (item id, skip, answer) triples, each on its own: a refused one is reported in
    ``failed`` and the others stand."""
    out = BulkOutcome()
    for item_id, skip, answer in answers:
        try:
            if skip:
                skip_review_item(state.store, item_id, key.id, key.project)
                out.skipped += 1
                continue
            item = state.resolve_review(item_id, key, answer)
        except ReviewError as err:
            out.failed.append(ReviewFailure(item_id=item_id, kind=err.kind, message=str(err)))
            continue
        out.answered += 1
        out.resolved += item.status == "resolved"
    return out


def _answer(body: ReviewResolveRequest) -> ReviewAnswer:
    return ReviewAnswer(body.label, body.labels, body.rating, body.better, body.comment)


def _queue_item(state: AppState, item_id: str, project: str) -> ReviewQueueItem:
    entry = get_review_entry(state.store, item_id, project)
    return ReviewQueueItem.of(entry.item, entry.decision)


@router.get("/review", responses=error_responses(400, 422))
def review_queue(
    key: ReviewKey,
    state: StateDep,
    status: Annotated[list[Literal["open", "claimed", "resolved"]] | None, Query()] = None,
    limit: PageSize = DEFAULT_PAGE_SIZE,
    page_token: PageToken = None,
) -> ReviewListResponse:
    """The caller's project's queue, highest priority first — plus ``review.staleness_per_day`` for
    every day an item has waited — (default: open and claimed items), a page at a time: pass
    ``next_page_token`` as ``page_token`` for the next page (null on the last)."""
    statuses = sorted(status or ["open", "claimed"])
    route = "review:" + ",".join(statuses)  # a token is valid for the filter it was made with
    after = None
    if page_token is not None:  # the (priority, created_at, id) of the previous page's last item
        after = decode_key(route, page_token, (float, _aware_time, str))
    stale = state.config.review.staleness_per_day
    entries = read_review_queue(
        state.store, key.project, statuses, limit + 1, after=after, staleness_per_day=stale
    )
    shown = entries[:limit]
    last = shown[-1].item if shown else None
    token = (
        encode_token(route, [last.priority, last.created_at.isoformat(), last.id])
        if last is not None and len(entries) > limit
        else None
    )
    return ReviewListResponse(
        items=[ReviewQueueItem.of(e.item, e.decision) for e in shown],
        counts=counts_of(state, key.project),
        next_page_token=token,
    )


def _aware_time(value: str) -> datetime:
    """An ISO-8601 time with its offset (a token holds ``created_at.isoformat()``); ValueError otherwise."""
    t = datetime.fromisoformat(value)
    if t.tzinfo is None:
        raise ValueError(f"{value!r} has no UTC offset")
    return t


@router.get("/review/next", responses=error_responses(422))
def review_next(
    key: ReviewKey,
    state: StateDep,
    flt: QueueFilterDep,
    limit: Annotated[int, Query(ge=1, le=100)] = PAGE_SIZE,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> ReviewPageResponse:
    """Your next page: the items you may take (not resolved, not claimed by another reviewer, not
    answered or skipped by you), highest priority first (plus ``review.staleness_per_day`` a day
    waited), filtered by policy, reason and kind, and
    claimed for you as the page opens (for ``review.claim_minutes``)."""
    entries, total, claimed = open_page(state, key, flt, limit, offset)
    return ReviewPageResponse(
        items=[_queue_item(state, e.item.id, key.project) for e in entries],
        available=total,
        claimed=claimed,
        counts=counts_of(state, key.project),
        agreement=agreement_of(state, key.project),
    )


@router.post("/review/{item_id}/claim", responses=error_responses(404, 409))
def claim(item_id: str, key: ReviewKey, state: StateDep) -> ReviewQueueItem:
    """Claim an item for ``review.claim_minutes``, so that two reviewers do not answer the same one
    (a lapsed claim may be taken; claiming your own again renews it)."""
    claim_review_item(state.store, item_id, key.id, key.project, state.config.review.claim_minutes)
    return _queue_item(state, item_id, key.project)


@router.post("/review/{item_id}/skip", responses=error_responses(404, 409))
def skip(item_id: str, key: ReviewKey, state: StateDep) -> ReviewQueueItem:
    """Pass on an item: it is not shown to you again, and your claim on it is released."""
    skip_review_item(state.store, item_id, key.id, key.project)
    return _queue_item(state, item_id, key.project)


@router.post("/review/{item_id}/resolve", responses=error_responses(*BODY, 404, 409))
def resolve(item_id: str, body: ReviewResolveRequest, key: ReviewKey, state: StateDep) -> ReviewQueueItem:
    """Answer an item: ``label`` stored as correction feedback; for a decision with a set ``labels``
    (the right set) as set_correction feedback (a ``set`` decision takes ``labels`` alone); for a
    reranker or generator ``rating`` (1–5) as rating feedback and ``better`` (one of the item's
    ``pair``) as preference feedback. From this reviewer (the key's id: names are not unique), with
    the configured reviewer authority, in the same transaction that updates the item: resolved, or —
    an overlap item's first answer — open again for a second reviewer."""
    state.resolve_review(item_id, key, _answer(body))
    return _queue_item(state, item_id, key.project)


@router.post("/review/bulk", responses=error_responses(*BODY))
def bulk(body: ReviewBulkRequest, key: ReviewKey, state: StateDep) -> ReviewBulkResponse:
    """Answer or skip a page of items in one request; each item on its own (a refused answer is
    listed in ``failed``, the rest are stored)."""
    out = answer_page(state, key, [(a.item_id, a.skip, _answer(a)) for a in body.answers])
    return ReviewBulkResponse(
        resolved=out.resolved,
        answered=out.answered,
        skipped=out.skipped,
        failed=out.failed,
        counts=counts_of(state, key.project),
    )
