"""Write and read decisions, feedback and rewards.

Writes are batched and transactional: every row is validated first; a batch with a bad row writes
nothing (:class:`BatchError` lists every bad row and field) unless ``skip_invalid=True``, which writes
the good rows and reports the bad ones. Re-sending a decision with the same ``id`` or
``idempotency_key`` (or feedback with the same ``id``) writes nothing and counts as a duplicate.

The bulk path is the driver's own: ``executemany`` on SQLite, ``COPY`` into a temporary table then one
``INSERT ... SELECT ... ON CONFLICT DO NOTHING`` on PostgreSQL. No ORM loop.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import orjson
from sqlalchemy import Connection, Select, and_, case, exists, func, select

from rewardloop.store.engine import Store
from rewardloop.store.tables import DecisionRow, FeedbackRow, RewardRow
from rewardloop.types import (
    Decision,
    DecisionBatch,
    Feedback,
    RecordError,
    Reward,
    TraceStep,
    decision_from_dict,
    feedback_from_dict,
)

R = TypeVar("R", Decision, Feedback)

#: Below this many rows PostgreSQL takes executemany (pipelined); above, COPY.
_COPY_MIN_ROWS = 64
#: Ids per IN (...) list when checking that feedback references stored decisions.
_ID_CHUNK = 5000


class BatchError(ValueError):
    """A batch had invalid rows and nothing of it was written.

    ``errors`` holds one :class:`RecordError` per bad row, each naming the row and the field.
    """

    def __init__(self, kind: str, errors: Sequence[RecordError]) -> None:
        self.errors = list(errors)
        shown = "\n".join(f"  {e}" for e in self.errors[:20])
        more = f"\n  ... and {len(self.errors) - 20} more" if len(self.errors) > 20 else ""
        super().__init__(
            f"{len(self.errors)} invalid {kind} row(s); nothing of this batch was written "
            f"(pass skip_invalid to write the valid rows):\n{shown}{more}"
        )


@dataclass(frozen=True)
class WriteReport:
    """What a batch write did: rows written, duplicates ignored, invalid rows skipped."""

    written: int
    duplicates: int = 0
    invalid: list[RecordError] = field(default_factory=list)


def _json(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def _sqlite_time(t: datetime) -> str:
    # The format SQLAlchemy's SQLite DateTime reads back; times are stored in UTC.
    return t.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def _validate(
    rows: Iterable[R | Mapping[str, Any]],
    parse: Callable[[Mapping[str, Any]], R],
    cls: type[R],
    kind: str,
    skip_invalid: bool,
) -> tuple[list[R], list[int], list[RecordError]]:
    """Records for the valid rows, their row numbers, and an error for each invalid row."""
    good: list[R] = []
    where: list[int] = []
    bad: list[RecordError] = []
    for i, row in enumerate(rows):
        try:
            good.append(row if isinstance(row, cls) else parse(row))  # type: ignore[arg-type]
            where.append(i)
        except RecordError as err:
            bad.append(err.at_row(i))
        except (TypeError, ValueError) as err:
            bad.append(RecordError("(row)", str(err), i))
    if bad and not skip_invalid:
        raise BatchError(kind, bad)
    return good, where, bad


_DECISION_COLUMNS = [
    "id",
    "policy",
    "policy_version",
    "kind",
    "actions",
    "action",
    "action_dist",
    "pscore",
    "confidence",
    "latency_ms",
    "text",
    "features",
    "candidates",
    "meta",
    "ranking",
    "experiment",
    "variant",
    "variant_share",
    "trace",
    "idempotency_key",
    "created_at",
]


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
    )


_FEEDBACK_COLUMNS = [
    "id",
    "decision_id",
    "kind",
    "value",
    "scale_low",
    "scale_high",
    "label",
    "preferred",
    "rejected",
    "scores",
    "rater_id",
    "authority",
    "source",
    "comment",
    "created_at",
]


def _feedback_params(f: Feedback, time: Callable[[datetime], Any]) -> tuple[Any, ...]:
    low, high = f.scale if f.scale is not None else (None, None)
    return (
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
    )


_REWARD_COLUMNS = [
    "decision_id",
    "spec",
    "spec_version",
    "value",
    "components",
    "feedback_ids",
    "disagreement",
    "created_at",
]


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


def _time_adapter(store: Store) -> Callable[[datetime], Any]:
    return _sqlite_time if store.dialect == "sqlite" else (lambda t: t.astimezone(UTC))


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
            marks = ", ".join("?" * len(columns))
            cur.executemany(f"INSERT INTO {table} ({cols}) VALUES ({marks}) {conflict}", rows)
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


def write_decisions(
    store: Store, rows: Iterable[Decision | Mapping[str, Any]], skip_invalid: bool = False
) -> WriteReport:
    """Validate and write decisions in one transaction.

    Parameters
    ----------
    rows : iterable of Decision or mapping
        Records, or mappings such as parsed JSON lines (validated here).
    skip_invalid : bool, default False
        Write the valid rows and report the invalid ones, instead of refusing the whole batch.

    Raises
    ------
    BatchError
        If any row is invalid and ``skip_invalid`` is False; nothing is written then.
    """
    good, _, bad = _validate(rows, decision_from_dict, Decision, "decision", skip_invalid)
    time = _time_adapter(store)
    params = [_decision_params(d, time) for d in good]
    with store.engine.begin() as conn:
        written = _bulk_insert(conn, "decisions", _DECISION_COLUMNS, params)
    return WriteReport(written, len(good) - written, bad)


def log_decision(store: Store, decision: Decision) -> str:
    """Write one decision; returns the stored id (the earlier one's, for a re-sent idempotency key)."""
    report = write_decisions(store, [decision])
    if report.written or decision.idempotency_key is None:
        return decision.id
    with store.engine.connect() as conn:
        stored = conn.scalar(
            select(DecisionRow.id).where(DecisionRow.idempotency_key == decision.idempotency_key)
        )
    return stored or decision.id


def existing_decision_ids(store: Store, ids: Iterable[str]) -> set[str]:
    """The subset of ``ids`` that are stored decisions."""
    wanted = list(dict.fromkeys(ids))
    found: set[str] = set()
    with store.engine.connect() as conn:
        for start in range(0, len(wanted), _ID_CHUNK):
            chunk = wanted[start : start + _ID_CHUNK]
            found.update(conn.scalars(select(DecisionRow.id).where(DecisionRow.id.in_(chunk))))
    return found


def write_feedback(
    store: Store, rows: Iterable[Feedback | Mapping[str, Any]], skip_invalid: bool = False
) -> WriteReport:
    """Validate and write feedback in one transaction; every row must reference a stored decision.

    Same contract as :func:`write_decisions`.
    """
    # Validate every row and check every reference before refusing, so that one report lists all.
    good, where, bad = _validate(rows, feedback_from_dict, Feedback, "feedback", skip_invalid=True)
    known = existing_decision_ids(store, (f.decision_id for f in good))
    missing = [
        RecordError("decision_id", f"no decision {f.decision_id!r} in the store", row)
        for row, f in zip(where, good, strict=True)
        if f.decision_id not in known
    ]
    if missing:
        bad = sorted(bad + missing, key=lambda e: e.row or 0)
        good = [f for f in good if f.decision_id in known]
    if bad and not skip_invalid:
        raise BatchError("feedback", bad)
    with store.engine.begin() as conn:
        written = insert_feedback(conn, good)
    return WriteReport(written, len(good) - written, bad)


def insert_feedback(conn: Connection, rows: Sequence[Feedback]) -> int:
    """Insert validated feedback inside the caller's transaction; returns the rows written.

    The caller has checked that the decisions exist (:func:`write_feedback` does; the review queue's
    resolve writes a reviewer's correction and closes the item in one transaction with it).
    """
    time = _sqlite_time if conn.dialect.name == "sqlite" else (lambda t: t.astimezone(UTC))
    return _bulk_insert(conn, "feedback", _FEEDBACK_COLUMNS, [_feedback_params(f, time) for f in rows])


def write_rewards(store: Store, rewards: Iterable[Reward]) -> int:
    """Write compiled rewards; a reward for the same (decision, spec, version) is replaced."""
    time = _time_adapter(store)
    params = [_reward_params(r, time) for r in rewards]
    with store.engine.begin() as conn:
        return _bulk_insert(
            conn, "rewards", _REWARD_COLUMNS, params, upsert_keys="decision_id, spec, spec_version"
        )


# --------------------------------------------------------------------------------------------- reading


def _aware(t: datetime | None) -> datetime | None:
    if t is None:
        return None
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


def decision_from_row(r: Any) -> Decision:
    return Decision(
        id=r.id,
        policy=r.policy,
        policy_version=r.policy_version,
        kind=r.kind,
        actions=tuple(r.actions),
        action=r.action,
        action_dist=tuple(r.action_dist),
        pscore=r.pscore,
        confidence=r.confidence,
        latency_ms=r.latency_ms,
        text=r.text,
        features=tuple(r.features) if r.features is not None else None,
        candidates=tuple(r.candidates) if r.candidates is not None else None,
        metadata=r.meta or {},
        ranking=tuple(r.ranking) if r.ranking is not None else None,
        experiment=r.experiment,
        variant=r.variant,
        variant_share=r.variant_share,
        trace=tuple(TraceStep(**s) for s in r.trace) if r.trace else (),
        idempotency_key=r.idempotency_key,
        created_at=_aware(r.created_at),  # type: ignore[arg-type]
    )


def feedback_from_row(r: Any) -> Feedback:
    return Feedback(
        id=r.id,
        decision_id=r.decision_id,
        kind=r.kind,
        value=r.value,
        scale=(r.scale_low, r.scale_high) if r.scale_low is not None else None,
        label=r.label,
        preferred=r.preferred,
        rejected=r.rejected,
        scores=r.scores,
        rater_id=r.rater_id,
        authority=r.authority,
        source=r.source,
        comment=r.comment,
        created_at=_aware(r.created_at),  # type: ignore[arg-type]
    )


def reward_from_row(r: Any) -> Reward:
    return Reward(
        decision_id=r.decision_id,
        spec=r.spec,
        spec_version=r.spec_version,
        value=r.value,
        components=r.components or {},
        feedback_ids=tuple(r.feedback_ids or ()),
        disagreement=r.disagreement,
        created_at=_aware(r.created_at),  # type: ignore[arg-type]
    )


def to_utc(t: datetime | None) -> datetime | None:
    return None if t is None else (t if t.tzinfo else t.replace(tzinfo=UTC)).astimezone(UTC)


def time_window(store: Store, column: Any, since: datetime | None, until: datetime | None) -> list[Any]:
    """Conditions ``since <= column < until`` (either may be None); naive times are taken as UTC.

    SQLite keeps naive UTC, PostgreSQL timestamptz: both are compared in UTC.
    """
    lo, hi = to_utc(since), to_utc(until)
    if store.dialect == "sqlite":
        lo = lo.replace(tzinfo=None) if lo else None
        hi = hi.replace(tzinfo=None) if hi else None
    conds: list[Any] = []
    if lo is not None:
        conds.append(column >= lo)
    if hi is not None:
        conds.append(column < hi)
    return conds


def decision_filter(
    store: Store,
    policy: str | None,
    version: str | None,
    since: datetime | None,
    until: datetime | None,
    experiment: str | None,
    variant: str | None,
    kind: str | None,
    with_feedback: bool | None,
    ids: Sequence[str] | None = None,
) -> list[Any]:
    d = DecisionRow
    conds: list[Any] = []
    for column, value in (
        (d.policy, policy),
        (d.policy_version, version),
        (d.experiment, experiment),
        (d.variant, variant),
        (d.kind, kind),
    ):
        if value is not None:
            conds.append(column == value)
    conds += time_window(store, d.created_at, since, until)
    if ids is not None:
        conds.append(d.id.in_(list(ids)))
    if with_feedback is not None:
        has = exists().where(FeedbackRow.decision_id == d.id)
        conds.append(has if with_feedback else ~has)
    return conds


def read_decisions(
    store: Store,
    *,
    policy: str | None = None,
    version: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    experiment: str | None = None,
    variant: str | None = None,
    kind: str | None = None,
    with_feedback: bool | None = None,
    include_feedback: bool = False,
    reward_spec: tuple[str, int] | None = None,
    ids: Sequence[str] | None = None,
    limit: int | None = None,
) -> DecisionBatch:
    """Decisions matching every filter given, oldest first, as a typed batch.

    Parameters
    ----------
    since, until : datetime, optional
        Half-open time window ``[since, until)``; naive times are taken as UTC.
    with_feedback : bool, optional
        True: only decisions that have feedback; False: only those with none; None: all.
    include_feedback : bool
        Load each decision's feedback into ``batch.feedback``.
    reward_spec : (name, version), optional
        Load that spec's compiled rewards into ``batch.rewards``.
    """
    conds = decision_filter(
        store, policy, version, since, until, experiment, variant, kind, with_feedback, ids
    )
    query: Select[Any] = select(DecisionRow.__table__).where(and_(True, *conds))
    query = query.order_by(DecisionRow.created_at, DecisionRow.id)
    if limit is not None:
        query = query.limit(limit)
    with store.engine.connect() as conn:
        decisions = [decision_from_row(r) for r in conn.execute(query)]
        id_query = select(DecisionRow.id).where(and_(True, *conds))
        if limit is not None:
            id_query = id_query.order_by(DecisionRow.created_at, DecisionRow.id).limit(limit)
        feedback: dict[str, list[Feedback]] = {}
        if include_feedback and decisions:
            fq = (
                select(FeedbackRow.__table__)
                .where(FeedbackRow.decision_id.in_(id_query.scalar_subquery()))
                .order_by(FeedbackRow.created_at, FeedbackRow.id)
            )
            for r in conn.execute(fq):
                feedback.setdefault(r.decision_id, []).append(feedback_from_row(r))
        rewards: dict[str, Reward] = {}
        if reward_spec is not None and decisions:
            rq = select(RewardRow.__table__).where(
                RewardRow.spec == reward_spec[0],
                RewardRow.spec_version == reward_spec[1],
                RewardRow.decision_id.in_(id_query.scalar_subquery()),
            )
            rewards = {r.decision_id: reward_from_row(r) for r in conn.execute(rq)}
    return DecisionBatch(decisions, feedback, rewards)


def read_feedback(
    store: Store,
    *,
    policy: str | None = None,
    version: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    kind: str | None = None,
    decision_ids: Sequence[str] | None = None,
) -> list[Feedback]:
    """Feedback rows (oldest first) on the decisions of ``policy``/``version``, given in a time window.

    The window applies to the feedback's own time, so "what came in since the last run" is one call.
    """
    f, d = FeedbackRow, DecisionRow
    conds: list[Any] = []
    if policy is not None or version is not None:
        sub = select(d.id).where(
            and_(
                True,
                *([d.policy == policy] if policy else []),
                *([d.policy_version == version] if version else []),
            )
        )
        conds.append(f.decision_id.in_(sub.scalar_subquery()))
    conds += time_window(store, f.created_at, since, until)
    if kind is not None:
        conds.append(f.kind == kind)
    if decision_ids is not None:
        conds.append(f.decision_id.in_(list(decision_ids)))
    query = select(f.__table__).where(and_(True, *conds)).order_by(f.created_at, f.id)
    with store.engine.connect() as conn:
        return [feedback_from_row(r) for r in conn.execute(query)]


def read_rewards(store: Store, spec: str, spec_version: int, policy: str | None = None) -> list[Reward]:
    """Compiled rewards of one spec version, optionally for one policy's decisions."""
    query = select(RewardRow.__table__).where(RewardRow.spec == spec, RewardRow.spec_version == spec_version)
    if policy is not None:
        query = query.where(
            RewardRow.decision_id.in_(
                select(DecisionRow.id).where(DecisionRow.policy == policy).scalar_subquery()
            )
        )
    with store.engine.connect() as conn:
        return [reward_from_row(r) for r in conn.execute(query.order_by(RewardRow.decision_id))]


# ----------------------------------------------------------------------------------------------- stats


@dataclass(frozen=True)
class GroupStats:
    """Counts and exploration health of one policy version's logs.

    ``deterministic_share`` is the share of decisions logged with propensity 1 (no exploration: no
    off-policy evaluation is possible on them). ``ess`` is the effective sample size
    ``(Σw)² / Σw²`` of the importance weights ``w = (1/n_actions) / pscore`` that evaluating a uniform
    policy on these logs would use; it equals ``decisions`` for uniform logging and falls as the logging
    policy concentrates.
    """

    policy: str
    version: str
    decisions: int
    with_feedback: int
    deterministic_share: float
    ess: float


@dataclass(frozen=True)
class StoreStats:
    groups: list[GroupStats]
    feedback_by_kind: dict[str, int]
    feedback_by_source: dict[str, int]

    @property
    def decisions(self) -> int:
        return sum(g.decisions for g in self.groups)

    @property
    def coverage(self) -> float:
        """Share of decisions with at least one feedback row."""
        n = self.decisions
        return sum(g.with_feedback for g in self.groups) / n if n else 0.0


def store_stats(store: Store, policy: str | None = None) -> StoreStats:
    """Counts per policy and version, feedback per kind and source, coverage and exploration health."""
    d, f = DecisionRow, FeedbackRow
    n_actions = (
        func.json_array_length(d.actions) if store.dialect == "sqlite" else func.jsonb_array_length(d.actions)
    )
    w = 1.0 / (n_actions * d.pscore)
    has_fb = exists().where(f.decision_id == d.id)
    query = select(
        d.policy,
        d.policy_version,
        func.count(),
        func.sum(case((has_fb, 1), else_=0)),
        func.sum(case((d.pscore >= 1.0 - 1e-9, 1), else_=0)),
        func.sum(w),
        func.sum(w * w),
    ).group_by(d.policy, d.policy_version)
    if policy is not None:
        query = query.where(d.policy == policy)
    fb_where = (
        []
        if policy is None
        else [f.decision_id.in_(select(d.id).where(d.policy == policy).scalar_subquery())]
    )
    with store.engine.connect() as conn:
        groups = [
            GroupStats(
                p, v, int(n), int(nf or 0), float(det or 0) / n, float(sw) ** 2 / float(sw2) if sw2 else 0.0
            )
            for p, v, n, nf, det, sw, sw2 in conn.execute(query.order_by(d.policy, d.policy_version))
        ]
        by_kind = dict(conn.execute(select(f.kind, func.count()).where(*fb_where).group_by(f.kind)).all())
        by_source = dict(
            conn.execute(select(f.source, func.count()).where(*fb_where).group_by(f.source)).all()
        )
    return StoreStats(
        groups, {k: int(v) for k, v in by_kind.items()}, {k: int(v) for k, v in by_source.items()}
    )
