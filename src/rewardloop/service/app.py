"""The app factory: no engine, no store and no model at import time; all of it is built in the lifespan."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException

from rewardloop.config import ProjectConfig
from rewardloop.loop.review import ReviewPolicy
from rewardloop.service import feedback_void
from rewardloop.service import openapi as openapi_document
from rewardloop.service.admission import Admission
from rewardloop.service.decision_writer import DecisionWriter
from rewardloop.service.errors import PROBLEM_JSON, as_problem, problem_response, validation_payload
from rewardloop.service.feedback_writer import FeedbackRejected, FeedbackWriter
from rewardloop.service.idempotency import IdempotencyKeys
from rewardloop.service.ingest import PATH, FeedbackRoute, store_feedback
from rewardloop.service.middleware import BodyLimit, Metrics, RequestId, RequestMetrics, SecurityHeaders
from rewardloop.service.personalizer import REQUEST_MODELS
from rewardloop.service.providers import (
    ClosableProvider,
    PolicyAdmin,
    PolicyProvider,
    ProviderError,
    WarmProvider,
    default_providers,
)
from rewardloop.service.quality import QualityGauges, monitor_forever
from rewardloop.service.schemas import ErrorResponse, FeedbackCreateRequest, FeedbackResponse
from rewardloop.service.security import KeyCache
from rewardloop.service.state import AppState
from rewardloop.store import Store
from rewardloop.store.apikeys import ApiKeyError
from rewardloop.store.review import ReviewError
from rewardloop.types import RecordError

TEMPLATES = Path(__file__).parent / "templates"

DESCRIPTION = """
Log decisions and feedback, decide with the policy in force, review unsure decisions, read stats and
export the data — per project. Every `/v1` route needs an API key (`Authorization: Bearer <key>` or
`X-API-Key`) with the scope it names: `decide`, `feedback`, `read`, `review`, `export` or `admin`.
Errors are RFC 9457 problems (`application/problem+json`): `{"type", "title", "status", "detail",
"field"}`, `field` naming the offending field. Every answer carries `X-Request-ID` (the caller's, or a
fresh one).
"""


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    status, body = validation_payload(list(exc.errors()))
    return JSONResponse(body, status, media_type=PROBLEM_JSON)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    body = as_problem(exc.status_code, {"detail": str(exc.detail)})
    return JSONResponse(body, exc.status_code, headers=exc.headers, media_type=PROBLEM_JSON)


async def _record_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RecordError)
    return problem_response(422, f"body.{exc.field}: {exc.reason}", f"body.{exc.field}")


_PROVIDER_STATUS = {"not_found": 404, "refused": 409, "invalid": 422, "unavailable": 503}
_REVIEW_STATUS = {"not_found": 404, "conflict": 409, "invalid": 422}


async def _provider_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ProviderError)
    return problem_response(_PROVIDER_STATUS[exc.kind], str(exc), exc.field)


async def _review_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ReviewError)
    return problem_response(_REVIEW_STATUS[exc.kind], str(exc), exc.field)


async def _key_error(request: Request, exc: Exception) -> JSONResponse:
    return problem_response(422, str(exc), str(exc).split(":")[0])


async def _feedback_rejected(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, FeedbackRejected)
    return problem_response(exc.status, str(exc), f"body.{exc.field}" if exc.field else None)


@dataclass
class Readiness:
    """What ``/readyz`` answers: ready once the provider's models are loaded (``warm``)."""

    ready: bool = False
    loaded: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def answer(self) -> JSONResponse:
        status = "ready" if self.ready and not self.failed else "failed" if self.failed else "warming"
        body = {"status": status, "loaded": self.loaded, "failed": self.failed}
        return JSONResponse(body, 200 if status == "ready" else 503)


async def _warm(provider: PolicyProvider, readiness: Readiness) -> None:
    """Load the provider's models in a thread (the event loop keeps answering ``/healthz``)."""
    try:
        if isinstance(provider, WarmProvider):
            readiness.loaded, readiness.failed = await anyio.to_thread.run_sync(provider.warm)
    except Exception as err:  # /readyz reports it; liveness and logging keep working
        readiness.failed = [f"warm-up: {type(err).__name__}: {err}"]
    readiness.ready = True


