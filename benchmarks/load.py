"""Load run of the HTTP service: decide + feedback from a second process, over loopback only.

For each store (a SQLite file; PostgreSQL at REWARDLOOP_TEST_PG_URL, in a fresh schema, if it answers):

1. start ``uvicorn`` in a child process (1 worker on SQLite, ``--pg-workers`` on PostgreSQL) serving
   ``create_app`` with a stub policy provider (a fixed 3-label distribution per text: it measures the
   service, not a model);
2. from this process, ``--connections`` keep-alive HTTP/1.1 connections send ``POST /v1/decide`` for
   ``--decide-seconds``, then ``POST /v1/feedback`` (ratings, corrections, implicit signals, each with a
   client id) on those decisions for ``--seconds``; every answer's latency is recorded;
3. stop the server, then count in the store every decision and feedback row the server acknowledged
   (2xx): ``lost_rows`` is how many of them are missing.

As a reference in the same run, the SQLite feedback phase is repeated (shorter) with group commit off.
Then the real-model decide phases (SQLite): the intents classifier (MiniLM + a linear head) behind the
one serving path, micro-batched, then one request per encoder pass as the reference: closed-loop
throughput over ``--connections``, and p99 latency of an open-loop 100 req/s; the bare encoder's
texts/s in this process is the physical ceiling they are held against.

Ends with one JSON line: ``feedback_rps``, ``feedback_p99_ms``, ``errors``, ``lost_rows`` per store, and
under ``sqlite`` ``decide_real_rps`` and ``decide_real_p99_ms_at_100rps``.

    PYTHONPATH=src python benchmarks/load.py [--seconds 60] [--skip-postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
PG_URL = os.environ.get("REWARDLOOP_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
LABELS = ("billing", "shipping", "returns")


# ------------------------------------------------------------------------------ the server (child)


class StubPolicy:
    """A stand-in policy: a distribution fixed by the text's hash (no model; the service is measured)."""

    def decide(self, request):  # type: ignore[no-untyped-def]
        from rewardloop.service import DecideOutcome
        from rewardloop.types import Decision

        h = sum(map(ord, request.text or "")) % 3
        dist = [0.1, 0.1, 0.1]
        dist[h] = 0.8 if len(request.text or "") % 4 else 0.6  # a quarter of them go to review
        dist[(h + 1) % 3] = 1.0 - dist[h] - 0.1
        return DecideOutcome(
            Decision(
                policy="bench",
                policy_version="1",
                kind="classifier",
                actions=LABELS,
                action=LABELS[h],
                action_dist=tuple(dist),
                pscore=dist[h],
                latency_ms=0.1,
                text=request.text,
                metadata=dict(request.metadata),
            )
        )

    def list_policies(self):  # type: ignore[no-untyped-def]
        return []

    def experiments(self):  # type: ignore[no-untyped-def]
        return []


def bench_factory():  # type: ignore[no-untyped-def]
    """The app each uvicorn worker runs (settings from the environment)."""
    from rewardloop.config import ProjectConfig
    from rewardloop.service import create_app

    cfg = ProjectConfig()
    cfg.service.group_commit = os.environ.get("BENCH_GROUP_COMMIT", "1") == "1"
    stub = StubPolicy()
    return create_app(cfg, provider=stub, admin=stub, migrate=False)  # type: ignore[arg-type]


class RealProvider(StubPolicy):
    """The real intents classifier (MiniLM + a linear head over its labels) behind the one serving path,
    micro-batched unless ``BENCH_BATCH=0`` (the unbatched reference)."""

    def __init__(self) -> None:
        import torch

        from rewardloop.datasets.intents import load_intents
        from rewardloop.encoders import MiniLMEncoder
        from rewardloop.loop.serving import ServingPath
        from rewardloop.policies.classifier import ClassifierPolicy
        from rewardloop.policies.contract import Exploration
        from rewardloop.service.batching import MicroBatcher

        torch.manual_seed(0)
        # A seeded, untrained head: the encoder pass dominates, so the cost equals a trained head's.
        # cache_size=0: every request really runs the encoder.
        labels = load_intents(seed=0).labels
        policy = ClassifierPolicy(
            labels, encoder=MiniLMEncoder(cache_size=0), exploration=Exploration("sample")
        )
        policy.warm()
        batcher = MicroBatcher() if os.environ.get("BENCH_BATCH", "1") == "1" else MicroBatcher(max_batch=1)
        self.path = ServingPath("bench", None, lambda: None, lambda: "1", lambda v: policy, batcher.decide)  # type: ignore[arg-type]

    def decide(self, request):  # type: ignore[no-untyped-def]
        from rewardloop.loop.serving import request_rng
        from rewardloop.service import DecideOutcome
        from rewardloop.types import new_id

        ident = new_id()
        served = self.path.serve(request.context, request.unit_id, request_rng(ident), decision_id=ident)
        return DecideOutcome(served.decision)


