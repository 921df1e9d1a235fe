"""The store side of online router learning: the feedback log, the learner's offset and ledger, and
the router states it publishes.

**The log.** Every feedback row has a position ``(log_seq, project, id)``, set when the row is
written and again when it is voided (migrations 0005 and 0008). On SQLite, whose writers take turns,
``log_seq`` is a counter that each row's ``INSERT`` reads and bumps itself, so positions follow commit
order. On PostgreSQL it is the id of the writing
transaction; transactions may commit out of that order, so the log is read only below the *horizon*,
the oldest transaction still running (``pg_snapshot_xmin``): every row below it is committed or
never will be, so nothing can appear later behind a position already read. Reading from a persisted
position therefore sees every row exactly once; the staleness this adds is the longest write
transaction still running.

**Lineages.** A router lineage is one registered version of a router policy, learned online from
its own decisions. Its row in ``online_offsets`` holds the position read to, the last state version
published and counters; ``online_applied`` holds, per decision, the reward applied and the feedback
ids it came from; ``router_states`` holds every published state (``router.json`` and ``state.npz``,
the artifact's own files). :func:`publish_state` writes all three in one transaction, guarded by the
state version it expects (a second learner on the same lineage is refused, never interleaved), and
on PostgreSQL sends ``NOTIFY`` on :data:`STATE_CHANNEL`, delivered at commit.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

from sqlalchemy import Connection, and_, delete, func, insert, select, text, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError

from rewardloop.config.faults import fault_point
from rewardloop.store.engine import Store
from rewardloop.store.tables import (
    DecisionRow,
    FeedbackRow,
    OnlineAppliedRow,
    OnlineOffsetRow,
    RouterStateRow,
)
from rewardloop.types import utcnow

#: The PostgreSQL channel a publish notifies; the payload is ``policy``, ``base_version`` and the
#: state version, separated by tabs.
STATE_CHANNEL = "rewardloop_router_state"
#: Decision ids per ``IN (...)`` list.
_CHUNK = 5000


class OnlineConflict(RuntimeError):
    """Another learner published to the lineage since this one read it (one learner per lineage)."""


class LogPosition(NamedTuple):
    """A position in the feedback log: ``(log_seq, project, feedback id)``, compared as a tuple."""

    log_seq: int
    project: str
    feedback_id: str


#: Before the first row of the log.
LOG_START = LogPosition(-1, "", "")


@dataclass(frozen=True)
class FeedbackEvent:
    """A feedback row written or voided, at its position in the log, on a decision of the lineage."""

    position: LogPosition
    decision_id: str


@dataclass(frozen=True)
class Lineage:
    """Where a lineage's learner stands: last state published, position read to, counters."""

    policy: str
    base_version: str
    state_version: int
    position: LogPosition
    events: int
    rewards: int
    updated_at: datetime


@dataclass(frozen=True)
class Applied:
    """The reward applied for one decision (None: none applied, or taken back) and its feedback."""

    decision_id: str
    reward: float | None
    feedback_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class RouterState:
    """One published router state: the saved router's ``router.json`` text and ``state.npz`` bytes."""

    policy: str
    base_version: str
    state_version: int
    meta: str
    arrays: bytes
    events: int
    rewards: int
    created_at: datetime


def _utc(t: datetime) -> datetime:
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


def _horizon(conn: Connection) -> int | None:
    """Positions below this ``log_seq`` are final (PostgreSQL); None: every visible row is (SQLite)."""
    if conn.dialect.name == "sqlite":
        return None
    value = conn.scalar(text("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint"))
    return int(value) if value is not None else None


def read_events(
    store: Store, policy: str, base_version: str, after: LogPosition, limit: int = 1000
) -> list[FeedbackEvent]:
    """The next ``limit`` log events after ``after`` on decisions of ``policy``@``base_version``."""
    f, d = FeedbackRow, DecisionRow
    with store.engine.connect() as conn:
        horizon = _horizon(conn)  # taken first: the read below sees every row under it
        query = (
            select(f.log_seq, f.project, f.id, f.decision_id)
            .join(d, d.id == f.decision_id)
            .where(
                d.policy == policy,
                d.policy_version == base_version,
                f.log_seq.is_not(None),
                tuple_(f.log_seq, f.project, f.id) > tuple_(*after),
            )
            .order_by(f.log_seq, f.project, f.id)
            .limit(limit)
        )
        if horizon is not None:
            query = query.where(f.log_seq < horizon)
        rows = conn.execute(query).all()
    return [
        FeedbackEvent(LogPosition(int(r[0] or 0), r[1], r[2]), r[3]) for r in rows
    ]  # never None: filtered