async def _close(provider: PolicyProvider) -> None:
    """Release what the provider holds beyond requests (its router-state watcher)."""
    if isinstance(provider, ClosableProvider):
        await anyio.to_thread.run_sync(provider.close)


async def _readyz(request: Request) -> JSONResponse:
    """Readiness: 200 once the policies in force are loaded and warmed, 503 before (or if one failed to
    load, naming it). ``/healthz`` is liveness."""
    readiness: Readiness = request.app.state.readiness
    return readiness.answer()


def _document_feedback(app: FastAPI) -> None:
    """Add ``POST /v1/feedback`` (served by :class:`~rewardloop.service.ingest.FeedbackRoute`, below the
    router) to the OpenAPI document, with its request and response schemas, and the request bodies the
    Personalizer routes parse themselves."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for model in (FeedbackCreateRequest, FeedbackResponse, ErrorResponse, *REQUEST_MODELS):
                spec = model.model_json_schema(ref_template="#/components/schemas/{model}")
                components.update(spec.pop("$defs", {}))
                components[model.__name__] = spec
            errors = {
                str(code): {
                    "description": what,
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}
                    },
                }
                for code, what in (
                    (400, "malformed JSON"),
                    (401, "missing, invalid or revoked API key"),
                    (403, "the key lacks the feedback scope"),
                    (404, "no such decision in this project"),
                    (413, "body too large"),
                    (422, "a field failed validation (named)"),
                    (503, "the store refused the write"),
                )
            }
            schema["paths"][PATH] = {
                "post": {
                    "tags": ["feedback"],
                    "summary": "Create Feedback",
                    "operationId": "create_feedback_v1_feedback_post",
                    "description": store_feedback.__doc__ or "",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/FeedbackCreateRequest"}
                            }
                        },
                    },
                    "responses": {
                        "201": {
                            "description": "stored (answered once the row is committed)",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/FeedbackResponse"}
                                }
                            },
                        },
                        **errors,
                    },
                }
            }
            app.openapi_schema = openapi_document.finish(schema)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _app_state(
    source: ProjectConfig | Store | str | None,
    cfg: ProjectConfig,
    provider: PolicyProvider | None,
    admin: PolicyAdmin | None,
    migrate: bool,
    metrics: Metrics,
) -> AppState:
    """What the running app holds: the store (``source``'s, or opened from its URL), the providers,
    the review policy and the two writers (not started yet)."""
    if isinstance(source, Store):
        store = source
    else:
        url = source if isinstance(source, str) else cfg.store.url
        store = Store.open(url, migrate=migrate, echo=cfg.store.echo, max_actions=cfg.store.max_actions)
    default_provider, default_admin = (
        default_providers(cfg, store) if provider is None or admin is None else (provider, admin)
    )
    writer = FeedbackWriter(
        store, group_commit=cfg.service.group_commit, max_batch=cfg.service.max_batch, metrics=metrics
    )
    review = ReviewPolicy.from_config(cfg.review)
    decisions = DecisionWriter(
        store,
        review,
        group_commit=cfg.service.group_commit,
        max_batch=cfg.service.max_batch,
        metrics=metrics,
    )
    return AppState(
        store=store,
        config=cfg,
        provider=provider or default_provider,
        admin=admin or default_admin,
        review=review,
        writer=writer,
        decisions=decisions,
        keys=KeyCache(cfg.service.key_cache_seconds),
        metrics=metrics,
        templates=Jinja2Templates(directory=str(TEMPLATES)),
    )


def _add_routes(app: FastAPI) -> None:
    """The error handlers and the routers: the API and its batches, the OpenAI-compatible chat route,
    feedback voids, operations, the dashboard, the raters and the local API docs."""
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RecordError, _record_error)
    app.add_exception_handler(ProviderError, _provider_error)
    app.add_exception_handler(ReviewError, _review_error)
    app.add_exception_handler(ApiKeyError, _key_error)
    app.add_exception_handler(FeedbackRejected, _feedback_rejected)

    from rewardloop.service import (
        api,
        batch,
        dashboard,
        docs,
        openai_compat,
        personalizer,
        raters_api,
        review_api,
    )

    app.include_router(api.v1)
    app.include_router(batch.router)
    app.include_router(openai_compat.router)
    app.include_router(personalizer.router)
    app.include_router(feedback_void.router)
    app.include_router(api.router)
    app.include_router(dashboard.router)
    docs.mount(app)
    app.include_router(raters_api.router)
    from rewardloop.service import contributors_api  # a page and a route of its own module

    app.include_router(contributors_api.router)
    app.include_router(review_api.router)
    app.add_api_route("/readyz", _readyz, methods=["GET"], tags=["operations"], include_in_schema=True)


def create_app(
    source: ProjectConfig | Store | str | None = None,
    *,
    config: ProjectConfig | None = None,
    provider: PolicyProvider | None = None,
    admin: PolicyAdmin | None = None,
    migrate: bool = True,
) -> FastAPI:
    """Build the service.

    Parameters
    ----------
    source : ProjectConfig, Store or str, optional
        A project config (its store is opened at start-up and closed at shutdown), an open Store (used as
        is, left open), or a store URL. Default: the project config from the environment / defaults.
    config : ProjectConfig, optional
        The service, review and store sections when ``source`` is a Store or URL.
    provider, admin : optional
        The policy provider and admin (see :mod:`rewardloop.service.providers`); default
        :func:`~rewardloop.service.providers.default_providers`.
    migrate : bool, default True
        Bring the store's schema to head at start-up (``rewardloop serve`` migrates once, before starting
        its workers, and passes False).

    Examples
    --------
    >>> app = create_app("sqlite://")  # nothing is opened until the app starts
    >>> app.title
    'rewardloop'
    """
    cfg = source if isinstance(source, ProjectConfig) else (config or ProjectConfig())
    metrics = Metrics()
    gauges = QualityGauges(metrics)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = _app_state(source, cfg, provider, admin, migrate, metrics)
        app.state.rl = state
        writer, decisions, store = state.writer, state.decisions, state.store
        await writer.start()
        await decisions.start()
        # Models load in the background; /readyz answers 200 once they have (the first requests of a
        # fresh worker used to race each other into the transformers import).
        app.state.readiness = Readiness()
        warming = asyncio.create_task(_warm(app.state.rl.provider, app.state.readiness))
        mcfg = cfg.evaluation.monitor
        gauging = (
            asyncio.create_task(monitor_forever(store, mcfg, gauges)) if mcfg.metrics_interval_s else None
        )
        try:
            yield
        finally:
            if gauging is not None:
                gauging.cancel()
            await warming
            await writer.stop()
            await decisions.stop()
            await _close(state.provider)
            if not isinstance(source, Store):  # opened here: closed here
                store.close()

    app = FastAPI(
        title="rewardloop",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # served from local assets (service/docs.py), never from a CDN
        redoc_url=None,
    )
    _add_routes(app)
    _document_feedback(app)
    # add_middleware puts each one outside the previous: FeedbackRoute innermost, RequestId outermost.
    app.add_middleware(FeedbackRoute)
    app.add_middleware(IdempotencyKeys)  # around every /v1 write, POST /v1/feedback included
    app.add_middleware(BodyLimit, max_bytes=cfg.service.max_body_bytes)
    app.add_middleware(RequestMetrics, metrics=metrics)
    app.add_middleware(Admission, limit=cfg.service.max_in_flight, timeout=cfg.service.body_timeout_s)
    app.add_middleware(SecurityHeaders)  # every answer, the size limit's 413 too
    app.add_middleware(RequestId)  # outermost: every answer carries X-Request-ID
    return app


def serve_factory() -> FastAPI:
    """The app ``rewardloop serve`` runs in each worker: the project file named by
    ``REWARDLOOP_SERVE_CONFIG`` (or the defaults), environment overrides applied, store already migrated."""
    import os

    from rewardloop.config import load_config

    return create_app(load_config(os.environ.get("REWARDLOOP_SERVE_CONFIG")), migrate=False)
