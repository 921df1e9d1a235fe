"""Read decisions, feedback and rewards as typed records and batches.

The write path is :mod:`rewardloop.store.writing`; its functions are re-exported here.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, case, exists, func, or_, select

from rewardloop.store.engine import Store
from rewardloop.store.rows import decision_from_row, feedback_from_row, reward_from_row
from rewardloop.store.tables import DecisionRow, FeedbackRow, RewardRow
from rewardloop.store.writing import (
    BatchError,
    WriteReport,
    existing_decision_ids,
    insert_feedback,
    log_decision,
    write_decisions,
    write_feedback,
    write_rewards,
)
from rewardloop.types import DecisionBatch, Feedback, Reward, TimeWindow, to_utc

# --------------------------------------------------------------------------------------------- reading


def time_window(store: Store, column: Any, window: TimeWindow) -> list[Any]:
    """Conditions ``window.since <= column < window.until`` (an open end adds none).

    SQLite keeps naive UTC, PostgreSQL timestamptz: both are compared in UTC.
    """
    lo, hi = window.since, window.until
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
    window: TimeWindow,
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
    conds += time_window(store, d.created_at, window)
    if ids is not None:
        conds.append(d.id.in_(list(ids)))
    if with_feedback is not None:
        has = exists().where(FeedbackRow.decision_id == d.id, FeedbackRow.voided_at.is_(None))
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
    after: tuple[datetime, str] | None = None,
) -> DecisionBatch:
    """Decisions matching every filter given, oldest first, as a typed batch.

    Parameters
    ----------
    since, until : datetime, optional
        Half-open time window ``[since, until)`` (a :class:`~rewardloop.types.TimeWindow`: naive times
        are taken as UTC; ``since`` after ``until`` is a RecordError).
    with_feedback : bool, optional
        True: only decisions that have feedback; False: only those with none; None: all.
    include_feedback : bool
        Load each decision's feedback (not the voided rows) into ``batch.feedback``.
    reward_spec : (name, version), optional
        Load that spec's compiled rewards into ``batch.rewards``.
    after : (created_at, id), optional
        Only decisions after this one in the batch order (keyset paging, see :func:`iter_decisions`).
    """
    conds = decision_filter(
        store, policy, version, TimeWindow(since, until), experiment, variant, kind, with_feedback, ids
    )
    if after is not None:
        t = to_utc(after[0])
        t = t.replace(tzinfo=None) if store.dialect == "sqlite" and t is not None else t
        d = DecisionRow
        conds.append(or_(d.created_at > t, and_(d.created_at == t, d.id > after[1])))
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
                .where(
                    FeedbackRow.decision_id.in_(id_query.scalar_subquery()), FeedbackRow.voided_at.is_(None)
                )
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


def iter_decisions(store: Store, page_size: int = 5000, **filters: Any) -> Iterator[DecisionBatch]:
    """:func:`read_decisions` page by page (keyset paging on ``(created_at, id)``): the same rows in the
    same order, ``page_size`` decisions (with their feedback and rewards, if asked) in memory at a time.
    """
    after: tuple[datetime, str] | None = None
    while True:
        page = read_decisions(store, limit=page_size, after=after, **filters)
        if len(page):
            yield page
        if len(page) < page_size:
            return
        last = page.decisions[-1]
        after = (last.created_at, last.id)


def read_feedback(
    store: Store,
    *,
    policy: str | None = None,
    version: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    kind: str | None = None,
    decision_ids: Sequence[str] | None = None,
    include_voided: bool = False,
) -> list[Feedback]:
    """Feedback rows (oldest first) on the decisions of ``policy``/``version``, given in a time window.

    The window applies to the feedback's own time, so "what came in since the last run" is one call.
    Voided rows (:mod:`rewardloop.store.voids`) are left out unless ``include_voided``.
    """
    f, d = FeedbackRow, DecisionRow
    conds: list[Any] = [] if include_voided else [f.voided_at.is_(None)]
    if policy is not None or version is not None:
        sub = select(d.id).where(
            and_(
                True,
                *([d.policy == policy] if policy else []),
                *([d.policy_version == version] if version else []),
            )
        )
        conds.append(f.decision_id.in_(sub.scalar_subquery()))
    conds += time_window(store, f.created_at, TimeWindow(since, until))
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


__all__ = [
    "BatchError",
    "GroupStats",
    "StoreStats",
    "WriteReport",
    "decision_filter",
    "decision_from_row",
    "existing_decision_ids",
    "feedback_from_row",
    "insert_feedback",
    "iter_decisions",
    "log_decision",
    "read_decisions",
    "read_feedback",
    "read_rewards",
    "reward_from_row",
    "store_stats",
    "time_window",
    "to_utc",
    "write_decisions",
    "write_feedback",
    "write_rewards",
]
