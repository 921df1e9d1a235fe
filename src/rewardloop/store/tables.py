"""The tables, as SQLAlchemy 2.0 ``Mapped`` classes. Migrations in ``store/migrations`` create them.

JSON columns are JSONB on PostgreSQL and JSON text on SQLite. Times are timezone-aware UTC.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    FetchedValue,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

Json = JSON().with_variant(JSONB(), "postgresql")
Time = DateTime(timezone=True)


class Base(DeclarativeBase):
    pass


class DecisionRow(Base):
    __tablename__ = "decisions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    policy: Mapped[str] = mapped_column(String(200))
    policy_version: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(20))
    actions: Mapped[Any] = mapped_column(Json)
    action: Mapped[str] = mapped_column(Text)
    action_dist: Mapped[Any] = mapped_column(Json)
    pscore: Mapped[float] = mapped_column(Float)
    confidence: Mapped[float] = mapped_column(Float)
    latency_ms: Mapped[float | None] = mapped_column(Float)
    text: Mapped[str | None] = mapped_column(Text)
    features: Mapped[Any | None] = mapped_column(Json)
    candidates: Mapped[Any | None] = mapped_column(Json)
    meta: Mapped[Any | None] = mapped_column(Json)
    ranking: Mapped[Any | None] = mapped_column(Json)
    experiment: Mapped[str | None] = mapped_column(String(200))
    variant: Mapped[str | None] = mapped_column(String(100))
    variant_share: Mapped[float | None] = mapped_column(Float)
    trace: Mapped[Any | None] = mapped_column(Json)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    # created_at is when the store received the decision; client_time what the client said (if anything).
    created_at: Mapped[datetime] = mapped_column(Time)
    client_time: Mapped[datetime | None] = mapped_column(Time)

    __table_args__ = (
        Index("ix_decisions_policy_version_time", "policy", "policy_version", "created_at"),
        Index("ix_decisions_experiment", "experiment", "variant"),
        Index("ix_decisions_created_at", "created_at"),
    )


class FeedbackRow(Base):
    __tablename__ = "feedback"

    # Ids are unique per project (the project of the row's decision), not globally.
    project: Mapped[str] = mapped_column(String(200), primary_key=True, server_default="default")
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    decision_id: Mapped[str] = mapped_column(String(64), ForeignKey("decisions.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    value: Mapped[float | None] = mapped_column(Float)
    scale_low: Mapped[float | None] = mapped_column(Float)
    scale_high: Mapped[float | None] = mapped_column(Float)
    label: Mapped[str | None] = mapped_column(Text)
    preferred: Mapped[str | None] = mapped_column(Text)
    rejected: Mapped[str | None] = mapped_column(Text)
    scores: Mapped[Any | None] = mapped_column(Json)
    rater_id: Mapped[str | None] = mapped_column(String(200))
    authority: Mapped[float] = mapped_column(Float)
    source: Mapped[str] = mapped_column(String(20))
    comment: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(Time, index=True)
    client_time: Mapped[datetime | None] = mapped_column(Time)
    # A voided row stays stored (audited: who, when, why) and counts for no reward from then on.
    voided_at: Mapped[datetime | None] = mapped_column(Time)
    voided_by: Mapped[str | None] = mapped_column(String(200))
    void_reason: Mapped[str | None] = mapped_column(Text)
    # The row's position in the feedback log, set by the database on insert and on void (migration
    # 0004): the online learner reads the log in this order (store/online.py).
    log_seq: Mapped[int | None] = mapped_column(BigInteger, server_default=FetchedValue())

    __table_args__ = (Index("ix_feedback_log_seq", "log_seq", "project", "id"),)


class RewardRow(Base):
    __tablename__ = "rewards"

    decision_id: Mapped[str] = mapped_column(String(64), ForeignKey("decisions.id"), primary_key=True)
    spec: Mapped[str] = mapped_column(String(200), primary_key=True)
    spec_version: Mapped[int] = mapped_column(Integer, primary_key=True)
    value: Mapped[float] = mapped_column(Float)
    components: Mapped[Any | None] = mapped_column(Json)
    feedback_ids: Mapped[Any] = mapped_column(Json)
    disagreement: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(Time)


class PolicyVersionRow(Base):
    __tablename__ = "policy_versions"

    policy: Mapped[str] = mapped_column(String(200), primary_key=True)
    version: Mapped[str] = mapped_column(String(100), primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    artifact_path: Mapped[str] = mapped_column(Text)
    checksum: Mapped[str] = mapped_column(String(128))
    config: Mapped[Any | None] = mapped_column(Json)
    metrics: Mapped[Any | None] = mapped_column(Json)
    parent_version: Mapped[str | None] = mapped_column(String(100))
    training_run_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(Time)


class RegistryPolicyRow(Base):
    """Who owns a registered policy (the project that registered it, from then on), and a counter
    that every alias move of the policy bumps (its compare-and-set lock, and the serving cache's key)."""

    __tablename__ = "registry_policies"

    policy: Mapped[str] = mapped_column(String(200), primary_key=True)
    project: Mapped[str] = mapped_column(String(200), index=True)
    generation: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(Time)


class AliasRow(Base):
    __tablename__ = "aliases"

    policy: Mapped[str] = mapped_column(String(200), primary_key=True)
    alias: Mapped[str] = mapped_column(String(100), primary_key=True)
    version: Mapped[str] = mapped_column(String(100))
    updated_at: Mapped[datetime] = mapped_column(Time)


class AliasEventRow(Base):
    __tablename__ = "alias_events"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    policy: Mapped[str] = mapped_column(String(200), index=True)
    alias: Mapped[str] = mapped_column(String(100))
    from_version: Mapped[str | None] = mapped_column(String(100))
    to_version: Mapped[str | None] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(20))
    actor: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text)
    forced: Mapped[bool] = mapped_column(default=False)
    gate_report: Mapped[Any | None] = mapped_column(Json)
    created_at: Mapped[datetime] = mapped_column(Time)


