"""Batched decision logging through the SDK to the service on loopback.

Starts ``uvicorn`` (1 worker, a SQLite file store, group commit on) in a child process, then logs
``--decisions`` router decisions with :class:`rewardloop.client.Client` (background batches of
``--batch-size`` to ``POST /v1/decisions/batch``) and waits for ``flush()``; prints one JSON line:
``{"sdk_batched_decisions_per_s": ..., ...}`` (every decision stored, checked in the store), with the
server's and the client's CPU time per decision (the server's process tree; robust where the wall
figure is not, on a shared machine) and the load average.

    python benchmarks/sdk.py [--decisions 100000] [--batch-size 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).parent))
from load import free_port, start_server, tree_cpu_seconds

from rewardloop.client import Client
from rewardloop.store import Store
from rewardloop.store.apikeys import create_api_key

ACTIONS = ("a", "b", "c")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--decisions", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'sdk.db'}"
        store = Store.open(url)
        key = create_api_key(store, "bench", "bench", role="admin")[1]
        port = free_port()
        server = start_server(url, port, 1, True)
        try:
            rows = [  # confident decisions (pscore 0.9): none is queued for review
                dict(
                    policy="bench",
                    policy_version="1",
                    kind="router",
                    actions=list(ACTIONS[n % 3 :] + ACTIONS[: n % 3]),
                    action=ACTIONS[n % 3],
                    action_dist=[0.9, 0.05, 0.05],
                    pscore=0.9,
                    features=[float(n % 7), 1.0],
                )
                for n in range(args.decisions)
            ]
            client = Client(
                f"http://127.0.0.1:{port}", key, batch_size=args.batch_size, queue_size=4 * args.batch_size
            )
            client.log_decisions(rows[: args.batch_size])  # warm the connection and the server
            client.flush()
            server_cpu, client_cpu = tree_cpu_seconds(server.pid), time.process_time()
            start = time.perf_counter()
            client.log_decisions(rows[args.batch_size :])
            report = client.flush()
            seconds = time.perf_counter() - start
            server_cpu = tree_cpu_seconds(server.pid) - server_cpu
            client_cpu = time.process_time() - client_cpu
            client.close()
        finally:
            server.kill()
            server.wait()
        with store.engine.connect() as conn:
            stored = int(conn.execute(text("select count(*) from decisions")).scalar_one())
        store.close()
    logged = args.decisions - args.batch_size
    assert report.failed == [] and report.stored == logged and stored == args.decisions, (report, stored)
    print(
        json.dumps(
            {
                "sdk_batched_decisions_per_s": round(logged / seconds),
                "decisions": logged,
                "batch_size": args.batch_size,
                "seconds": round(seconds, 3),
                # CPU per decision (robust where wall time is not, on a shared machine)
                "server_cpu_us_per_decision": round(1e6 * server_cpu / logged, 1),
                "client_cpu_us_per_decision": round(1e6 * client_cpu / logged, 1),
                "load_average": os.getloadavg()[0],
                "store": "sqlite",
            }
        )
    )


if __name__ == "__main__":
    main()
