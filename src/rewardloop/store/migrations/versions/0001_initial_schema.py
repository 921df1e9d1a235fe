"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-22 08:46:29.893781
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# JSONB on PostgreSQL, JSON text on SQLite (as in store/tables.py).
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TIME = sa.DateTime(timezone=True)

# The columns by type; every column is NOT NULL unless ``nullable=True``.


def _string(name: str, length: int, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.String(length=length), nullable=nullable)


def _text(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.Text(), nullable=nullable)


def _float(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.Float(), nullable=nullable)


def _integer(name: str) -> sa.Column:
    return sa.Column(name, sa.Integer(), nullable=False)


def _boolean(name: str) -> sa.Column:
    return sa.Column(name, sa.Boolean(), nullable=False)


def _json(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, JSON, nullable=nullable)


def _time(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, TIME, nullable=nullable)


def _of_decision() -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(["decision_id"], ["decisions.id"])


def _create_indexes(table: str, *columns: str) -> None:
    """One index per column, named ``ix_<table>_<column>`` (as ``index=True`` in store/tables.py names it)."""
    with op.batch_alter_table(table, schema=None) as batch_op:
        for column in columns:
            batch_op.create_index(batch_op.f(f"ix_{table}_{column}"), [column], unique=False)


def _drop_indexes(table: str, *columns: str) -> None:
    with op.batch_alter_table(table, schema=None) as batch_op:
        for column in columns:
            batch_op.drop_index(batch_op.f(f"ix_{table}_{column}"))


def upgrade() -> None:
    _alias_events()
    _aliases()
    _api_keys()
    _decisions()
    _experiments()
    _policy_versions()
    _training_runs()
    _feedback()
    _review_items()
    _rewards()


def _alias_events() -> None:
    op.create_table(
        "alias_events",
        _string("id", 64),
        _string("policy", 200),
        _string("alias", 100),
        _string("from_version", 100, nullable=True),
        _string("to_version", 100, nullable=True),
        _string("action", 20),
        _string("actor", 200),
        _text("reason"),
        _boolean("forced"),
        _json("gate_report", nullable=True),
        _time("created_at"),
        sa.PrimaryKeyConstraint("id"),
    )
    _create_indexes("alias_events", "policy")


def _aliases() -> None:
    op.create_table(
        "aliases",
        _string("policy", 200),
        _string("alias", 100),
        _string("version", 100),
        _time("updated_at"),
        sa.PrimaryKeyConstraint("policy", "alias"),
    )