def log_end(store: Store) -> LogPosition:
    """The last position written so far (:data:`LOG_START` for an empty log)."""
    f = FeedbackRow
    with store.engine.connect() as conn:
        row = conn.execute(
            select(f.log_seq, f.project, f.id)
            .where(f.log_seq.is_not(None))
            .order_by(f.log_seq.desc(), f.project.desc(), f.id.desc())
            .limit(1)
        ).first()
    return LOG_START if row is None or row[0] is None else LogPosition(row[0], row[1], row[2])


def _lineage(row: Any) -> Lineage:
    return Lineage(
        row.policy,
        row.base_version,
        row.state_version,
        LogPosition(row.log_seq, row.feedback_project, row.feedback_id),
        row.events,
        row.rewards,
        _utc(row.updated_at),
    )


def read_lineage(store: Store, policy: str, base_version: str) -> Lineage | None:
    """The lineage of ``policy``@``base_version``, or None before a learner started it."""
    o = OnlineOffsetRow
    with store.engine.connect() as conn:
        row = conn.execute(select(o).where(o.policy == policy, o.base_version == base_version)).first()
    return None if row is None else _lineage(row)


def lineages(store: Store, policy: str | None = None) -> list[Lineage]:
    """Every lineage (of ``policy``), by policy and version."""
    o = OnlineOffsetRow
    query = select(o).order_by(o.policy, o.base_version)
    if policy is not None:
        query = query.where(o.policy == policy)
    with store.engine.connect() as conn:
        return [_lineage(r) for r in conn.execute(query).all()]


def start_lineage(store: Store, policy: str, base_version: str, meta: str, arrays: bytes) -> Lineage:
    """Start the lineage at state 0 (``meta``/``arrays``: the registered artifact) at the log's start;
    a lineage that exists is returned as it is."""
    now = utcnow()
    try:
        with store.engine.begin() as conn:
            conn.execute(
                insert(OnlineOffsetRow).values(
                    policy=policy, base_version=base_version, **_offset(0, LOG_START, 0, 0, now)
                )
            )
            conn.execute(
                insert(RouterStateRow).values(
                    **vars_of(RouterState(policy, base_version, 0, meta, arrays, 0, 0, now))
                )
            )
    except IntegrityError:
        pass  # started by another process meanwhile: take theirs
    lineage = read_lineage(store, policy, base_version)
    assert lineage is not None
    return lineage


def _offset(
    state_version: int, position: LogPosition, events: int, rewards: int, at: datetime
) -> dict[str, Any]:
    """The ``online_offsets`` columns that a publish moves."""
    return {
        "state_version": state_version,
        "log_seq": position.log_seq,
        "feedback_project": position.project,
        "feedback_id": position.feedback_id,
        "events": events,
        "rewards": rewards,
        "updated_at": at,
    }


def read_applied(
    store: Store, policy: str, base_version: str, decision_ids: Sequence[str]
) -> dict[str, Applied]:
    """The rewards applied so far for ``decision_ids`` (decisions with none are absent)."""
    a = OnlineAppliedRow
    out: dict[str, Applied] = {}
    with store.engine.connect() as conn:
        for s in range(0, len(decision_ids), _CHUNK):
            rows = conn.execute(
                select(a.decision_id, a.reward, a.feedback_ids).where(
                    a.policy == policy,
                    a.base_version == base_version,
                    a.decision_id.in_(list(decision_ids[s : s + _CHUNK])),
                )
            ).all()
            out.update((r[0], Applied(r[0], r[1], tuple(r[2]))) for r in rows)
    return out


def applied_count(store: Store, policy: str, base_version: str) -> int:
    """How many decisions of the lineage have a reward applied."""
    a = OnlineAppliedRow
    with store.engine.connect() as conn:
        n = conn.scalar(select(func.count()).where(a.policy == policy, a.base_version == base_version))
    return int(n or 0)


def _upsert_applied(conn: Connection, rows: list[dict[str, Any]]) -> None:
    make = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    stmt = make(OnlineAppliedRow)
    stmt = stmt.on_conflict_do_update(
        index_elements=["policy", "base_version", "decision_id"],
        set_={k: stmt.excluded[k] for k in ("reward", "feedback_ids", "state_version")},
    )
    conn.execute(stmt, rows)


