"""Ingest speed: decisions and feedback written through the store, against the bare driver.

For each database (SQLite file in WAL mode; PostgreSQL when one answers) and batch size (1 and 1,000),
rows/s of:

- ``ours``: ``write_decisions`` / ``write_feedback`` of records (``Decision`` / ``Feedback`` objects, as
  an application using the Python API holds them): serialised and written in one transaction per batch
  (SQLite: executemany; PostgreSQL: COPY into a staging table, then one INSERT ... ON CONFLICT DO
  NOTHING, under a savepoint and without looking up the stored ids first for 64 rows or more, rolled
  back to the careful path if any row was skipped; feedback also checks that its decisions exist);
- ``ours+parse``: the same from plain mappings (as ``rewardloop import`` and the HTTP service get
  them), every row validated into a record first;
- ``driver``: the bare driver (``sqlite3`` / ``psycopg``) running ``executemany`` of the same rows,
  already serialised, with one commit per batch: the reference. On SQLite a feedback row's log
  position, which ours reads from the log in the same statement (migration 0007), is given to the
  driver as a ready value (consecutive integers): the same row contents, none of the work of
  numbering them.

Each figure is the median of ``--repeats`` runs into emptied tables. Ends with one JSON line.

    python benchmarks/ingest.py [--rows 20000] [--repeats 5] [--pg URL]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import create_engine, text

from rewardloop.store import Store, write_decisions, write_feedback
from rewardloop.store.bulk import (
    _DECISION_COLUMNS,
    _FEEDBACK_COLUMNS,
    _decision_params,
    _feedback_params,
    _time_adapter,
)
from rewardloop.types import decision_from_dict, feedback_from_dict

PG_DEFAULT = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
LABELS = [f"intent_{k}" for k in range(10)]
T0 = datetime(2026, 11, 1, tzinfo=UTC)


def decision_rows(n: int, tag: str) -> list[dict[str, Any]]:
    """Realistic classifier decisions: 10 labels, a text, metadata, a full distribution."""
    rows = []
    for i in range(n):
        a = i % 10
        dist = [0.02] * 10
        dist[a] = 0.82
        rows.append(
            {
                "id": f"{tag}-{i}",
                "policy": "intent",
                "policy_version": "3",
                "kind": "classifier",
                "actions": LABELS,
                "action": LABELS[a],
                "action_dist": dist,
                "pscore": 0.82,
                "latency_ms": 4.2,
                "text": f"please turn on the lights in room {i}",
                "metadata": {"user_id": f"u{i % 997}", "category": "lights"},
                "idempotency_key": f"{tag}-req-{i}",
                "created_at": (T0 + timedelta(milliseconds=i)).isoformat(),
            }
        )
    return rows


def feedback_rows(decisions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "id": f"f-{d['id']}",
            "decision_id": d["id"],
            "kind": "rating",
            "value": 4,
            "scale": [1, 5],
            "rater_id": f"r{i % 7}",
            "authority": 0.8,
            "created_at": d["created_at"],
        }
        for i, d in enumerate(decisions)
    ]


def empty(store: Store) -> None:
    with store.engine.begin() as conn:
        if store.dialect == "postgresql":
            conn.execute(text("TRUNCATE feedback, rewards, review_items, decisions CASCADE"))
        else:
            for t in ("feedback", "rewards", "review_items", "decisions"):
                conn.execute(text(f"DELETE FROM {t}"))


def rate(fn: Callable[[], int], repeats: int, reset: Callable[[], None]) -> float:
    rates = []
    for _ in range(repeats):
        reset()
        start = time.perf_counter()
        n = fn()
        rates.append(n / (time.perf_counter() - start))
    return statistics.median(rates)


def ours(store: Store, write: Any, rows: list[dict[str, Any]], batch: int) -> Callable[[], int]:
    def run() -> int:
        written = 0
        for start in range(0, len(rows), batch):
            written += write(store, rows[start : start + batch]).written
        assert written == len(rows), (written, len(rows))
        return written

    return run


def driver(store: Store, table: str, columns: list[str], params: list[tuple[Any, ...]], batch: int):
    """The bare driver: executemany of pre-serialised rows, one commit per batch."""
    cols = ", ".join(columns)
    if store.dialect == "sqlite":
        import sqlite3

        path = store.engine.url.database
        sql = f"INSERT INTO {table} ({cols}) VALUES ({', '.join('?' * len(columns))})"
        connect = lambda: sqlite3.connect(path)  # noqa: E731
    else:
        import psycopg

        url = store.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        sql = f"INSERT INTO {table} ({cols}) VALUES ({', '.join(['%s'] * len(columns))})"
        connect = lambda: psycopg.connect(url)  # noqa: E731

    def run() -> int:
        conn = connect()
        if store.dialect == "sqlite":
            conn.execute("PRAGMA synchronous=NORMAL")
        try:
            cur = conn.cursor()
            for start in range(0, len(params), batch):
                cur.executemany(sql, params[start : start + batch])
                conn.commit()
        finally:
            conn.close()
        return len(params)

    return run


def bench_database(store: Store, n: int, repeats: int) -> dict[str, float]:
    out: dict[str, float] = {}
    decisions = decision_rows(n, "bench")
    feedback = feedback_rows(decisions)
    time_of = _time_adapter(store.dialect)
    d_records = [decision_from_dict(r) for r in decisions]
    f_records = [feedback_from_dict(r) for r in feedback]
    d_params = [_decision_params(d, time_of) for d in d_records]
    f_params = [_feedback_params(f, "default", time_of) for f in f_records]
    f_columns = _FEEDBACK_COLUMNS
    if store.dialect == "sqlite":  # the log position is part of the row (PostgreSQL: a column default)
        f_columns = [*f_columns, "log_seq"]
        f_params = [(*p, seq) for seq, p in enumerate(f_params, start=1)]

    def reset_all() -> None:
        empty(store)

    for batch in (1, 1000):
        # Batches of one are slow by nature (a transaction each): a tenth of the rows is plenty.
        size = n if batch > 1 else max(n // 10, 200)
        dr, fr, dp, fp = d_records[:size], f_records[:size], d_params[:size], f_params[:size]

        def reset_fb(size: int = size) -> None:
            empty(store)
            write_decisions(store, decisions[:size])

        out[f"decisions_b{batch}_ours"] = rate(ours(store, write_decisions, dr, batch), repeats, reset_all)
        out[f"decisions_b{batch}_parse"] = rate(
            ours(store, write_decisions, decisions[:size], batch), repeats, reset_all
        )
        out[f"decisions_b{batch}_driver"] = rate(
            driver(store, "decisions", _DECISION_COLUMNS, dp, batch), repeats, reset_all
        )
        out[f"feedback_b{batch}_ours"] = rate(ours(store, write_feedback, fr, batch), repeats, reset_fb)
        out[f"feedback_b{batch}_driver"] = rate(
            driver(store, "feedback", f_columns, fp, batch), repeats, reset_fb
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=20_000, help="rows per batched run")
    ap.add_argument("--repeats", type=int, default=5, help="runs per figure (median reported)")
    ap.add_argument(
        "--pg", default=os.environ.get("REWARDLOOP_TEST_PG_URL", PG_DEFAULT), help="PostgreSQL URL"
    )
    args = ap.parse_args()

    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.open(f"sqlite:///{tmp}/ingest.db")
        results["sqlite"] = bench_database(store, args.rows, args.repeats)
        store.close()
    schema = f"rl_bench_{os.getpid()}"
    try:
        admin = create_engine(args.pg, connect_args={"connect_timeout": 3})
        with admin.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
    except Exception as err:
        print(f"PostgreSQL not reachable at {args.pg} ({type(err).__name__}): skipped")
        admin = None
    if admin is not None:
        try:
            store = Store.open(f"{args.pg}?options=-csearch_path%3D{schema}")
            results["postgres"] = bench_database(store, args.rows, args.repeats)
            store.close()
        finally:
            with admin.begin() as conn:
                conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))

    print(f"\ningest, rows/s (median of {args.repeats}; {args.rows:,} rows per batched run)")
    print(
        f"{'database':10} {'what':10} {'batch':>5} {'ours':>10} {'ours+parse':>11} {'driver':>10} "
        f"{'ours/driver':>12}"
    )
    for db, r in results.items():
        for what in ("decisions", "feedback"):
            for batch in (1, 1000):
                o, d = r[f"{what}_b{batch}_ours"], r[f"{what}_b{batch}_driver"]
                p = r.get(f"{what}_b{batch}_parse")
                ps = f"{p:>11,.0f}" if p else f"{'':>11}"
                print(f"{db:10} {what:10} {batch:>5} {o:>10,.0f} {ps} {d:>10,.0f} {o / d:>12.2f}")
    print(
        "\nlimit: the bare driver is the floor of the database's own work (parse, index, WAL) for the same "
        "rows, already serialised; ours adds validation, serialisation and the id/reference checks on top "
        "(targets: decisions >= 1.0x, feedback >= 0.8x the driver)"
    )
    summary: dict[str, Any] = {"rows": args.rows, "repeats": args.repeats, "load_average": os.getloadavg()[0]}
    for db in ("sqlite", "postgres"):
        r = results.get(db)
        summary[f"{db}_batched_rows_per_s"] = round(r["decisions_b1000_ours"]) if r else None
        summary[f"{db}_vs_driver"] = (
            round(r["decisions_b1000_ours"] / r["decisions_b1000_driver"], 3) if r else None
        )
        summary[f"{db}_feedback_batched_rows_per_s"] = round(r["feedback_b1000_ours"]) if r else None
        summary[f"{db}_feedback_vs_driver"] = (
            round(r["feedback_b1000_ours"] / r["feedback_b1000_driver"], 3) if r else None
        )
        summary[f"feedback_{db}_vs_driver"] = summary[f"{db}_feedback_vs_driver"]  # the name
        summary[f"{db}_batched_parse_rows_per_s"] = round(r["decisions_b1000_parse"]) if r else None
        summary[f"{db}_single_rows_per_s"] = round(r["decisions_b1_ours"]) if r else None
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