def _api_keys() -> None:
    op.create_table(
        "api_keys",
        _string("id", 64),
        _string("name", 200),
        _string("key_hash", 128),
        _json("scopes"),
        _string("project", 200),
        _time("created_at"),
        _time("revoked_at", nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key_hash"),
    )


def _decisions() -> None:
    op.create_table(
        "decisions",
        _string("id", 64),
        _string("policy", 200),
        _string("policy_version", 100),
        _string("kind", 20),
        _json("actions"),
        _text("action"),
        _json("action_dist"),
        _float("pscore"),
        _float("confidence"),
        _float("latency_ms", nullable=True),
        _text("text", nullable=True),
        _json("features", nullable=True),
        _json("candidates", nullable=True),
        _json("meta", nullable=True),
        _json("ranking", nullable=True),
        _string("experiment", 200, nullable=True),
        _string("variant", 100, nullable=True),
        _float("variant_share", nullable=True),
        _json("trace", nullable=True),
        _string("idempotency_key", 200, nullable=True),
        _time("created_at"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("idempotency_key"),
    )
    with op.batch_alter_table("decisions", schema=None) as batch_op:
        batch_op.create_index("ix_decisions_created_at", ["created_at"], unique=False)
        batch_op.create_index("ix_decisions_experiment", ["experiment", "variant"], unique=False)
        batch_op.create_index(
            "ix_decisions_policy_version_time", ["policy", "policy_version", "created_at"], unique=False
        )


def _experiments() -> None:
    op.create_table(
        "experiments",
        _string("name", 200),
        _string("policy", 200),
        _json("variants"),
        _json("shares"),
        _string("salt", 200),
        _json("ramp"),
        _integer("stage"),
        _boolean("shadow"),
        _string("status", 20),
        _json("verdict", nullable=True),
        _time("created_at"),
        _time("updated_at"),
        sa.PrimaryKeyConstraint("name"),
    )
    _create_indexes("experiments", "policy")


def _policy_versions() -> None:
    op.create_table(
        "policy_versions",
        _string("policy", 200),
        _string("version", 100),
        _string("kind", 20),
        _text("artifact_path"),
        _string("checksum", 128),
        _json("config", nullable=True),
        _json("metrics", nullable=True),
        _string("parent_version", 100, nullable=True),
        _string("training_run_id", 64, nullable=True),
        _time("created_at"),
        sa.PrimaryKeyConstraint("policy", "version"),
    )


def _training_runs() -> None:
    op.create_table(
        "training_runs",
        _string("id", 64),
        _string("policy", 200),
        _string("learner", 100),
        _json("config", nullable=True),
        _time("window_start", nullable=True),
        _time("window_end", nullable=True),
        _integer("n_samples"),
        _json("metrics", nullable=True),
        _text("artifact_path", nullable=True),
        _string("status", 20),
        _time("started_at"),
        _time("finished_at", nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    _create_indexes("training_runs", "policy")


def _feedback() -> None:
    op.create_table(
        "feedback",
        _string("id", 64),
        _string("decision_id", 64),
        _string("kind", 20),
        _float("value", nullable=True),
        _float("scale_low", nullable=True),
        _float("scale_high", nullable=True),
        _text("label", nullable=True),
        _text("preferred", nullable=True),
        _text("rejected", nullable=True),
        _json("scores", nullable=True),
        _string("rater_id", 200, nullable=True),
        _float("authority"),
        _string("source", 20),
        _text("comment", nullable=True),
        _time("created_at"),
        _of_decision(),
        sa.PrimaryKeyConstraint("id"),
    )
    _create_indexes("feedback", "created_at", "decision_id")


def _review_items() -> None:
    op.create_table(
        "review_items",
        _string("id", 64),
        _string("decision_id", 64),
        _string("reason", 200),
        _float("priority"),
        _string("status", 20),
        _string("claimed_by", 200, nullable=True),
        _string("feedback_id", 64, nullable=True),
        _time("created_at"),
        _time("resolved_at", nullable=True),
        _of_decision(),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("decision_id"),
    )
    _create_indexes("review_items", "status")


def _rewards() -> None:
    op.create_table(
        "rewards",
        _string("decision_id", 64),
        _string("spec", 200),
        _integer("spec_version"),
        _float("value"),
        _json("components", nullable=True),
        _json("feedback_ids"),
        _float("disagreement", nullable=True),
        _time("created_at"),
        _of_decision(),
        sa.PrimaryKeyConstraint("decision_id", "spec", "spec_version"),
    )


def downgrade() -> None:
    op.drop_table("rewards")
    _drop_indexes("review_items", "status")
    op.drop_table("review_items")
    _drop_indexes("feedback", "decision_id", "created_at")
    op.drop_table("feedback")
    _drop_indexes("training_runs", "policy")
    op.drop_table("training_runs")
    op.drop_table("policy_versions")
    _drop_indexes("experiments", "policy")
    op.drop_table("experiments")
    with op.batch_alter_table("decisions", schema=None) as batch_op:
        batch_op.drop_index("ix_decisions_policy_version_time")
        batch_op.drop_index("ix_decisions_experiment")
        batch_op.drop_index("ix_decisions_created_at")
    op.drop_table("decisions")
    op.drop_table("api_keys")
    op.drop_table("aliases")
    _drop_indexes("alias_events", "policy")
    op.drop_table("alias_events")
