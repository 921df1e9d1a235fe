"""The tables, as SQLAlchemy 2.0 ``Mapped`` classes. Migrations in ``store/migrations`` create them.

JSON columns are JSONB on PostgreSQL and JSON text on SQLite. Times are timezone-aware UTC. A column is
declared by what it holds (``Mapped[Name]``: a name of at most 200 characters), NOT NULL unless its type
says ``| None``; every ``datetime`` is a timezone-aware time and every ``float`` a ``Float``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    FetchedValue,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

Json = JSON().with_variant(JSONB(), "postgresql")
Time = DateTime(timezone=True)

#: A record's id: a uuid4 hex, or the client's own (at most 64 characters).
Id = Annotated[str, mapped_column(String(64))]
#: A name: of a policy, project, experiment, rater, reviewer, spec, API key.
Name = Annotated[str, mapped_column(String(200))]
#: A policy version, an alias or an experiment variant.
Version = Annotated[str, mapped_column(String(100))]
#: One of a few fixed words: a kind, a status, a source, an action.
Word = Annotated[str, mapped_column(String(20))]
#: A hex digest.
Digest = Annotated[str, mapped_column(String(128))]
#: Free text without a length limit.
LongText = Annotated[str, mapped_column(Text)]
#: A JSON value (JSONB on PostgreSQL).
JsonValue = Annotated[Any, mapped_column(Json)]
#: A count or a log position, which may outgrow 32 bits.
Count = Annotated[int, mapped_column(BigInteger)]


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: Time, float: Float()}


class DecisionRow(Base):
    __tablename__ = "decisions"

    id: Mapped[Id] = mapped_column(primary_key=True)
    policy: Mapped[Name]
    policy_version: Mapped[Version]
    kind: Mapped[Word]
    actions: Mapped[JsonValue]
    action: Mapped[LongText]
    action_dist: Mapped[JsonValue]
    pscore: Mapped[float]
    confidence: Mapped[float]
    latency_ms: Mapped[float | None]
    text: Mapped[LongText | None]
    features: Mapped[JsonValue | None]
    candidates: Mapped[JsonValue | None]
    meta: Mapped[JsonValue | None]
    ranking: Mapped[JsonValue | None]
    experiment: Mapped[Name | None]
    variant: Mapped[Version | None]
    variant_share: Mapped[float | None]
    trace: Mapped[JsonValue | None]
    idempotency_key: Mapped[Name | None] = mapped_column(unique=True)
    # created_at is when the store received the decision; client_time what the client said (if anything).
    created_at: Mapped[datetime]
    client_time: Mapped[datetime | None]
    # A set decided beside (or as) the action: {"labels", "chosen", "probs"} (types/sets.py).
    action_set: Mapped[JsonValue | None]

    __table_args__ = (
        Index("ix_decisions_policy_version_time", "policy", "policy_version", "created_at"),
        Index("ix_decisions_experiment", "experiment", "variant"),
        Index("ix_decisions_created_at", "created_at"),
    )


class FeedbackRow(Base):
    __tablename__ = "feedback"

    # Ids are unique per project (the project of the row's decision), not globally.
    project: Mapped[Name] = mapped_column(primary_key=True, server_default="default")
    id: Mapped[Id] = mapped_column(primary_key=True)
    decision_id: Mapped[Id] = mapped_column(ForeignKey("decisions.id"), index=True)
    kind: Mapped[Word]
    value: Mapped[float | None]
    scale_low: Mapped[float | None]
    scale_high: Mapped[float | None]
    label: Mapped[LongText | None]
    preferred: Mapped[LongText | None]
    rejected: Mapped[LongText | None]
    scores: Mapped[JsonValue | None]
    rater_id: Mapped[Name | None]
    authority: Mapped[float]
    source: Mapped[Word]
    comment: Mapped[LongText | None]
    created_at: Mapped[datetime] = mapped_column(index=True)
    client_time: Mapped[datetime | None]
    # A voided row stays stored (audited: who, when, why) and counts for no reward from then on.
    voided_at: Mapped[datetime | None]
    voided_by: Mapped[Name | None]
    void_reason: Mapped[LongText | None]
    # The labels of set feedback (missed_actions, unnecessary_actions, set_correction).
    labels: Mapped[JsonValue | None]
    # The row's position in the feedback log, set on insert (PostgreSQL: a column default; SQLite: by the
    # INSERT itself, migration 0008) and on void (a trigger, migration 0005): the online learner reads
    # the log in this order (store/online.py).
    log_seq: Mapped[int | None] = mapped_column(BigInteger, server_default=FetchedValue())

    __table_args__ = (Index("ix_feedback_log_seq", "log_seq", "project", "id"),)


class RewardRow(Base):
    __tablename__ = "rewards"

    decision_id: Mapped[Id] = mapped_column(ForeignKey("decisions.id"), primary_key=True)
    spec: Mapped[Name] = mapped_column(primary_key=True)
    spec_version: Mapped[int] = mapped_column(primary_key=True)
    value: Mapped[float]
    components: Mapped[JsonValue | None]
    feedback_ids: Mapped[JsonValue]
    disagreement: Mapped[float | None]
    created_at: Mapped[datetime]


class PolicyVersionRow(Base):
    __tablename__ = "policy_versions"

    policy: Mapped[Name] = mapped_column(primary_key=True)
    version: Mapped[Version] = mapped_column(primary_key=True)
    kind: Mapped[Word]
    artifact_path: Mapped[LongText]
    checksum: Mapped[Digest]
    config: Mapped[JsonValue | None]
    metrics: Mapped[JsonValue | None]
    parent_version: Mapped[Version | None]
    training_run_id: Mapped[Id | None]
    created_at: Mapped[datetime]


class RegistryPolicyRow(Base):
    """Who owns a registered policy (the project that registered it, from then on), and a counter
    that every alias move of the policy bumps (its compare-and-set lock, and the serving cache's key)."""

    __tablename__ = "registry_policies"

    policy: Mapped[Name] = mapped_column(primary_key=True)
    project: Mapped[Name] = mapped_column(index=True)
    generation: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime]


