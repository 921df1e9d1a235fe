"""``POST /v1/decisions/batch`` and ``POST /v1/feedback/batch``: many items in one request, one result each.

Each item is validated on its own (one bad item fails alone, naming ``items.<i>.<field>``), then every
good item goes to the group-commit writer (:mod:`~rewardloop.service.group_commit`), which commits
items independently: an item's result is 201 once its row is committed, 200 when it replays a stored
row (same id or idempotency key, same body: the first row's id is answered), else its own error as a
problem body. The request itself answers 200 whenever it was well-formed.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from fastapi import APIRouter
from pydantic import BaseModel, ValidationError

from rewardloop.service.decision_writer import DecisionJob, Logged
from rewardloop.service.errors import BODY, KEYED, error_responses, field_name, problem
from rewardloop.service.group_commit import Rejected
from rewardloop.service.schemas import (
    BatchItemResult,
    BatchResponse,
    DecisionBatchRequest,
    DecisionLogRequest,
    ErrorResponse,
    FeedbackBatchRequest,
    FeedbackCreateRequest,
)
from rewardloop.service.security import DecideKey, FeedbackKey
from rewardloop.service.state import AppState, StateDep
from rewardloop.store.apikeys import ApiKey
from rewardloop.types import RecordError

M = TypeVar("M", bound=BaseModel)

router = APIRouter(prefix="/v1", responses=error_responses(*KEYED, *BODY))


def _failed(index: int, status: int, detail: str, field: str | None) -> BatchItemResult:
    return BatchItemResult(index=index, status=status, error=ErrorResponse(**problem(status, detail, field)))


def _parse(model: type[M], index: int, item: dict[str, Any]) -> M | BatchItemResult:
    try:
        return model.model_validate(item)
    except ValidationError as err:
        first = err.errors(include_url=False)[0]
        where = field_name(("items", index, *first["loc"]))
        return _failed(index, 422, f"{where}: {first['msg']}", where)


async def _commit(
    results: list[BatchItemResult | None], pending: list[tuple[int, Awaitable[Any]]]
) -> BatchResponse:
    """Await every submitted item; fill ``results`` with each one's outcome."""
    outcomes = await asyncio.gather(*(w for _, w in pending), return_exceptions=True)
    for (i, _), out in zip(pending, outcomes, strict=True):
        if isinstance(out, Rejected):
            where = f"items.{i}.{out.field}" if out.field else None
            results[i] = _failed(i, out.status, str(out), where)
        elif isinstance(out, BaseException):
            raise out
        elif isinstance(out, Logged):
            results[i] = BatchItemResult(
                index=i,
                status=201 if out.new else 200,
                id=out.decision_id,
                queued_for_review=out.review_reason,
            )
        else:
            results[i] = out
    done = [r for r in results if r is not None]
    return BatchResponse(
        results=done,
        stored=sum(r.status == 201 for r in done),
        replayed=sum(r.status == 200 for r in done),
        failed=sum(r.status >= 400 for r in done),
    )


def _record(index: int, make: Callable[[], Any]) -> Any:
    try:
        return make()
    except RecordError as err:
        where = f"items.{index}.{err.field}"
        return _failed(index, 422, f"{where}: {err.reason}", where)


async def _owners(state: AppState, key: ApiKey, policies: set[str]) -> set[str]:
    """The policies among ``policies`` that belong to another project (their items get a 404)."""
    foreign = set()
    for name in policies:
        owner = state.owners.get(name)
        if owner is None:
            owner = await asyncio.to_thread(state.owner, name)
        if owner is not None and owner != key.project:
            foreign.add(name)
    return foreign


@router.post("/decisions/batch", response_model=BatchResponse, tags=["decisions"])
async def log_decisions(body: DecisionBatchRequest, key: DecideKey, state: StateDep) -> BatchResponse:
    """Log many decisions made elsewhere (each item a ``POST /v1/decisions`` body); one result per item.
    A re-sent item (same ``id`` or ``idempotency_key``, same body) answers 200 and the first id."""
    results: list[BatchItemResult | None] = [None] * len(body.items)
    parsed = [(i, _parse(DecisionLogRequest, i, item)) for i, item in enumerate(body.items)]
    foreign = await _owners(state, key, {p.policy for _, p in parsed if isinstance(p, DecisionLogRequest)})
    pending: list[tuple[int, Awaitable[Any]]] = []
    for i, p in parsed:
        if isinstance(p, BatchItemResult):
            results[i] = p
        elif p.policy in foreign:
            results[i] = _failed(
                i, 404, f"items.{i}.policy: no policy {p.policy!r} in this project", f"items.{i}.policy"
            )
        elif "project" in p.metadata and p.metadata["project"] != key.project:
            where = f"items.{i}.metadata.project"
            results[i] = _failed(i, 422, f"{where}: must be this key's project or absent", where)
        else:
            decision = _record(i, functools.partial(p.to_decision, key.project))
            if isinstance(decision, BatchItemResult):
                results[i] = decision
                continue
            job = DecisionJob(decision, key.project, "log", shadow_action=p.shadow_action)
            pending.append((i, state.decisions.submit(job)))
    return await _commit(results, pending)


async def _stored_feedback(state: AppState, request: FeedbackCreateRequest, project: str, index: int) -> Any:
    feedback = _record(index, request.to_feedback)
    if isinstance(feedback, BatchItemResult):
        return feedback
    # The writer answers None both for a new row and for a replay of the same id and body.
    await state.writer.submit(feedback, project)
    return BatchItemResult(index=index, status=201, id=feedback.id)


@router.post("/feedback/batch", response_model=BatchResponse, tags=["feedback"])
async def log_feedback(body: FeedbackBatchRequest, key: FeedbackKey, state: StateDep) -> BatchResponse:
    """Store many feedback rows (each item a ``POST /v1/feedback`` body); one result per item. A re-sent
    item (same ``id``, same body) is stored once and answers 201 again; the same id with another body
    is a 409."""
    results: list[BatchItemResult | None] = [None] * len(body.items)
    pending: list[tuple[int, Awaitable[Any]]] = []
    for i, item in enumerate(body.items):
        p = _parse(FeedbackCreateRequest, i, item)
        if isinstance(p, BatchItemResult):
            results[i] = p
        else:
            pending.append((i, _stored_feedback(state, p, key.project, i)))
    return await _commit(results, pending)
