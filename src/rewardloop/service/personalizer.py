"""Azure Personalizer-compatible Rank and Reward: an app written for Personalizer switches its base URL.

``POST /personalizer/v1.0/rank`` and ``POST /personalizer/v1.0/events/{eventId}/reward`` take and answer
the JSON of Personalizer's REST API v1.0 (``contextFeatures``, ``actions`` with ``id`` and
``features``, ``excludedActions``, ``eventId``, ``deferActivation``; ``rewardActionId``, ``ranking``
with probabilities, ``eventId``; a reward ``{"value": v}`` with v in [-1, 1], answered 204). The key
comes in ``Ocp-Apim-Subscription-Key`` (Personalizer's header) or as everywhere else.

Both map onto the one serving path. The router named by ``service.personalizer_policy`` decides
(``/v1/decide``'s path: alias, experiment, shadow), on ``contextFeatures`` as canonical JSON text and,
with ``service.personalizer_features`` = d > 0, hashed into d numbers (each ``key=value`` string or
``key`` number at ``sha256(name) mod d``). Its arms must include every action id of the request. When
the request offers only some arms (fewer actions, or ``excludedActions``), the decision is conditioned
on the allowed ones: p'(a) = p(a) / Σ_allowed p, and an arm outside them is re-drawn from p' (with an
rng seeded by the event), so the served action is distributed as p' exactly — and p' is what is logged
as the action distribution and propensity, so off-policy evaluation sees what was served.

The decision's id is derived from the project and ``eventId`` (a fresh one when absent), so a Rank
re-sent with its eventId is a replay (the stored decision is answered), and the reward names it: a
reward is a ``rating`` feedback on scale (-1, 1), source ``implicit``. Errors are the service's RFC
9457 problems with Personalizer's ``error`` object beside them (``{"code", "message", "target"}``), and
a request that fails validation is a 400, as Personalizer answers. Not served: Activate (rewardloop
assigns no default reward to an unrewarded event, so there is nothing for activation to switch;
``deferActivation`` is recorded in the decision's metadata), multi-slot Rank, and the
configuration/evaluation routes.
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

import anyio.to_thread
import numpy as np
import orjson
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rewardloop.loop.serving import request_rng
from rewardloop.service.api import decide_and_log
from rewardloop.service.errors import PROBLEM_JSON, field_name, problem
from rewardloop.service.feedback_writer import FeedbackRejected
from rewardloop.service.idempotency import scope_record_key
from rewardloop.service.providers import DecideInput, ProviderError
from rewardloop.service.schemas import ErrorResponse
from rewardloop.service.security import key_of, plain_secret
from rewardloop.service.state import AppState
from rewardloop.store.apikeys import ApiKey
from rewardloop.types import Decision, Feedback, RecordError, new_id

router = APIRouter(prefix="/personalizer/v1.0", tags=["personalizer"])
KEY_HEADER = "ocp-apim-subscription-key"
_CODES = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "ResourceNotFound", 409: "Conflict"}


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class RankableAction(_Body):
    id: str = Field(min_length=1, max_length=256, description="the action's id: an arm of the router")
    features: list[dict[str, Any]] = Field(
        default_factory=list, description="the action's features (logged with the decision)"
    )


class RankRequest(_Body):
    contextFeatures: list[dict[str, Any]] = Field(default_factory=list, description="the context")
    actions: list[RankableAction] = Field(min_length=1, description="the actions to rank")
    excludedActions: list[str] = Field(default_factory=list, description="action ids not to choose")
    eventId: str | None = Field(None, min_length=1, max_length=256, description="default: a fresh id")
    deferActivation: bool = Field(False, description="recorded; rewardloop assigns no default reward")


class RankedAction(BaseModel):
    id: str
    probability: float


class RankResponse(BaseModel):
    ranking: list[RankedAction] = Field(description="the chosen action first, then by probability")
    eventId: str
    rewardActionId: str = Field(description="the action to show, and to reward")


class RewardRequest(_Body):
    value: float = Field(ge=-1, le=1, description="the reward of the event's chosen action")


#: The request bodies these routes parse themselves (``app`` adds them to the OpenAPI components).
REQUEST_MODELS = (RankRequest, RewardRequest)


class PersonalizerFailure(Exception):
    """An error answer of these routes (status, message, field)."""

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        self.status = status
        self.field = field
        super().__init__(message)


def _failure(err: PersonalizerFailure) -> JSONResponse:
    """The service's problem with Personalizer's ``error`` object beside it."""
    body = problem(err.status, str(err), err.field)
    body["error"] = {
        "code": _CODES.get(err.status, str(err.status)),
        "message": str(err),
        "target": err.field,
    }
    return JSONResponse(body, err.status, media_type=PROBLEM_JSON)


def event_decision_id(project: str, event_id: str) -> str:
    """The id of the decision a Rank event of ``project`` is logged as (at most 64 characters).

    >>> event_decision_id("acme", "75269AD0") == event_decision_id("acme", "75269AD0")
    True
    """
    return "pz_" + hashlib.sha256(f"{project}\0{event_id}".encode()).hexdigest()[:40]


def _flat(prefix: str, value: Any) -> list[tuple[str, float]]:
    """A feature value as hashed-feature (name, weight) pairs: a number as itself, a string or bool as
    ``name=value`` with weight 1, nested objects and lists with dotted names."""
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _flat(f"{prefix}.{k}" if prefix else str(k), v)]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _flat(f"{prefix}.{i}", v)]
    if isinstance(value, (bool, str)):
        return [(f"{prefix}={str(value).lower() if isinstance(value, bool) else value}", 1.0)]
    if isinstance(value, (int, float)):
        return [(prefix, float(value))]
    return []  # null: no feature


def hashed_features(context: list[dict[str, Any]], dim: int) -> tuple[float, ...]:
    """``contextFeatures`` as ``dim`` numbers (feature hashing, as Vowpal Wabbit does).

    >>> hashed_features([{"timeOfDay": "Morning", "n": 2}], 4)
    (1.0, 2.0, 0.0, 0.0)
    """
    out = [0.0] * dim
    for name, weight in _flat("", context):
        out[int(hashlib.sha256(name.encode()).hexdigest()[:12], 16) % dim] += weight
    return tuple(out)


def condition(decision: Decision, allowed: list[str], rng: np.random.Generator) -> Decision:
    """``decision`` restricted to the ``allowed`` arms: p'(a) = p(a) / Σ_allowed p (uniform over them if
    the router gave them no mass); an arm outside them is re-drawn from p', so the action served is
    distributed as p', the distribution logged.

    >>> d = Decision(policy="r", policy_version="1", kind="router", actions=("a", "b", "c"), action="b",
    ...              action_dist=(0.2, 0.6, 0.2), pscore=0.6)
    >>> c = condition(d, ["a", "c"], np.random.default_rng(0))
    >>> c.action_dist, c.action in ("a", "c"), c.pscore
    ((0.5, 0.0, 0.5), True, 0.5)
    """
    mask = np.array([a in allowed for a in decision.actions])
    p = np.asarray(decision.action_dist, dtype=float) * mask
    p = p / p.sum() if p.sum() > 0 else mask / mask.sum()
    index = decision.actions.index(decision.action)
    if not mask[index]:
        index = int(rng.choice(len(p), p=p))
    dist = tuple(float(v) for v in p)
    return dataclasses.replace(decision, action=decision.actions[index], action_dist=dist, pscore=dist[index])


def _check_actions(body: RankRequest) -> list[str]:
    """The allowed action ids (offered and not excluded); PersonalizerFailure naming a bad one."""
    ids = [a.id for a in body.actions]
    for i, a in enumerate(ids):
        if a in ids[:i]:
            raise PersonalizerFailure(400, f"actions.{i}.id: {a!r} appears twice", f"actions.{i}.id")
    for i, a in enumerate(body.excludedActions):
        if a not in ids:
            raise PersonalizerFailure(
                400, f"excludedActions.{i}: {a!r} is not an action", f"excludedActions.{i}"
            )
    allowed = [a for a in ids if a not in body.excludedActions]
    if not allowed:
        raise PersonalizerFailure(400, "excludedActions: every action is excluded", "excludedActions")
    return allowed


def _served(decision: Decision, body: RankRequest, decision_id: str) -> Decision:
    """The router's decision conditioned on the request's allowed actions, logged under ``decision_id``."""
    if decision.kind != "router":
        raise PersonalizerFailure(
            400, f"service.personalizer_policy: {decision.policy!r} is a {decision.kind}; Rank serves routers"
        )
    for i, a in enumerate(body.actions):
        if a.id not in decision.actions:
            arms = ", ".join(decision.actions)
            raise PersonalizerFailure(
                400,
                f"actions.{i}.id: {a.id!r} is not an arm of {decision.policy!r} ({arms})",
                f"actions.{i}.id",
            )
    allowed = _check_actions(body)
    served = condition(decision, allowed, request_rng(f"{decision_id}/allowed"))
    return dataclasses.replace(served, id=decision_id, idempotency_key=decision_id)


def ranking(decision: Decision, body: RankRequest) -> RankResponse:
    """The answer for a logged decision: every requested action with its probability, the chosen one
    first, then by probability (ties in the request's order)."""
    prob = dict(zip(decision.actions, decision.action_dist, strict=True))
    ids = [a.id for a in body.actions]
    order = sorted(ids, key=lambda a: (a != decision.action, -prob[a], ids.index(a)))
    event_id = decision.metadata.get("personalizer", {}).get("eventId", "")
    return RankResponse(
        ranking=[RankedAction(id=a, probability=prob[a]) for a in order],
        eventId=str(event_id),
        rewardActionId=decision.action,
    )


async def _caller(request: Request, scope: str) -> tuple[AppState, ApiKey]:
    state: AppState = request.app.state.rl
    secret = request.headers.get(KEY_HEADER) or plain_secret(request.headers)
    if not secret:
        raise PersonalizerFailure(401, "missing API key: send `Ocp-Apim-Subscription-Key: <key>`")
    key = await key_of(state, secret)
    if key is None:
        raise PersonalizerFailure(401, "invalid or revoked API key")
    if not key.allows(scope):
        raise PersonalizerFailure(403, f"this key ({key.name!r}) lacks the {scope!r} scope")
    return state, key


def _parse(model: type[_Body], raw: bytes) -> Any:
    try:
        return model.model_validate_json(raw)
    except ValidationError as err:
        first = err.errors(include_url=False)[0]
        where = field_name(first["loc"]) or "body"
        raise PersonalizerFailure(400, f"{where}: {first['msg']}", where) from None


async def _rank(request: Request) -> RankResponse:
    state, key = await _caller(request, "decide")
    body: RankRequest = _parse(RankRequest, await request.body())
    policy = state.config.service.personalizer_policy
    if policy is None:
        raise PersonalizerFailure(404, "no router serves Rank: set service.personalizer_policy")
    owner = state.owners.get(policy) or await anyio.to_thread.run_sync(state.owner, policy)
    if owner is not None and owner != key.project:
        raise PersonalizerFailure(404, f"service.personalizer_policy: no policy {policy!r} in this project")
    _check_actions(body)
    event_id = body.eventId or new_id()
    decision_id = event_decision_id(key.project, event_id)
    dim = state.config.service.personalizer_features
    meta = {
        "project": key.project,
        "personalizer": {
            "eventId": event_id,
            "deferActivation": body.deferActivation,
            "excludedActions": body.excludedActions,
            "actions": [a.model_dump() for a in body.actions],
        },
    }
    decide = DecideInput(
        policy=policy,
        text=orjson.dumps(body.contextFeatures, option=orjson.OPT_SORT_KEYS).decode(),
        features=hashed_features(body.contextFeatures, dim) if dim else None,
        metadata=meta,
        idempotency_key=decision_id,
    )
    try:
        decision, _, _ = await decide_and_log(state, key, decide, lambda d: _served(d, body, decision_id))
    except ProviderError as err:
        status = {"not_found": 404, "refused": 409, "invalid": 400}.get(err.kind, 503)
        raise PersonalizerFailure(status, str(err), err.field) from None
    return ranking(decision, body)


_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": what}
    for code, what in (
        (400, "a field failed validation, or an action is not an arm of the router (named)"),
        (401, "missing, invalid or revoked key"),
        (403, "the key lacks the scope"),
        (404, "no router configured, or no such event in this project"),
        (409, "the eventId was used before for another request"),
        (503, "the store is unreachable or the service is at capacity"),
    )
}


