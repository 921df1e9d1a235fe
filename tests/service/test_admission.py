"""Admission control (issue 13, item 10): a bound on in-flight requests (503 + Retry-After), health
checks never refused, and a deadline on slow request bodies (408)."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson
from fastapi.testclient import TestClient

from rewardloop.config import ProjectConfig
from rewardloop.service import create_app
from rewardloop.service.admission import Admission
from rewardloop.store import Store

from .conftest import FakeRegistry, make_keys


class Held:
    """An app whose requests wait until ``release`` is set, then answer 200."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.running = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        while (await receive()).get("more_body", False):
            pass
        self.running += 1
        await self.release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


async def call(
    app: Any, path: str, chunks: list[bytes] | None = None, stall: bool = False
) -> tuple[int, dict]:
    """One request through ``app``: (status, headers); ``stall`` never sends the last body chunk."""
    pending = list(chunks or [b""])
    sent: list[dict] = []

    async def receive() -> dict:
        if pending:
            body = pending.pop(0)
            return {"type": "http.request", "body": body, "more_body": bool(pending) or stall}
        if stall:
            await asyncio.sleep(3600)
        await asyncio.sleep(3600)  # waiting for a disconnect that never comes
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    await app({"type": "http", "path": path, "method": "POST", "headers": []}, receive, send)
    start = sent[0]
    return start["status"], dict(start["headers"])


def test_requests_over_the_bound_get_503_with_retry_after_and_health_checks_pass() -> None:
    async def run() -> None:
        held = Held()
        app = Admission(held, limit=2, timeout=5.0, retry_after=2.0)
        first = [asyncio.create_task(call(app, "/v1/decide")) for _ in range(2)]
        while held.running < 2:
            await asyncio.sleep(0.01)
        status, headers = await call(app, "/v1/decide")
        assert status == 503 and headers[b"retry-after"] == b"2"
        health = asyncio.create_task(call(app, "/healthz"))  # not refused, though at capacity
        await asyncio.sleep(0.05)
        assert held.running == 3
        held.release.set()
        assert [(await t)[0] for t in (*first, health)] == [200, 200, 200]
        assert app.in_flight == 0
        assert (await call(app, "/v1/decide"))[0] == 200

    asyncio.run(run())


def test_a_body_that_stops_arriving_gets_408_and_frees_its_slot() -> None:
    async def run() -> None:
        held = Held()
        held.release.set()
        app = Admission(held, limit=1, timeout=0.1)
        status, headers = await asyncio.wait_for(call(app, "/v1/feedback", [b'{"deci'], stall=True), 5)
        assert status == 408 and headers[b"connection"] == b"close"
        assert app.in_flight == 0
        assert (await call(app, "/v1/feedback", [b"{}"]))[0] == 200

    asyncio.run(run())


class SlowRegistry(FakeRegistry):
    """Inference that takes 50 ms, so that a burst overlaps."""

    def decide(self, request: Any) -> Any:
        time.sleep(0.05)
        return super().decide(request)


def test_the_service_sheds_a_burst_instead_of_queueing_it(store: Store) -> None:
    cfg = ProjectConfig()
    cfg.service.max_in_flight = 4
    cfg.service.key_cache_seconds = 60.0
    registry = SlowRegistry()
    app = create_app(store, config=cfg, provider=registry, admin=registry)
    keys = make_keys(store)
    headers = {"Authorization": f"Bearer {keys['client']}"}
    body = orjson.dumps({"policy": "intent", "text": "turn on the lights"})
    with TestClient(app) as client:

        def one(_: int) -> tuple[int, str | None]:
            r = client.post(
                "/v1/decide", content=body, headers={**headers, "content-type": "application/json"}
            )
            return r.status_code, r.headers.get("retry-after")

        with ThreadPoolExecutor(48) as pool:
            answers = list(pool.map(one, range(96)))
        assert client.get("/healthz").status_code == 200
    statuses = {s for s, _ in answers}
    assert statuses <= {200, 503}
    assert 503 in statuses and 200 in statuses
    assert all(retry == "1" for s, retry in answers if s == 503)
