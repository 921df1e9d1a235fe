"""Online router learning across service workers, on PostgreSQL, with the learner killed mid-run.

1. A scratch schema in the PostgreSQL at REWARDLOOP_TEST_PG_URL (dropped at the end) and a registry
   folder; a LinUCB router over 3 arms (4 numeric features) registered as ``route``'s champion.
2. ``rewardloop serve``'s app in ``--workers`` uvicorn workers, and ``rewardloop learn --policy route``
   as its own process (publish every ``--every`` rewards or ``--interval`` seconds).
3. From this process, ``--connections`` keep-alive connections over loopback each loop: ``POST
   /v1/decide`` with a random context, then ``POST /v1/feedback`` with a thumbs rating drawn from a
   hidden linear model of the chosen arm, for ``--seconds``. At a third of the run the learner is
   killed (SIGKILL) and restarted at two thirds, so a backlog builds up and is caught up.
4. Once the learner has applied everything, it is stopped (SIGINT) and the store is read:

- ``rewards_applied_per_s``: the learner's catch-up rate after its restart (rewards applied between
  its first publish after the restart and the publish that reached the backlog's end, over the time
  between the two): what one learner process applies when it is not waiting for feedback;
- ``staleness_p50_s`` / ``staleness_p99_s``: per feedback row, from its acknowledgement (the 201,
  sent after its commit) to the first decision served by any worker with a state that includes it;
  ``staleness_p99_s_steady`` only over feedback whose state was published before the kill or that
  was sent once the restarted learner had caught up (not what the kill delayed); feedback answered
  after the run's last decision has no staleness to measure; ``ack_to_publish_p50_s``/``_p99_s`` and
  ``publish_to_served_p50_s``/``_p99_s`` split each row's staleness at the publish of its state: the
  learner's part (reading the log, applying, waiting for ``--every`` or ``--interval``) and the
  workers' (the NOTIFY or poll that brings the state, loading it, the next decision made with it);
- ``lost``: acknowledged feedback rows that no reward in the final state comes from;
  ``double_applied``: rewards counted more than once in the final state (its pulls minus its
  rewarded decisions);
- ``max_abs_diff_vs_replay``: the final state against an offline replay (``fit``) of the same
  decisions and rewards, over every learned array;
- ``learner_cpu_s``: the CPU both learner processes used (their two starts included), and
  ``learner_cpu_ms_per_reward`` that over the acknowledged feedback rows.

Ends with one JSON line.

    PYTHONPATH=src python benchmarks/online.py [--seconds 60] [--workers 4] [--connections 16]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from load import free_port  # noqa: E402  (the same helpers as the load benchmark)

PG_URL = os.environ.get("REWARDLOOP_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
POLICY, ARMS, DIM = "route", ["naive", "agentic", "web"], 4
#: The hidden reward model: P(thumbs up | x, arm) = sigmoid(W[arm] · x).
W = np.array([[1.0, -0.5, 0.0, 0.3], [-0.2, 1.0, 0.5, 0.0], [0.3, 0.2, -1.0, 0.6]])


def _env() -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(HERE.parent / "src"), os.environ.get("PYTHONPATH", "")]),
    }


def setup(work: Path) -> tuple[str, str, Path]:
    """The scratch schema (migrated), the champion router, the project file; returns (schema, url, yaml)."""
    from sqlalchemy import create_engine, text

    from rewardloop.learners.bandits import LinUCB
    from rewardloop.registry import Registry
    from rewardloop.store import Store

    schema = f"rl_online_{uuid.uuid4().hex[:10]}"
    with create_engine(PG_URL).begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    url = f"{PG_URL}{'&' if '?' in PG_URL else '?'}options=-csearch_path%3D{schema}"
    store = Store.open(url)
    router = LinUCB(ARMS, dim=DIM, alpha=0.3, random_state=0)
    router.reset()
    registry = Registry(store, work / "registry")
    registry.register(POLICY, router.save(work / "artifact"), "router", version="1.0.0")
    registry.activate(f"{POLICY}@1.0.0", actor="bench", reason="first")
    from rewardloop.store.apikeys import create_api_key

    _, key = create_api_key(store, "bench", "default", ["decide", "feedback", "read"])
    (work / "key").write_text(key)
    store.close()
    yaml = work / "rewardloop.yaml"
    yaml.write_text(
        f"store:\n  url: '{url}'\npolicies:\n  - name: {POLICY}\n    kind: router\n    labels: {ARMS}\n"
        f"rewards:\n  - name: thumbs\n    function: accuracy\ntraining:\n  reward_spec: thumbs\n"
        f"experiments:\n  registry_root: '{work / 'registry'}'\nonline:\n  poll_s: 1.0\n"
    )
    return schema, url, yaml


def start_service(yaml: Path, port: int, workers: int) -> subprocess.Popen[bytes]:
    env = {**_env(), "REWARDLOOP_SERVE_CONFIG": str(yaml)}
    cmd = [
        sys.executable, "-m", "uvicorn", "rewardloop.service.app:serve_factory", "--factory",
        "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers), "--loop", "uvloop",
        "--http", "httptools", "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env)
    import httpx

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1.0).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    proc.kill()
    raise RuntimeError("the service did not become ready within 120 s")


def start_learner(yaml: Path, every: int, interval: float, log: Path) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "rewardloop", "learn", "--policy", POLICY, "--config", str(yaml),
           "--every", str(every), "--interval", str(interval)]  # fmt: skip
    return subprocess.Popen(cmd, env=_env(), stdout=log.open("ab"), stderr=subprocess.STDOUT)


def reap(proc: subprocess.Popen[bytes]) -> float:
    """Wait for ``proc`` to end; the CPU seconds (user + system) it used over its life."""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_utime + usage.ru_stime


def wait_started(url: str, timeout: float = 120.0) -> None:
    """Until the learner has opened its lineage (its imports take seconds on a busy machine)."""
    from rewardloop.store import Store
    from rewardloop.store.online import read_lineage

    store = Store.open(url, migrate=False)
    deadline = time.monotonic() + timeout
    while read_lineage(store, POLICY, "1.0.0") is None and time.monotonic() < deadline:
        time.sleep(0.2)
    store.close()


async def client_loop(port: int, key: str, until: float, seed: int, acks: list[tuple[str, float]]) -> int:
    """decide → feedback until ``until``; each acknowledged feedback's (id, time). Returns errors."""
    import httpx

    rng = np.random.default_rng(seed)
    headers = {"Authorization": f"Bearer {key}"}
    errors = 0
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=30) as http:
        while time.time() < until:
            x = rng.normal(size=DIM)
            r = await http.post("/v1/decide", json={"policy": POLICY, "features": x.tolist()})
            if r.status_code != 200:
                errors += 1
                continue
            body = r.json()
            up = rng.random() < 1 / (1 + np.exp(-W[ARMS.index(body["action"])] @ x))
            fid = uuid.uuid4().hex
            f = await http.post(
                "/v1/feedback",
                json={"decision_id": body["decision_id"], "kind": "rating", "value": 1.0 if up else -1.0,
                      "scale": [-1.0, 1.0], "id": fid},
            )  # fmt: skip
            if f.status_code == 201:
                acks.append((fid, time.time()))
            else:
                errors += 1
    return errors


