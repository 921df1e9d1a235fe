"""Plain ASGI middleware: the request-size limit and the Prometheus request metrics.

Plain ASGI rather than Starlette's ``BaseHTTPMiddleware``: that one costs a task and a queue per
request, which shows at thousands of requests a second.
"""

from __future__ import annotations

import logging
import os
import re
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson
from prometheus_client import CollectorRegistry, Counter, Histogram

from rewardloop.service.errors import PROBLEM_JSON, as_problem

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class Metrics:
    """The service's Prometheus instruments, in a registry of their own (one per app).

    With ``PROMETHEUS_MULTIPROC_DIR`` set (several workers), prometheus-client writes them to files in
    that folder and ``/metrics`` sums every worker's.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "rewardloop_http_requests", "HTTP requests answered", ["route", "method", "status"], registry=r
        )
        self.latency = Histogram(
            "rewardloop_http_request_duration_seconds",
            "time to answer a request",
            ["route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=r,
        )
        # No policy label: /metrics needs no key, and policy names are project data (one project must
        # not learn another's). Per-policy numbers are in the project-scoped /v1/stats.
        self.decisions = Counter(
            "rewardloop_decisions", "decisions logged", ["variant", "source"], registry=r
        )
        self.feedback = Counter("rewardloop_feedback", "feedback rows stored", ["kind"], registry=r)
        self.review_enqueued = Counter(
            "rewardloop_review_enqueued", "decisions queued for review", ["reason"], registry=r
        )
        self.review_resolved = Counter("rewardloop_review_resolved", "review items resolved", registry=r)
        self.batch_size = Histogram(
            "rewardloop_commit_rows",
            "rows per group commit, by writer (feedback, decisions)",
            ["writer"],
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
            registry=r,
        )

    def exposition_registry(self) -> CollectorRegistry:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client import multiprocess

            merged = CollectorRegistry()
            multiprocess.MultiProcessCollector(merged)  # type: ignore[no-untyped-call]
            return merged
        return self.registry


async def send_json(
    send: Send, status: int, body: dict[str, Any], headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    """Answer with a JSON body (plain ASGI); an error (status >= 400) as an RFC 9457 problem."""
    media = b"application/json"
    if status >= 400:
        body, media = as_problem(status, body), PROBLEM_JSON.encode()
    payload = orjson.dumps(body)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", media),
                (b"content-length", str(len(payload)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


class Answering:
    """A ``send`` that records the answer's status and adds ``headers`` to it."""

    def __init__(self, send: Send, headers: list[tuple[bytes, bytes]] | None = None) -> None:
        self.send = send
        self.headers = headers or []
        self.status = 500

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = int(message["status"])
            if self.headers:
                message["headers"] = [*message.get("headers", []), *self.headers]
        await self.send(message)


class HttpMiddleware(ABC):
    """What each middleware here shares: it wraps ``app`` and handles HTTP requests in :meth:`http`;
    other scopes (lifespan, websockets) pass through untouched."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.http(scope, receive, send)

    @abstractmethod
    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one HTTP request (``scope["type"] == "http"``)."""


class BodyLimit(HttpMiddleware):
    """Refuse bodies larger than ``max_bytes`` with 413 before the route runs (so nothing is written):
    at once from ``Content-Length``; a body without one (chunked) is read up to the limit first, and
    refused as soon as it passes it."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        super().__init__(app)
        self.max_bytes = max_bytes

    def _message(self) -> dict[str, Any]:
        return {"detail": f"request body too large: the limit is {self.max_bytes} bytes", "field": "body"}

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        length: int | None = None
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    await send_json(send, 400, {"detail": "Content-Length is not a number", "field": "body"})
                    return
        if length is not None:
            if length > self.max_bytes:
                await send_json(send, 413, self._message())
                return
            await self.app(scope, receive, send)
            return
        if scope.get("method") in ("GET", "HEAD", "DELETE", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        # No length given: buffer (at most max_bytes), then replay to the app.
        messages: list[Message] = []
        size = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            if size > self.max_bytes:
                await send_json(send, 413, self._message())
                return
            if not message.get("more_body", False):
                break

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)


class RequestMetrics(HttpMiddleware):
    """Count and time every request by route template (``/v1/review/{item_id}/claim``), not raw path."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        super().__init__(app)
        self.metrics = metrics

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        start = time.perf_counter()
        answer = Answering(send)
        try:
            await self.app(scope, receive, answer)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or "(unmatched)"
            self.metrics.requests.labels(path, scope.get("method", ""), str(answer.status)).inc()
            self.metrics.latency.labels(path).observe(time.perf_counter() - start)


#: The pages' Content-Security-Policy: scripts only from this site's files (no inline script, no eval,
#: no CDN: plotly.js is served from the installed package), nothing may frame the pages, forms post
#: only here. Inline *styles* stay allowed: the pages' stylesheet is inline and plotly.js sets styles.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
#: /docs and /redoc (service/docs.py: Swagger UI / ReDoc from local assets) have an inline bootstrap
#: script and show only the OpenAPI document (no stored data): framing and sniffing headers, no CSP.
_DOC_PATHS = ("/docs", "/redoc")


class SecurityHeaders(HttpMiddleware):
    """Add the browser-hardening headers to every answer: ``Content-Security-Policy`` (see :data:`CSP`),
    ``X-Frame-Options: DENY``, ``X-Content-Type-Options: nosniff`` and ``Referrer-Policy: same-origin``."""

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        extra = [
            (b"x-frame-options", b"DENY"),
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"same-origin"),
        ]
        if not str(scope.get("path", "")).startswith(_DOC_PATHS):
            extra.append((b"content-security-policy", CSP.encode()))

        await self.app(scope, receive, Answering(send, extra))


_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:\-]{1,128}$")
REQUEST_LOG = logging.getLogger("rewardloop.service.requests")


class RequestId(HttpMiddleware):
    """``X-Request-ID`` in and out: the caller's (1-128 of ``A-Za-z0-9._:-``), else a fresh one; kept in
    ``scope["state"]["request_id"]``, sent back on every answer, and in the request log line
    (logger ``rewardloop.service.requests``, INFO)."""

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        given = next((v for k, v in scope["headers"] if k == b"x-request-id"), None)
        rid = given if given is not None and _REQUEST_ID.match(given) else uuid.uuid4().hex.encode()
        scope.setdefault("state", {})["request_id"] = rid.decode()
        start = time.perf_counter()
        answer = Answering(send, [(b"x-request-id", rid)])
        try:
            await self.app(scope, receive, answer)
        finally:
            if REQUEST_LOG.isEnabledFor(logging.INFO):
                REQUEST_LOG.info(
                    "%s %s %d %.1fms request_id=%s",
                    scope.get("method", ""),
                    scope.get("path", ""),
                    answer.status,
                    1000 * (time.perf_counter() - start),
                    rid.decode(),
                )