def real_factory():  # type: ignore[no-untyped-def]
    """The app with the real classifier (settings from the environment)."""
    from rewardloop.config import ProjectConfig
    from rewardloop.service import create_app

    real = RealProvider()
    return create_app(ProjectConfig(), provider=real, admin=real, migrate=False)  # type: ignore[arg-type]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(
    url: str, port: int, workers: int, group_commit: bool, factory: str = "bench_factory", batch: bool = True
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "REWARDLOOP_STORE__URL": url,
        "BENCH_GROUP_COMMIT": "1" if group_commit else "0",
        "BENCH_BATCH": "1" if batch else "0",
        "HF_HUB_OFFLINE": "1",
        # as `rewardloop serve` sets it (cli/main.py): idle OpenMP threads sleep instead of spinning
        "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE"),
        "PYTHONPATH": os.pathsep.join([str(HERE.parent / "src"), os.environ.get("PYTHONPATH", "")]),
    }
    cmd = [
        sys.executable, "-m", "uvicorn", f"load:{factory}", "--factory", "--app-dir", str(HERE),
        "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers), "--loop", "uvloop",
        "--http", "httptools", "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env)
    deadline = time.monotonic() + 180  # the real model loads MiniLM first
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                if b"200 OK" in s.recv(1024):
                    return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("the server did not start within 180 s")


def tree_cpu_seconds(root: int) -> float:
    """CPU time (user + system) used so far by a process and all its descendants (Linux /proc)."""
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry)] = int(fields[1])
        times[int(entry)] = (int(fields[11]) + int(fields[12])) / tick
    tree, frontier = {root}, [root]
    while frontier:
        pid = frontier.pop()
        for child, parent in parents.items():
            if parent == pid and child not in tree:
                tree.add(child)
                frontier.append(child)
    return sum(times.get(pid, 0.0) for pid in tree)


# ------------------------------------------------------------------------------ the client (this one)