class AliasRow(Base):
    __tablename__ = "aliases"

    policy: Mapped[Name] = mapped_column(primary_key=True)
    alias: Mapped[Version] = mapped_column(primary_key=True)
    version: Mapped[Version]
    updated_at: Mapped[datetime]


class AliasEventRow(Base):
    __tablename__ = "alias_events"

    id: Mapped[Id] = mapped_column(primary_key=True)
    policy: Mapped[Name] = mapped_column(index=True)
    alias: Mapped[Version]
    from_version: Mapped[Version | None]
    to_version: Mapped[Version | None]
    action: Mapped[Word]
    actor: Mapped[Name]
    reason: Mapped[LongText]
    forced: Mapped[bool] = mapped_column(default=False)
    gate_report: Mapped[JsonValue | None]
    created_at: Mapped[datetime]


class TrainingRunRow(Base):
    __tablename__ = "training_runs"

    id: Mapped[Id] = mapped_column(primary_key=True)
    policy: Mapped[Name] = mapped_column(index=True)
    learner: Mapped[Version]
    config: Mapped[JsonValue | None]
    window_start: Mapped[datetime | None]
    window_end: Mapped[datetime | None]
    n_samples: Mapped[int]
    metrics: Mapped[JsonValue | None]
    artifact_path: Mapped[LongText | None]
    status: Mapped[Word]
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]