@router.post(
    "/rank",
    status_code=201,
    response_model=RankResponse,
    responses=_RESPONSES,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/RankRequest"}}},
        }
    },
)
async def rank(request: Request) -> Response:
    """Personalizer's Rank: the router of ``service.personalizer_policy`` picks ``rewardActionId``
    among the allowed actions; the decision is logged with its propensity (key scope ``decide``)."""
    try:
        answer = await _rank(request)
    except PersonalizerFailure as err:
        return _failure(err)
    return JSONResponse(answer.model_dump(), 201)


@router.post(
    "/events/{eventId}/reward",
    status_code=204,
    responses=_RESPONSES,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/RewardRequest"}}},
        }
    },
)
async def reward(eventId: str, request: Request) -> Response:
    """Personalizer's Reward: stored as a ``rating`` feedback (scale -1..1, source ``implicit``) on the
    event's decision (key scope ``feedback``); 404 for an event this project never ranked."""
    try:
        state, key = await _caller(request, "feedback")
        if not 1 <= len(eventId) <= 256:
            raise PersonalizerFailure(400, "eventId: must be 1-256 characters", "eventId")
        body: RewardRequest = _parse(RewardRequest, await request.body())
        decision_id = event_decision_id(key.project, eventId)
        try:
            feedback = Feedback(
                decision_id=decision_id,
                kind="rating",
                value=body.value,
                scale=(-1.0, 1.0),
                source="implicit",
                id=scope_record_key(request.scope) or new_id(),
            )
            await state.writer.submit(feedback, key.project)
        except RecordError as err:
            raise PersonalizerFailure(400, f"{err.field}: {err.reason}", err.field) from None
        except FeedbackRejected as err:
            if err.status == 404:
                raise PersonalizerFailure(
                    404, f"eventId: no Rank event {eventId!r} in this project", "eventId"
                ) from None
            raise PersonalizerFailure(err.status, str(err), err.field) from None
    except PersonalizerFailure as err:
        return _failure(err)
    return Response(status_code=204)