async def load(port: int, key: str, seconds: float, connections: int, acks: list[tuple[str, float]]) -> int:
    until = time.time() + seconds
    tasks = [client_loop(port, key, until, seed, acks) for seed in range(connections)]
    return sum(await asyncio.gather(*tasks))


def _ts(t: datetime) -> float:
    return t.timestamp()


def wait_caught_up(url: str, n_acks: int, timeout: float = 120.0) -> None:
    from rewardloop.store import Store
    from rewardloop.store.online import read_lineage

    store = Store.open(url, migrate=False)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lineage = read_lineage(store, POLICY, "1.0.0")
        if lineage is not None and lineage.rewards >= n_acks:
            break
        time.sleep(0.2)
    store.close()


def measure(
    url: str, work: Path, acks: list[tuple[str, float]], down: tuple[float, float]
) -> dict[str, float]:
    """The figures of the module docstring, from the store."""
    from sqlalchemy import select

    from rewardloop.loop.online_learner import STATE_KEY, max_abs_diff, published_router, replay_lineage
    from rewardloop.registry import Registry
    from rewardloop.rewards import RewardSpec
    from rewardloop.store import Store, read_decisions
    from rewardloop.store.tables import FeedbackRow, OnlineAppliedRow, RouterStateRow

    store = Store.open(url, migrate=False)
    with store.engine.connect() as conn:
        states = conn.execute(
            select(RouterStateRow.state_version, RouterStateRow.created_at, RouterStateRow.rewards)
            .where(RouterStateRow.policy == POLICY)
            .order_by(RouterStateRow.state_version)
        ).all()
        ledger = conn.execute(
            select(
                OnlineAppliedRow.decision_id, OnlineAppliedRow.feedback_ids, OnlineAppliedRow.state_version
            )
        ).all()
        fb = dict(conn.execute(select(FeedbackRow.id, FeedbackRow.decision_id)).all())
    applied_ids = {fid: s for _, fids, s in ledger for fid in fids}
    lost = sum(1 for fid, _ in acks if fid not in applied_ids)
    final = published_router(store, POLICY, "1.0.0")
    double = round(float(final.n_pulls_.sum())) - len(ledger)
    replayed, _ = replay_lineage(
        store,
        Registry(store, work / "registry"),
        POLICY,
        "1.0.0",
        RewardSpec("thumbs", function="accuracy"),
        {},
    )
    # Staleness: first served decision (any worker) whose state includes the feedback's state.
    served = sorted(
        (int(d.metadata[STATE_KEY]), _ts(d.created_at))
        for d in read_decisions(store, policy=POLICY)
        if d.metadata.get(STATE_KEY) is not None
    )
    first_at: dict[int, float] = {}
    best = float("inf")
    for s, t in reversed(served):  # earliest decision made with a state >= s
        best = min(best, t)
        first_at[s] = best
    # Catch-up rate: from the first publish after the restart to the one that covered the backlog.
    after = [(v, _ts(t), n) for v, t, n in states if _ts(t) > down[1]]
    backlog = sum(1 for _, t in acks if t <= down[1])
    end = next((row for row in after if row[2] >= backlog), after[-1] if after else None)
    rate = (end[2] - after[0][2]) / (end[1] - after[0][1]) if after and end and end[1] > after[0][1] else 0.0
    caught_up = end[1] if end is not None else down[1]
    published_at = {v: _ts(t) for v, t, _ in states}
    versions = sorted(first_at)
    stale, steady, to_publish, to_served = [], [], [], []
    for fid, t_ack in acks:
        state = applied_ids.get(fid)
        later = [v for v in versions if state is not None and v >= state]
        if later:
            lag = max(0.0, first_at[later[0]] - t_ack)
            stale.append(lag)
            # The two halves: the learner (read, apply, wait to publish) and the workers (pick the
            # state up, serve a decision with it).
            to_publish.append(max(0.0, published_at[state] - t_ack))
            to_served.append(max(0.0, first_at[later[0]] - published_at[state]))
            # Steady: published before the kill, or sent once the restarted learner had caught up.
            if (t_ack < down[0] and published_at[state] < down[0]) or t_ack > caught_up:
                steady.append(lag)
    store.close()
    return {
        "rewards_applied_per_s": round(rate, 1),
        **_percentiles("staleness", stale),
        "staleness_p99_s_steady": round(float(np.percentile(steady, 99)), 3) if steady else float("nan"),
        "lost": lost,
        "double_applied": double,
        "max_abs_diff_vs_replay": max_abs_diff(final, replayed),
        "states_published": len(states) - 1,
        "feedback_rows": len(fb),
        "staleness_measured": len(stale),
        "staleness_p50_s_steady": round(float(np.percentile(steady, 50)), 3) if steady else float("nan"),
        "steady_measured": len(steady),
        **_percentiles("ack_to_publish", to_publish),
        **_percentiles("publish_to_served", to_served),
    }


