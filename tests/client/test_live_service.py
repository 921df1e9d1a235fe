"""The SDK against a real service in a child process: killed mid-run and restarted, the SDK's retries
deliver every decision and every feedback exactly once; the async client and the local mode."""

from __future__ import annotations

import asyncio
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from benchmarks.load import free_port, start_server
from sqlalchemy import text

from rewardloop.client import AsyncClient, Client, RetryPolicy
from rewardloop.store import Store
from rewardloop.store.apikeys import create_api_key

RETRY = RetryPolicy(max_attempts=200, base_delay=0.02, max_delay=0.3)


def decision(n: int) -> dict[str, object]:
    return dict(
        policy="bench",
        policy_version="1",
        kind="router",
        actions=["a", "b"],
        action="a" if n % 2 else "b",
        action_dist=[0.5, 0.5],
        pscore=0.5,
        features=[float(n)],
    )


class Live:
    def __init__(self, url: str, key: str) -> None:
        self.url, self.key, self.port = url, key, free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = start_server(self.url, self.port, 1, True)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()  # SIGKILL: no graceful shutdown, in-flight requests lose their answers
        self.proc.wait()


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Live]:
    url = f"sqlite:///{tmp_path / 'live.db'}"
    store = Store.open(url)
    key = create_api_key(store, "app", "acme", role="admin")[1]
    store.close()
    server = Live(url, key)
    server.start()
    try:
        yield server
    finally:
        if server.proc is not None and server.proc.poll() is None:
            server.kill()


def _counts(url: str) -> tuple[int, int, int, int]:
    store = Store.open(url)
    with store.engine.connect() as conn:
        d, dk = conn.execute(text("select count(*), count(distinct idempotency_key) from decisions")).one()
        f, fk = conn.execute(text("select count(*), count(distinct id) from feedback")).one()
    store.close()
    return int(d), int(dk), int(f), int(fk)


def test_killed_and_restarted_service_gets_every_event_exactly_once(live: Live) -> None:
    client = Client(live.base, live.key, retry=RETRY, batch_size=50, linger=0.005, timeout=2.0)
    ids = client.log_decisions(decision(n) for n in range(1500))
    time.sleep(0.05)  # some batches are on their way
    live.kill()
    ids += client.log_decisions(decision(n) for n in range(1500, 3000))  # queued while the service is down
    time.sleep(0.5)
    live.start()
    report = client.flush()
    assert report.failed == [] and report.stored + report.replayed == 3000
    assert len(set(ids)) == 3000

    def send_feedback(start: int, stop: int) -> None:
        for i in ids[start:stop]:
            client.feedback(i, "rating", value=1, scale=(0, 1))

    worker = threading.Thread(target=send_feedback, args=(0, 300))
    worker.start()
    time.sleep(0.3)
    live.kill()
    time.sleep(0.3)
    live.start()
    worker.join()
    client.close()
    assert _counts(live.url) == (3000, 3000, 300, 300)


def test_async_client_logs_in_the_background_and_flushes(live: Live) -> None:
    async def run() -> tuple[list[str], int]:
        async with AsyncClient(live.base, live.key, retry=RETRY, batch_size=100) as client:
            ids = await client.log_decisions(decision(n) for n in range(250))
            report = await client.flush()
            for i in ids[:5]:
                await client.feedback(i, "rating", value=0.5, scale=(0, 1))
            rows = await client.export_rows(policy="bench")
            return ids, report.stored + len(rows) * 1000

    ids, both = asyncio.run(run())
    assert len(ids) == 250 and both == 250 + 5 * 1000
    assert _counts(live.url) == (250, 250, 5, 5)


def test_local_mode_writes_the_store_directly(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'local.db'}"
    with Client.local(url, project="acme", batch_size=2) as client:
        ids = client.log_decisions(decision(n) for n in range(3))
        client.log_decision(**decision(0), id=ids[0])  # a re-run of the same row
        report = client.flush()
        assert (report.stored, report.replayed, report.failed) == (3, 1, [])
        assert client.feedback(ids[0], "rating", value=1, scale=(0, 1), id="f1").id == "f1"
        with pytest.raises(Exception) as err:
            client.feedback("nope", "rating", value=1, scale=(0, 1))
        assert getattr(err.value, "status", None) == 404
        rows = client.export_rows()
        assert [(r["decision_id"], r["feedback_id"]) for r in rows] == [(ids[0], "f1")]
    assert _counts(url) == (3, 3, 1, 1)