class TrainingRunRow(Base):
    __tablename__ = "training_runs"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    policy: Mapped[str] = mapped_column(String(200), index=True)
    learner: Mapped[str] = mapped_column(String(100))
    config: Mapped[Any | None] = mapped_column(Json)
    window_start: Mapped[datetime | None] = mapped_column(Time)
    window_end: Mapped[datetime | None] = mapped_column(Time)
    n_samples: Mapped[int] = mapped_column(Integer)
    metrics: Mapped[Any | None] = mapped_column(Json)
    artifact_path: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20))
    started_at: Mapped[datetime] = mapped_column(Time)
    finished_at: Mapped[datetime | None] = mapped_column(Time)


class ExperimentRow(Base):
    __tablename__ = "experiments"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    policy: Mapped[str] = mapped_column(String(200), index=True)
    variants: Mapped[Any] = mapped_column(Json)
    shares: Mapped[Any] = mapped_column(Json)
    salt: Mapped[str] = mapped_column(String(200))
    ramp: Mapped[Any] = mapped_column(Json)
    stage: Mapped[int] = mapped_column(Integer)
    shadow: Mapped[bool] = mapped_column(default=False)
    status: Mapped[str] = mapped_column(String(20))
    verdict: Mapped[Any | None] = mapped_column(Json)
    created_at: Mapped[datetime] = mapped_column(Time)
    updated_at: Mapped[datetime] = mapped_column(Time)


class ReviewItemRow(Base):
    __tablename__ = "review_items"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    # One queue entry per decision: enqueueing twice is deduplicated by this constraint.
    decision_id: Mapped[str] = mapped_column(String(64), ForeignKey("decisions.id"), unique=True)
    reason: Mapped[str] = mapped_column(String(200))
    priority: Mapped[float] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(20), index=True)
    claimed_by: Mapped[str | None] = mapped_column(String(200))
    feedback_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(Time)
    resolved_at: Mapped[datetime | None] = mapped_column(Time)


class ApiKeyRow(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    key_hash: Mapped[str] = mapped_column(String(128), unique=True)
    scopes: Mapped[Any] = mapped_column(Json)
    project: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(Time)
    revoked_at: Mapped[datetime | None] = mapped_column(Time)


class OnlineOffsetRow(Base):
    """Where the online learner of one router lineage (a policy's registered version) has read the
    feedback log to, and the state version it last published (store/online.py)."""

    __tablename__ = "online_offsets"

    policy: Mapped[str] = mapped_column(String(200), primary_key=True)
    base_version: Mapped[str] = mapped_column(String(100), primary_key=True)
    state_version: Mapped[int] = mapped_column(Integer)
    log_seq: Mapped[int] = mapped_column(BigInteger)
    feedback_project: Mapped[str] = mapped_column(String(200))
    feedback_id: Mapped[str] = mapped_column(String(64))
    events: Mapped[int] = mapped_column(BigInteger)
    rewards: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(Time)


class OnlineAppliedRow(Base):
    """The reward the online learner has applied for one decision, and the feedback it came from."""

    __tablename__ = "online_applied"

    policy: Mapped[str] = mapped_column(String(200), primary_key=True)
    base_version: Mapped[str] = mapped_column(String(100), primary_key=True)
    decision_id: Mapped[str] = mapped_column(String(64), ForeignKey("decisions.id"), primary_key=True)
    reward: Mapped[float] = mapped_column(Float)
    feedback_ids: Mapped[Any] = mapped_column(Json)
    state_version: Mapped[int] = mapped_column(Integer)


class RouterStateRow(Base):
    """One published state of a router lineage: its saved ``router.json`` and ``state.npz``."""

    __tablename__ = "router_states"

    policy: Mapped[str] = mapped_column(String(200), primary_key=True)
    base_version: Mapped[str] = mapped_column(String(100), primary_key=True)
    state_version: Mapped[int] = mapped_column(Integer, primary_key=True)
    meta: Mapped[str] = mapped_column(Text)
    arrays: Mapped[bytes] = mapped_column(LargeBinary)
    events: Mapped[int] = mapped_column(BigInteger)
    rewards: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(Time)