def _percentiles(name: str, seconds: list[float]) -> dict[str, float]:
    """``{name}_p50_s`` and ``{name}_p99_s`` of ``seconds`` (NaN when there are none)."""
    return {
        f"{name}_p{q}_s": round(float(np.percentile(seconds, q)), 3) if seconds else float("nan")
        for q in (50, 99)
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the load")
    parser.add_argument("--workers", type=int, default=4, help="uvicorn workers")
    parser.add_argument("--connections", type=int, default=16, help="concurrent client loops")
    parser.add_argument("--every", type=int, default=200, help="learner: publish every N rewards")
    parser.add_argument("--interval", type=float, default=0.2, help="learner: ... or T seconds")
    args = parser.parse_args()
    from sqlalchemy import create_engine, text

    work = Path(tempfile.mkdtemp(prefix="rl-online-"))
    schema, url, yaml = setup(work)
    port = free_port()
    service = learner = None
    try:
        service = start_service(yaml, port, args.workers)
        learner = start_learner(yaml, args.every, args.interval, work / "learner.log")
        wait_started(url)
        acks: list[tuple[str, float]] = []
        learner_cpu: list[float] = []  # CPU seconds of each learner process (the killed one, its restart)
        t0 = time.time()
        down = (t0 + args.seconds / 3, t0 + 2 * args.seconds / 3)

        async def run() -> int:
            nonlocal learner
            job = asyncio.ensure_future(
                load(port, (work / "key").read_text(), args.seconds, args.connections, acks)
            )
            await asyncio.sleep(down[0] - time.time())
            assert learner is not None
            learner.send_signal(signal.SIGKILL)  # mid-run, mid-batch: no chance to publish
            learner_cpu.append(reap(learner))
            await asyncio.sleep(down[1] - time.time())
            learner = start_learner(yaml, args.every, args.interval, work / "learner.log")
            return await job

        errors = asyncio.run(run())
        offered = len(acks) / (time.time() - t0)
        wait_caught_up(url, len(acks))
        learner.send_signal(signal.SIGINT)
        learner_cpu.append(reap(learner))
        service.send_signal(signal.SIGINT)
        service.wait(timeout=60)
        figures = measure(url, work, acks, down)
        cpu = {
            "learner_cpu_s": round(sum(learner_cpu), 2),
            "learner_cpu_ms_per_reward": round(1000 * sum(learner_cpu) / max(1, len(acks)), 2),
        }
        print(json.dumps({**figures, **cpu, "feedback_acked": len(acks), "pairs_per_s": round(offered, 1),
                          "errors": errors, "workers": args.workers, "seconds": args.seconds,
                          "load_average": round(os.getloadavg()[0], 2)}))  # fmt: skip
    finally:
        for proc in (learner, service):
            if proc is not None and proc.poll() is None:
                proc.kill()
        with create_engine(PG_URL).begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))


if __name__ == "__main__":
    main()
