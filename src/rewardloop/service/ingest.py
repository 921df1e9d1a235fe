"""``POST /v1/feedback``: the hottest route, served below FastAPI's router as a plain ASGI handler.

At thousands of requests a second, FastAPI's routing, dependency solving and response machinery cost
more CPU than storing the row (measured: about 60 % of a worker's time on this route). This handler does
the same work with the same checks and the same error bodies as every other route — the key and its
``feedback`` scope (:mod:`~rewardloop.service.security`), the body parsed and validated in one step by
pydantic's JSON parser (``FeedbackCreateRequest``), the record's own validation, then the group-commit
writer — and answers 201 once the row is committed. It runs inside the request-metrics and body-size
middleware; ``/openapi.json`` documents it like any route (see ``app._document_feedback``).
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from pydantic import ValidationError
from starlette.datastructures import Headers

from rewardloop.service.errors import validation_payload
from rewardloop.service.feedback_writer import FeedbackRejected
from rewardloop.service.idempotency import scope_record_key
from rewardloop.service.middleware import ASGIApp, Receive, Scope, Send, send_json
from rewardloop.service.schemas import FeedbackCreateRequest
from rewardloop.service.security import key_of, plain_secret
from rewardloop.service.state import AppState
from rewardloop.store.apikeys import ApiKey
from rewardloop.types import RecordError

PATH = "/v1/feedback"
ROUTE = SimpleNamespace(path=PATH)  # what the metrics middleware labels requests with


async def _key(state: AppState, headers: Headers) -> ApiKey | tuple[int, dict[str, Any]]:
    secret = plain_secret(headers)
    if secret is None:
        return 401, {
            "detail": "missing API key: send `Authorization: Bearer <key>` or `X-API-Key: <key>` "
            "(create one with `rewardloop keys create`)"
        }
    key = await key_of(state, secret)
    if key is None:
        return 401, {"detail": "invalid or revoked API key"}
    if not key.allows("feedback"):
        scopes = ", ".join(key.scopes)
        return 403, {"detail": f"this key ({key.name!r}) lacks the 'feedback' scope; its scopes: {scopes}"}
    return key


async def store_feedback(
    state: AppState, headers: Headers, raw: bytes, record_key: str | None = None
) -> tuple[int, dict[str, Any]]:
    """Authenticate, validate and store one feedback row; (HTTP status, JSON body) to answer.
    ``record_key``: the id of a row sent without one (its ``Idempotency-Key``'s, service/idempotency.py)."""
    key = await _key(state, headers)
    if isinstance(key, tuple):
        return key
    try:
        body = FeedbackCreateRequest.model_validate_json(raw)
    except ValidationError as err:
        return validation_payload([{**e, "loc": ("body", *e["loc"])} for e in err.errors(include_url=False)])
    if body.id is None and record_key is not None:
        body = body.model_copy(update={"id": record_key})
    try:
        feedback = body.to_feedback()
    except RecordError as err:
        return 422, {"detail": f"body.{err.field}: {err.reason}", "field": f"body.{err.field}"}
    try:
        await state.writer.submit(feedback, key.project)
    except FeedbackRejected as err:
        return err.status, {"detail": str(err), "field": f"body.{err.field}" if err.field else None}
    return 201, {"id": feedback.id, "decision_id": feedback.decision_id}


class FeedbackRoute:
    """ASGI middleware answering ``POST /v1/feedback`` itself; everything else goes to the app."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        scope["route"] = ROUTE
        chunks = []
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away before sending its body
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        state: AppState = scope["app"].state.rl
        raw = b"".join(chunks)
        status, body = await store_feedback(state, Headers(scope=scope), raw, scope_record_key(scope))
        extra = [(b"www-authenticate", b"Bearer")] if status == 401 else []
        await send_json(send, status, body, extra)


__all__ = ["PATH", "FeedbackRoute", "store_feedback"]