def publish_state(
    store: Store,
    state: RouterState,
    position: LogPosition,
    applied: Sequence[Applied],
    expected: int,
) -> None:
    """Publish ``state`` with the log ``position`` read to and the ledger changes ``applied``, all or
    nothing; refused with :class:`OnlineConflict` unless the lineage is still at state ``expected``."""
    o, a = OnlineOffsetRow, OnlineAppliedRow
    key = (state.policy, state.base_version)
    with store.engine.begin() as conn:
        moved = conn.execute(
            update(o)
            .where(o.policy == key[0], o.base_version == key[1], o.state_version == expected)
            .values(**_offset(state.state_version, position, state.events, state.rewards, state.created_at))
        ).rowcount
        if moved != 1:
            raise OnlineConflict(
                f"{key[0]}@{key[1]}: the lineage is no longer at state {expected}; another learner "
                "published to it (run one `rewardloop learn` per policy version)"
            )
        conn.execute(insert(RouterStateRow).values(**vars_of(state)))
        kept = [x for x in applied if x.reward is not None]
        gone = [x.decision_id for x in applied if x.reward is None]
        if kept:
            _upsert_applied(
                conn,
                [
                    {
                        "policy": key[0],
                        "base_version": key[1],
                        "decision_id": x.decision_id,
                        "reward": x.reward,
                        "feedback_ids": list(x.feedback_ids),
                        "state_version": state.state_version,
                    }
                    for x in kept
                ],
            )
        for s in range(0, len(gone), _CHUNK):
            conn.execute(
                delete(a).where(
                    a.policy == key[0], a.base_version == key[1], a.decision_id.in_(gone[s : s + _CHUNK])
                )
            )
        fault_point("online_publishing")  # everything written, nothing committed
        if conn.dialect.name == "postgresql":
            payload = f"{key[0]}\t{key[1]}\t{state.state_version}"
            conn.execute(text("SELECT pg_notify(:c, :p)"), {"c": STATE_CHANNEL, "p": payload})


def vars_of(state: RouterState) -> dict[str, Any]:
    """The state as the column values of its ``router_states`` row."""
    return {
        "policy": state.policy,
        "base_version": state.base_version,
        "state_version": state.state_version,
        "meta": state.meta,
        "arrays": state.arrays,
        "events": state.events,
        "rewards": state.rewards,
        "created_at": state.created_at,
    }


def read_state(
    store: Store, policy: str, base_version: str, state_version: int | None = None
) -> RouterState | None:
    """A published state of the lineage (the latest when ``state_version`` is None), or None."""
    r = RouterStateRow
    query = select(r).where(r.policy == policy, r.base_version == base_version)
    query = (
        query.order_by(r.state_version.desc()).limit(1)
        if state_version is None
        else query.where(r.state_version == state_version)
    )
    with store.engine.connect() as conn:
        row = conn.execute(query).first()
    if row is None:
        return None
    return RouterState(
        row.policy,
        row.base_version,
        row.state_version,
        row.meta,
        bytes(row.arrays),
        row.events,
        row.rewards,
        _utc(row.created_at),
    )


def latest_state_versions(store: Store, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], int]:
    """The last state version published per ``(policy, base_version)`` of ``keys`` that has a lineage."""
    if not keys:
        return {}
    o = OnlineOffsetRow
    cond = tuple_(o.policy, o.base_version).in_([tuple(k) for k in keys])
    with store.engine.connect() as conn:
        rows = conn.execute(select(o.policy, o.base_version, o.state_version).where(cond)).all()
    return {(r[0], r[1]): int(r[2]) for r in rows}


def state_meta(store: Store, policy: str) -> Mapping[tuple[str, str], tuple[int, str]]:
    """Per lineage of ``policy``: its latest state version and that state's ``router.json`` text."""
    o, r = OnlineOffsetRow, RouterStateRow
    query = (
        select(o.policy, o.base_version, o.state_version, r.meta)
        .join(
            r,
            and_(
                r.policy == o.policy,
                r.base_version == o.base_version,
                r.state_version == o.state_version,
            ),
        )
        .where(o.policy == policy)
    )
    with store.engine.connect() as conn:
        return {(row[0], row[1]): (int(row[2]), row[3]) for row in conn.execute(query).all()}


def notifications(store: Store, timeout: float) -> Generator[tuple[str, str, int] | None, None, None]:
    """PostgreSQL only: ``(policy, base_version, state_version)`` for each published state, as it is
    committed; None after each ``timeout`` seconds without one (so that a caller can stop). Holds one
    connection of its own, in autocommit, for as long as the iterator lives."""
    raw = store.engine.raw_connection()
    try:
        dbapi: Any = raw.driver_connection
        dbapi.autocommit = True
        dbapi.execute(f"LISTEN {STATE_CHANNEL}")
        while True:
            got = False
            for note in dbapi.notifies(timeout=timeout, stop_after=1):
                got = True
                parts = note.payload.split("\t")
                if len(parts) == 3 and parts[2].isdigit():
                    yield parts[0], parts[1], int(parts[2])
            if not got:
                yield None
    finally:
        raw.invalidate()  # the session state (LISTEN, autocommit) must not go back to the pool


__all__ = [
    "LOG_START",
    "STATE_CHANNEL",
    "Applied",
    "FeedbackEvent",
    "Lineage",
    "LogPosition",
    "OnlineConflict",
    "RouterState",
    "applied_count",
    "latest_state_versions",
    "lineages",
    "log_end",
    "notifications",
    "publish_state",
    "read_applied",
    "read_events",
    "read_lineage",
    "read_state",
    "start_lineage",
    "state_meta",
    "vars_of",
]