class ExperimentRow(Base):
    __tablename__ = "experiments"

    name: Mapped[Name] = mapped_column(primary_key=True)
    policy: Mapped[Name] = mapped_column(index=True)
    variants: Mapped[JsonValue]
    shares: Mapped[JsonValue]
    salt: Mapped[Name]
    ramp: Mapped[JsonValue]
    stage: Mapped[int]
    shadow: Mapped[bool] = mapped_column(default=False)
    status: Mapped[Word]
    verdict: Mapped[JsonValue | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class ReviewItemRow(Base):
    __tablename__ = "review_items"

    id: Mapped[Id] = mapped_column(primary_key=True)
    # One queue entry per decision: enqueueing twice is deduplicated by this constraint.
    decision_id: Mapped[Id] = mapped_column(ForeignKey("decisions.id"), unique=True)
    reason: Mapped[Name]
    priority: Mapped[float]
    status: Mapped[Word] = mapped_column(index=True)
    claimed_by: Mapped[Name | None]
    feedback_id: Mapped[Id | None]
    created_at: Mapped[datetime]
    resolved_at: Mapped[datetime | None]
    # A claim older than ``review.claim_minutes`` lapses (migration 0006).
    claimed_at: Mapped[datetime | None]
    # 2 for the overlap share: two reviewers answer, and their agreement is measured.
    answers_needed: Mapped[int] = mapped_column(Integer, server_default="1")


class ReviewMarkRow(Base):
    """One reviewer's mark on one item: ``answer`` (with the feedback it wrote) or ``skip``."""

    __tablename__ = "review_marks"
    __table_args__ = (UniqueConstraint("item_id", "reviewer", name="uq_review_marks_item_reviewer"),)

    id: Mapped[Id] = mapped_column(primary_key=True)
    item_id: Mapped[Id] = mapped_column(ForeignKey("review_items.id"))
    reviewer: Mapped[Name] = mapped_column(index=True)
    mark: Mapped[Word]
    feedback_id: Mapped[Id | None]
    created_at: Mapped[datetime]


class ApiKeyRow(Base):
    __tablename__ = "api_keys"

    id: Mapped[Id] = mapped_column(primary_key=True)
    name: Mapped[Name]
    key_hash: Mapped[Digest] = mapped_column(unique=True)
    scopes: Mapped[JsonValue]
    project: Mapped[Name]
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class OnlineOffsetRow(Base):
    """Where the online learner of one router lineage (a policy's registered version) has read the
    feedback log to, and the state version it last published (store/online.py)."""

    __tablename__ = "online_offsets"

    policy: Mapped[Name] = mapped_column(primary_key=True)
    base_version: Mapped[Version] = mapped_column(primary_key=True)
    state_version: Mapped[int]
    log_seq: Mapped[Count]
    feedback_project: Mapped[Name]
    feedback_id: Mapped[Id]
    events: Mapped[Count]
    rewards: Mapped[Count]
    updated_at: Mapped[datetime]


class OnlineAppliedRow(Base):
    """The reward the online learner has applied for one decision, and the feedback it came from."""

    __tablename__ = "online_applied"

    policy: Mapped[Name] = mapped_column(primary_key=True)
    base_version: Mapped[Version] = mapped_column(primary_key=True)
    decision_id: Mapped[Id] = mapped_column(ForeignKey("decisions.id"), primary_key=True)
    reward: Mapped[float]
    feedback_ids: Mapped[JsonValue]
    state_version: Mapped[int]


class RouterStateRow(Base):
    """One published state of a router lineage: its saved ``router.json`` and ``state.npz``."""

    __tablename__ = "router_states"

    policy: Mapped[Name] = mapped_column(primary_key=True)
    base_version: Mapped[Version] = mapped_column(primary_key=True)
    state_version: Mapped[int] = mapped_column(primary_key=True)
    meta: Mapped[LongText]
    arrays: Mapped[bytes]
    events: Mapped[Count]
    rewards: Mapped[Count]
    created_at: Mapped[datetime]


class IdempotencyRow(Base):
    """The stored answer of a write sent with an ``Idempotency-Key`` header, per API key
    (store/idempotency.py)."""

    __tablename__ = "idempotency_keys"

    api_key_id: Mapped[Id] = mapped_column(primary_key=True)
    key_hash: Mapped[Digest] = mapped_column(primary_key=True)
    fingerprint: Mapped[Digest]
    method: Mapped[Word]
    path: Mapped[LongText]
    status: Mapped[int]
    content_type: Mapped[Name]
    body: Mapped[bytes]
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(index=True)