@dataclass
class Phase:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    server_cpu: float = 0.0
    error_samples: list[str] = field(default_factory=list)
    acked: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def rps(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    def pct(self, q: float) -> float:
        return float(np.percentile(np.array(self.latencies) * 1000, q)) if self.latencies else float("nan")


async def _request(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str, key: str, body: bytes
) -> tuple[int, bytes]:
    writer.write(
        b"POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
        % (path.encode(), key.encode(), len(body), body)
    )
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    return status, await reader.readexactly(length)


async def run_phase(port: int, key: str, path: str, make_body, seconds: float, connections: int) -> Phase:  # type: ignore[no-untyped-def]
    phase = Phase()
    stop = time.perf_counter() + seconds

    async def connection(i: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        rng = random.Random(i)
        try:
            while time.perf_counter() < stop:
                ident, body = make_body(rng)
                t0 = time.perf_counter()
                status, answer = await _request(reader, writer, path, key, body)
                phase.latencies.append(time.perf_counter() - t0)
                if 200 <= status < 300:
                    phase.acked.append(ident or json.loads(answer)["decision_id"])
                else:
                    phase.errors += 1
                    if len(phase.error_samples) < 3:
                        phase.error_samples.append(f"{status} {answer[:200]!r}")
        finally:
            writer.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(connection(i) for i in range(connections)))
    phase.seconds = time.perf_counter() - t0
    return phase


async def run_paced(port: int, key: str, make_body, rate: float, seconds: float, connections: int) -> Phase:  # type: ignore[no-untyped-def]
    """Open loop: requests scheduled at ``rate`` per second whatever the answers; a request's latency
    runs from its scheduled time (waiting for a free connection counts, so a slow server cannot hide)."""
    phase = Phase()
    pool: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    for _ in range(connections):
        pool.put_nowait(await asyncio.open_connection("127.0.0.1", port))
    rng = random.Random(0)

    async def one(due: float, body: bytes) -> None:
        conn = await pool.get()
        try:
            status, _ = await _request(*conn, "/v1/decide", key, body)
        finally:
            pool.put_nowait(conn)
        phase.latencies.append(time.perf_counter() - due)
        phase.errors += not 200 <= status < 300

    start = time.perf_counter()
    tasks = []
    for k in range(int(rate * seconds)):
        due = start + k / rate
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        tasks.append(asyncio.create_task(one(due, make_body(rng)[1])))
    await asyncio.gather(*tasks)
    phase.seconds = time.perf_counter() - start
    while not pool.empty():
        pool.get_nowait()[1].close()
    return phase


def intents_body():  # type: ignore[no-untyped-def]
    from rewardloop.datasets.intents import load_intents

    texts = load_intents(seed=0).traffic.texts

    def make(rng: random.Random) -> tuple[None, bytes]:
        return None, json.dumps({"policy": "bench", "text": rng.choice(texts)}).encode()

    return make


def encoder_ceiling(seconds: float = 5.0) -> tuple[float, float]:
    """Texts/s of the bare MiniLM encoder on batches of 32 intents texts in this process, one torch
    thread: the most one server worker could decide if everything but the encoder were free; and its
    CPU ms per text (which the machine's load inflates far less than its wall time)."""
    import torch

    from rewardloop.datasets.intents import load_intents
    from rewardloop.encoders import MiniLMEncoder

    torch.set_num_threads(1)
    texts, encoder = load_intents(seed=0).traffic.texts, MiniLMEncoder(cache_size=0)
    encoder.encode(texts[:32])  # load and warm
    done, start, cpu, k = 0, time.perf_counter(), time.process_time(), 0
    while time.perf_counter() - start < seconds:
        encoder.encode(texts[k : k + 32])
        done, k = done + 32, (k + 32) % (len(texts) - 32)
    return done / (time.perf_counter() - start), (time.process_time() - cpu) * 1000.0 / done


def run_real(url: str, args: argparse.Namespace, batch: bool) -> dict[str, float | int]:
    """The decide phases with the real classifier: closed-loop throughput, then open loop at 100 req/s."""
    from rewardloop.store import Store
    from rewardloop.store.apikeys import create_api_key

    store = Store.open(url)
    _, key = create_api_key(store, "load", "bench", role="client")
    store.close()
    port = free_port()
    server = start_server(url, port, 1, True, factory="real_factory", batch=batch)
    make = intents_body()
    try:
        asyncio.run(run_phase(port, key, "/v1/decide", make, 2.0, args.connections))  # warm-up
        cpu0 = tree_cpu_seconds(server.pid)
        peak = asyncio.run(run_phase(port, key, "/v1/decide", make, args.decide_seconds, args.connections))
        cpu_ms = (tree_cpu_seconds(server.pid) - cpu0) * 1000.0 / max(len(peak.latencies), 1)
        paced = asyncio.run(run_paced(port, key, make, 100.0, args.decide_seconds, args.connections))
    finally:
        server.terminate()
        server.wait(30)
    label = "micro-batched" if batch else "one request per encoder pass (reference)"
    print(f"\nreal intents classifier (MiniLM), SQLite, 1 worker, {label}")
    print(f"  closed loop, {args.connections} connections: {peak.rps:.0f} req/s, p50 {peak.pct(50):.1f} ms, "
          f"p99 {peak.pct(99):.1f} ms, errors {peak.errors}; server CPU {cpu_ms:.2f} ms/request")  # fmt: skip
    print(f"  open loop at 100 req/s: {paced.rps:.0f} req/s done, p50 {paced.pct(50):.1f} ms, "
          f"p99 {paced.pct(99):.1f} ms, errors {paced.errors}")  # fmt: skip
    return {
        "rps": round(peak.rps, 1),
        "p99_ms": round(peak.pct(99), 1),
        "p99_ms_at_100rps": round(paced.pct(99), 1),
        "errors": peak.errors + paced.errors,
        "server_cpu_ms_per_request": round(cpu_ms, 3),
    }


def feedback_maker(decision_ids: list[str]):  # type: ignore[no-untyped-def]
    def make(rng: random.Random) -> tuple[str, bytes]:
        ident = uuid.uuid4().hex
        d = rng.choice(decision_ids)
        kind = rng.random()
        if kind < 0.4:
            body = {
                "id": ident,
                "decision_id": d,
                "kind": "rating",
                "value": rng.randint(1, 5),
                "scale": [1, 5],
            }
        elif kind < 0.7:
            body = {"id": ident, "decision_id": d, "kind": "correction", "label": rng.choice(LABELS)}
        else:
            body = {"id": ident, "decision_id": d, "kind": "implicit", "value": rng.randint(0, 1)}
        return ident, json.dumps(body).encode()

    return make


def decide_body(rng: random.Random) -> tuple[None, bytes]:
    words = ["where", "is", "my", "parcel", "refund", "invoice", "late", "broken", "please", "help"]
    text = " ".join(rng.choice(words) for _ in range(rng.randint(3, 9)))
    return None, json.dumps({"policy": "bench", "text": text, "unit_id": f"u{rng.randint(0, 999)}"}).encode()


def count_stored(url: str, table: str, ids: list[str]) -> int:
    from sqlalchemy import text

    from rewardloop.store import Store

    store = Store.open(url, migrate=False)
    found = 0
    try:
        with store.engine.connect() as conn:
            for start in range(0, len(ids), 5000):
                chunk = ids[start : start + 5000]
                marks = ", ".join(f":i{j}" for j in range(len(chunk)))
                found += int(
                    conn.execute(
                        text(f"SELECT count(*) FROM {table} WHERE id IN ({marks})"),
                        {f"i{j}": v for j, v in enumerate(chunk)},
                    ).scalar_one()
                )
    finally:
        store.close()
    return found


def run_store(name: str, url: str, workers: int, args: argparse.Namespace, group_commit: bool = True,
              seconds: float | None = None) -> dict[str, float | int]:  # fmt: skip
    from rewardloop.store import Store
    from rewardloop.store.apikeys import create_api_key

    store = Store.open(url)
    _, key = create_api_key(store, "load", "bench", role="client")
    store.close()
    port = free_port()
    server = start_server(url, port, workers, group_commit)
    try:
        cpu0 = tree_cpu_seconds(server.pid)
        decide = asyncio.run(
            run_phase(port, key, "/v1/decide", decide_body, args.decide_seconds, args.connections)
        )
        cpu1 = tree_cpu_seconds(server.pid)
        feedback = asyncio.run(
            run_phase(port, key, "/v1/feedback", feedback_maker(decide.acked), seconds or args.seconds,
                      args.connections)
        )  # fmt: skip
        cpu2 = tree_cpu_seconds(server.pid)
        decide.server_cpu, feedback.server_cpu = cpu1 - cpu0, cpu2 - cpu1
    finally:
        server.terminate()
        server.wait(30)
    lost_decisions = len(set(decide.acked)) - count_stored(url, "decisions", list(set(decide.acked)))
    lost_feedback = len(feedback.acked) - count_stored(url, "feedback", feedback.acked)
    plural = "s" if workers > 1 else ""
    print(f"\n{name} ({workers} worker{plural}, group commit {'on' if group_commit else 'off'})")
    for what, phase in (("decide", decide), ("feedback", feedback)):
        print(
            f"  {what:9s} {len(phase.latencies):7d} requests in {phase.seconds:5.1f} s = "
            f"{phase.rps:7.0f} req/s   p50 {phase.pct(50):6.2f} ms  p99 {phase.pct(99):6.2f} ms"
            f"   errors {phase.errors}"
        )
        per = 1000 * phase.server_cpu / max(1, len(phase.latencies))
        print(f"            server CPU {per:.3f} ms per request (capacity ≈ {1000 / per:.0f} req/s per core)")
        for sample in phase.error_samples:
            print(f"    e.g. {sample}")
    print(
        f"  acknowledged and missing from the store: {lost_decisions} decisions, "
        f"{lost_feedback} feedback rows"
    )
    return {
        "feedback_rps": round(feedback.rps, 1),
        "feedback_p50_ms": round(feedback.pct(50), 2),
        "feedback_p99_ms": round(feedback.pct(99), 2),
        "decide_rps": round(decide.rps, 1),
        "decide_p99_ms": round(decide.pct(99), 2),
        "errors": decide.errors + feedback.errors,
        "lost_rows": lost_decisions + lost_feedback,
        "feedback_acked": len(feedback.acked),
        "feedback_server_cpu_ms_per_request": round(
            1000 * feedback.server_cpu / max(1, len(feedback.latencies)), 3
        ),
        "load_average_1min": round(os.getloadavg()[0], 2),
    }


def pg_schema_url() -> tuple[str, object] | None:
    from sqlalchemy import create_engine, text

    try:
        admin = create_engine(PG_URL, connect_args={"connect_timeout": 3})
        schema = f"rl_load_{uuid.uuid4().hex[:8]}"
        with admin.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
    except Exception as err:
        print(f"PostgreSQL skipped: nothing answers at {PG_URL} ({type(err).__name__})")
        return None

    def drop() -> None:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()

    sep = "&" if "?" in PG_URL else "?"
    return f"{PG_URL}{sep}options=-csearch_path%3D{schema}", drop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="feedback phase length per store")
    parser.add_argument("--decide-seconds", type=float, default=10.0, help="decide phase length per store")
    parser.add_argument("--connections", type=int, default=32, help="concurrent keep-alive connections")
    parser.add_argument("--pg-workers", type=int, default=2, help="uvicorn workers on PostgreSQL")
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--skip-reference", action="store_true", help="skip the group-commit-off run")
    parser.add_argument("--skip-real", action="store_true", help="skip the real-model decide phases")
    parser.add_argument("--only-real", action="store_true", help="run only the real-model decide phases")
    args = parser.parse_args()
    print(
        f"load run: {args.connections} connections, loopback, {os.cpu_count()} CPUs; stub policy (no model)"
    )
    print(f"load average at start: {os.getloadavg()[0]:.1f}")
    out: dict[str, dict[str, float | int]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        out["sqlite"] = (
            {} if args.only_real else run_store("SQLite (WAL)", f"sqlite:///{tmp}/load.db", 1, args)
        )
        if not args.skip_real:
            ceiling, encoder_cpu_ms = encoder_ceiling()
            print(
                f"\nphysical limit: the bare encoder does {ceiling:.0f} texts/s here now (batch 32, "
                f"1 thread), {encoder_cpu_ms:.2f} ms of CPU per text"
            )
            real = run_real(f"sqlite:///{tmp}/real.db", args, batch=True)
            alone = run_real(f"sqlite:///{tmp}/alone.db", args, batch=False)
            out["sqlite"].update(
                decide_real_rps=real["rps"],
                decide_real_p99_ms_at_100rps=real["p99_ms_at_100rps"],
                decide_real_errors=real["errors"],
                decide_real_unbatched_rps=alone["rps"],
                decide_real_unbatched_p99_ms_at_100rps=alone["p99_ms_at_100rps"],
                decide_real_vs_unbatched=round(real["rps"] / max(alone["rps"], 1e-9), 2),
                encoder_ceiling_texts_per_s=round(ceiling, 1),
                decide_real_vs_encoder_ceiling=round(real["rps"] / ceiling, 2),
                decide_real_server_cpu_ms_per_request=real["server_cpu_ms_per_request"],
                decide_real_unbatched_server_cpu_ms_per_request=alone["server_cpu_ms_per_request"],
                encoder_cpu_ms_per_text=round(encoder_cpu_ms, 3),
                decide_real_cpu_vs_encoder=round(real["server_cpu_ms_per_request"] / encoder_cpu_ms, 2),
            )
            print(f"\nmicro-batching: {out['sqlite']['decide_real_vs_unbatched']}x the unbatched req/s "
                  "(targets: >= 200 req/s, p99 <= 100 ms at 100 req/s)")  # fmt: skip
        if args.only_real:
            print(json.dumps(out))
            return
        if not args.skip_reference:
            ref = run_store("SQLite (WAL)", f"sqlite:///{tmp}/ref.db", 1, args, group_commit=False,
                            seconds=min(args.seconds, 10.0))  # fmt: skip
            out["sqlite_no_group_commit"] = ref
            print(f"\ngroup commit on SQLite: {out['sqlite']['feedback_rps'] / ref['feedback_rps']:.2f}x the "
                  f"feedback throughput of one transaction per request")  # fmt: skip
    if not args.skip_postgres:
        pg = pg_schema_url()
        if pg is not None:
            url, drop = pg
            try:
                out["postgresql"] = run_store("PostgreSQL", url, args.pg_workers, args)
            finally:
                drop()  # type: ignore[operator]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
