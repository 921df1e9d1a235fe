"""Admission control: shed load instead of queueing it, and stop waiting for slow request bodies.

- **In-flight bound.** At most ``max_in_flight`` requests of a worker run at once; one more is answered
  at once with 503 and ``Retry-After`` (the client backs off; a load balancer tries another worker)
  instead of joining a queue whose every request gets slower. Without a bound, a burst of 3,000
  connections was served by nobody quickly (p99 1.4 s) and nothing told clients to back off.
  Liveness and metrics (``/healthz``, ``/readyz``, ``/metrics``) are never refused, so a busy worker is
  not taken for a dead one.
- **Body timeout.** A request whose body has not arrived ``body_timeout`` seconds after the previous
  chunk is answered 408 and dropped (a slow-loris client cannot hold a slot forever). The wait
  applies to the body only, never to the response.

Plain ASGI, outermost in the stack (``service/app.py``), so a refused request costs a few microseconds.
"""

from __future__ import annotations

import math
from collections.abc import MutableMapping
from typing import Any

import anyio

from rewardloop.service.middleware import ASGIApp, Receive, Scope, Send, send_json

#: Paths that are never refused: health checks and scraping must see a busy worker as alive.
EXEMPT = frozenset({"/healthz", "/readyz", "/metrics"})


class Admission:
    """ASGI middleware bounding in-flight requests (503 + ``Retry-After``) and slow bodies (408).

    Parameters
    ----------
    limit : int
        Requests of this worker that may run at once (``service.max_in_flight``).
    timeout : float
        Seconds to wait for each chunk of a request body (``service.body_timeout_s``).
    retry_after : float
        What ``Retry-After`` tells a refused client, in seconds (rounded up).
    """

    def __init__(self, app: ASGIApp, limit: int, timeout: float, retry_after: float = 1.0) -> None:
        self.app = app
        self.max_in_flight = limit
        self.body_timeout = timeout
        self.retry_after = str(max(1, math.ceil(retry_after))).encode()
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in EXEMPT:
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.max_in_flight:
            await send_json(
                send,
                503,
                {
                    "detail": f"the service is at capacity ({self.max_in_flight} requests in flight); "
                    f"retry after {self.retry_after.decode()} s"
                },
                [(b"retry-after", self.retry_after)],
            )
            return
        self.in_flight += 1
        try:
            await _BodyDeadline(self.app, self.body_timeout)(scope, receive, send)
        finally:
            self.in_flight -= 1


class _BodyDeadline:
    """One request: ``receive`` with a deadline per body chunk; on a timeout the app is told the client
    went away, and the client gets 408 (unless a response had started)."""

    def __init__(self, app: ASGIApp, timeout: float) -> None:
        self.app = app
        self.timeout = timeout
        self.body_done = False
        self.timed_out = False
        self.started = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def timed_receive() -> MutableMapping[str, Any]:
            if self.body_done:
                message: MutableMapping[str, Any] = await receive()
                return message
            with anyio.move_on_after(self.timeout):
                message = await receive()
                if message["type"] != "http.request" or not message.get("more_body", False):
                    self.body_done = True
                return message
            self.timed_out = True
            self.body_done = True
            return {"type": "http.disconnect"}

        async def guarded_send(message: MutableMapping[str, Any]) -> None:
            if self.timed_out:
                return  # the client gets the 408 below, not what the app made of a "disconnect"
            self.started = True
            await send(message)

        try:
            await self.app(scope, timed_receive, guarded_send)
        except Exception:
            if not self.timed_out:
                raise
        if self.timed_out and not self.started:
            detail = f"the request body did not arrive within {self.timeout:g} s"
            await send_json(send, 408, {"detail": detail}, [(b"connection", b"close")])


__all__ = ["EXEMPT", "Admission"]
