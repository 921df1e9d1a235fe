"""The driver's own bulk path: ``executemany`` on SQLite, ``COPY`` into a temporary table then one
``INSERT ... SELECT ... ON CONFLICT DO NOTHING`` on PostgreSQL; the optimistic insert of a batch that
is all new (:func:`_insert_if_all_new`); and the rows' column values.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Connection

from rewardloop.store.tables import Base, DecisionRow, FeedbackRow, RewardRow
from rewardloop.types import Decision, Feedback, Reward

#: Below this many rows PostgreSQL takes executemany (pipelined); above, COPY.
_COPY_MIN_ROWS = 64
#: From this many rows a PostgreSQL batch is first inserted optimistically (:func:`_insert_if_all_new`):
#: the savepoint's two extra round trips cost less than the look-up of the stored ids they save. Below,
#: a replay (a retried request: the usual single row) would pay for the rolled-back insert as well.
_OPTIMISTIC_MIN_ROWS = 64


def _json(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def _sqlite_time(t: datetime) -> str:
    # The format SQLAlchemy's SQLite DateTime reads back; times are stored in UTC. Records hold UTC
    # times already (types.limits.check_time): cutting "+00:00" off costs a third of converting.
    if t.tzinfo is UTC:
        return t.isoformat(" ", "microseconds")[:-6]
    return t.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def _pg_time(t: datetime) -> datetime:
    return t.astimezone(UTC)


def _optional(time: Callable[[datetime], Any], t: datetime | None) -> Any:
    return None if t is None else time(t)


def _columns(table: type[Base], *left_out: str) -> list[str]:
    """The table's columns in their declared order: the order of the values ``_*_params`` return."""
    return [c.name for c in table.__table__.columns if c.name not in left_out]


_DECISION_COLUMNS = _columns(DecisionRow)


def _action_set(d: Decision) -> str | None:
    if d.label_space is None:
        return None
    return _json({"labels": d.label_space, "chosen": d.chosen_set, "probs": d.label_probs})


def _decision_params(d: Decision, time: Callable[[datetime], Any]) -> tuple[Any, ...]:
    return (
        d.id,
        d.policy,
        d.policy_version,
        d.kind,
        _json(d.actions),
        d.action,
        _json(d.action_dist),
        d.pscore,
        d.confidence,
        d.latency_ms,
        d.text,
        _json(d.features),
        _json(d.candidates),
        _json(dict(d.metadata)) if d.metadata else None,
        _json(d.ranking),
        d.experiment,
        d.variant,
        d.variant_share,
        _json([dataclasses.asdict(s) for s in d.trace]) if d.trace else None,
        d.idempotency_key,
        time(d.created_at),
        _optional(time, d.client_time),
        _action_set(d),
    )


# A row is written unvoided (the void columns keep their NULL); its log position is not a value of the
# record: the insert gives it (:data:`_SQLITE_COMPUTED`; on PostgreSQL the column's default).
_FEEDBACK_COLUMNS = _columns(FeedbackRow, "voided_at", "voided_by", "void_reason", "log_seq")
#: SQLite: columns that each inserted row of a table takes from an SQL expression, not from the caller.
#: A feedback row's log position (migration 0008) is the next one, read by the row's own ``INSERT``:
#: writers take turns on SQLite, so positions follow commit order and the rows of one batch take
#: consecutive ones; a row skipped as a conflict takes none. (It replaces a per-row trigger that
#: updated each row after writing it, doubling the database's work per row.)
_SQLITE_COMPUTED: dict[str, tuple[tuple[str, str], ...]] = {
    "feedback": (("log_seq", "(SELECT COALESCE(MAX(log_seq), 0) + 1 FROM feedback)"),),
}


def _feedback_params(f: Feedback, project: str, time: Callable[[datetime], Any]) -> tuple[Any, ...]:
    low, high = f.scale if f.scale is not None else (None, None)
    return (
        project,
        f.id,
        f.decision_id,
        f.kind,
        f.value,
        low,
        high,
        f.label,
        f.preferred,
        f.rejected,
        _json(dict(f.scores)) if f.scores else None,
        f.rater_id,
        f.authority,
        f.source,
        f.comment,
        time(f.created_at),
        _optional(time, f.client_time),
        _json(f.labels),
    )


_REWARD_COLUMNS = _columns(RewardRow)


def _reward_params(r: Reward, time: Callable[[datetime], Any]) -> tuple[Any, ...]:
    return (
        r.decision_id,
        r.spec,
        r.spec_version,
        r.value,
        _json(dict(r.components)),
        _json(list(r.feedback_ids)),
        r.disagreement,
        time(r.created_at),
    )


def _time_adapter(dialect: str) -> Callable[[datetime], Any]:
    return _sqlite_time if dialect == "sqlite" else _pg_time


def _bulk_insert(
    conn: Connection, table: str, columns: Sequence[str], rows: list[tuple[Any, ...]], upsert_keys: str = ""
) -> int:
    """Insert ``rows`` with the driver's bulk path; conflicting rows are skipped (or updated).

    Returns the number of rows inserted or updated. ``upsert_keys`` (a column list) turns "skip" into
    "update every other column".
    """
    if not rows:
        return 0
    cols = ", ".join(columns)
    if upsert_keys:
        keys = {k.strip() for k in upsert_keys.split(",")}
        sets = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in keys)
        conflict = f"ON CONFLICT ({upsert_keys}) DO UPDATE SET {sets}"
    else:
        conflict = "ON CONFLICT DO NOTHING"
    dbapi = conn.connection.dbapi_connection
    assert dbapi is not None
    cur = dbapi.cursor()
    try:
        if conn.dialect.name == "sqlite":
            computed = _SQLITE_COMPUTED.get(table, ())
            names = ", ".join([cols, *(name for name, _ in computed)])
            marks = ", ".join(["?"] * len(columns) + [sql for _, sql in computed])
            cur.executemany(f"INSERT INTO {table} ({names}) VALUES ({marks}) {conflict}", rows)
            return int(cur.rowcount)
        if len(rows) < _COPY_MIN_ROWS:
            marks = ", ".join(["%s"] * len(columns))
            cur.executemany(f"INSERT INTO {table} ({cols}) VALUES ({marks}) {conflict}", rows)
            return int(cur.rowcount)
        staging = f"_rl_stage_{table}"
        cur.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {staging} "
            f"(LIKE {table} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
        )
        with cur.copy(f"COPY {staging} ({cols}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        cur.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM {staging} {conflict}")
        inserted = int(cur.rowcount)
        cur.execute(f"TRUNCATE {staging}")
        return inserted
    finally:
        cur.close()


def _insert_if_all_new(
    conn: Connection, table: str, columns: Sequence[str], rows: list[tuple[Any, ...]]
) -> bool:
    """Insert ``rows`` (in the caller's transaction) if every one of them goes in; True then.

    A batch of new rows, the usual case, needs no look-up of what is stored before it: on PostgreSQL it
    is inserted under a savepoint, and if any row was skipped (its key, or another unique column, was
    stored before or repeats in the batch) the savepoint is rolled back, nothing of the batch stays,
    and the answer is False (the caller then takes the careful path). Small batches, and SQLite (whose
    look-up is a local call, and whose savepoints journal every page the insert touches: measured
    twice the insert's time), answer False at once.
    """
    if len(rows) < _OPTIMISTIC_MIN_ROWS or conn.dialect.name != "postgresql":
        return False
    dbapi = conn.connection.dbapi_connection
    assert dbapi is not None
    cur = dbapi.cursor()
    try:
        cur.execute("SAVEPOINT rl_optimistic")
        all_new = _bulk_insert(conn, table, columns, rows) == len(rows)
        if not all_new:
            cur.execute("ROLLBACK TO SAVEPOINT rl_optimistic")
        cur.execute("RELEASE SAVEPOINT rl_optimistic")
        return all_new
    finally:
        cur.close()


def _fetch_in(conn: Connection, sql: str, *lists: Sequence[Any]) -> list[tuple[Any, ...]]:
    """Rows of ``sql``, whose ``{}`` stand for the ``IN (...)`` lists ``lists`` (each non-empty), run on
    the driver's cursor in the caller's transaction: SQLAlchemy's compilation of a thousand-value ``IN``
    costs more than the query."""
    mark = "?" if conn.dialect.name == "sqlite" else "%s"
    text = sql.format(*(", ".join([mark] * len(values)) for values in lists))
    dbapi = conn.connection.dbapi_connection
    assert dbapi is not None
    cur = dbapi.cursor()
    try:
        cur.execute(text, [v for values in lists for v in values])
        return list(cur.fetchall())
    finally:
        cur.close()
