"""online learning: a position for every feedback row in the log, the learner's offset, its ledger
of applied rewards and the router states it publishes

``feedback.log_seq`` orders the feedback log for the online learner (:mod:`rewardloop.store.online`).
On PostgreSQL it is the id of the transaction that wrote (or voided) the row, set by the database; on
SQLite, whose writers take turns, a counter that a trigger bumps on every insert and void. Rows of one
transaction share a position and are told apart by ``(project, id)``.

Revision ID: 0005_online_learning
Revises: 0004_action_sets
"""

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0005_online_learning"
down_revision = "0004_action_sets"
branch_labels = None
depends_on = None

_TIME = sa.DateTime(timezone=True)
_JSON = sa.JSON().with_variant(sa.dialects.postgresql.JSONB(), "postgresql")
#: The writing transaction's id, 64 bits (epoch-extended, so it never wraps around).
PG_XID = "(pg_current_xact_id()::text::bigint)"

_SQLITE_TRIGGERS = (
    """CREATE TRIGGER feedback_log_seq_insert AFTER INSERT ON feedback BEGIN
       UPDATE feedback SET log_seq = (SELECT COALESCE(MAX(log_seq), 0) + 1 FROM feedback)
       WHERE rowid = NEW.rowid; END""",
    """CREATE TRIGGER feedback_log_seq_void AFTER UPDATE OF voided_at ON feedback BEGIN
       UPDATE feedback SET log_seq = (SELECT COALESCE(MAX(log_seq), 0) + 1 FROM feedback)
       WHERE rowid = NEW.rowid; END""",
)
_PG_TRIGGER = (
    f"""CREATE FUNCTION rewardloop_feedback_log_seq() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN NEW.log_seq := {PG_XID}; RETURN NEW; END $$""",
    """CREATE TRIGGER feedback_log_seq_void BEFORE UPDATE OF voided_at ON feedback
       FOR EACH ROW EXECUTE FUNCTION rewardloop_feedback_log_seq()""",
)


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    if sqlite:
        op.add_column("feedback", sa.Column("log_seq", sa.BigInteger(), nullable=True))
        # Rows stored before this revision take positions in the order they arrived.
        op.execute(
            "UPDATE feedback SET log_seq = (SELECT n FROM (SELECT rowid AS r, ROW_NUMBER() OVER "
            "(ORDER BY created_at, project, id) AS n FROM feedback) WHERE r = feedback.rowid)"
        )
        for statement in _SQLITE_TRIGGERS:
            op.execute(statement)
    else:
        # A volatile default: existing rows get the migration's transaction id, new rows their own.
        op.add_column(
            "feedback",
            sa.Column("log_seq", sa.BigInteger(), nullable=True, server_default=sa.text(PG_XID)),
        )
        for statement in _PG_TRIGGER:
            op.execute(statement)
    op.create_index("ix_feedback_log_seq", "feedback", ["log_seq", "project", "id"])
    _lineage_table(
        "online_offsets",
        sa.Column("state_version", sa.Integer(), nullable=False),
        sa.Column("log_seq", sa.BigInteger(), nullable=False),
        sa.Column("feedback_project", sa.String(200), nullable=False),
        sa.Column("feedback_id", sa.String(64), nullable=False),
        *_counters(),
        sa.Column("updated_at", _TIME, nullable=False),
    )
    _lineage_table(
        "online_applied",
        sa.Column("decision_id", sa.String(64), sa.ForeignKey("decisions.id"), nullable=False),
        sa.Column("reward", sa.Float(), nullable=False),
        sa.Column("feedback_ids", _JSON, nullable=False),
        sa.Column("state_version", sa.Integer(), nullable=False),
        key=("decision_id",),
    )
    _lineage_table(
        "router_states",
        sa.Column("state_version", sa.Integer(), nullable=False),
        sa.Column("meta", sa.Text(), nullable=False),
        sa.Column("arrays", sa.LargeBinary(), nullable=False),
        *_counters(),
        sa.Column("created_at", _TIME, nullable=False),
        key=("state_version",),
    )


def _lineage_table(name: str, *columns: sa.Column[Any], key: tuple[str, ...] = ()) -> None:
    """Create a table keyed by a router lineage (policy, base version), then ``key``."""
    op.create_table(
        name,
        sa.Column("policy", sa.String(200), nullable=False),
        sa.Column("base_version", sa.String(100), nullable=False),
        *columns,
        sa.PrimaryKeyConstraint("policy", "base_version", *key),
    )


def _counters() -> tuple[sa.Column[Any], sa.Column[Any]]:
    """The learner's counts so far: feedback events read and rewards applied."""
    return (
        sa.Column("events", sa.BigInteger(), nullable=False),
        sa.Column("rewards", sa.BigInteger(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("router_states")
    op.drop_table("online_applied")
    op.drop_table("online_offsets")
    op.drop_index("ix_feedback_log_seq", table_name="feedback")
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER feedback_log_seq_void")
        op.execute("DROP TRIGGER feedback_log_seq_insert")
    else:
        op.execute("DROP TRIGGER feedback_log_seq_void ON feedback")
        op.execute("DROP FUNCTION rewardloop_feedback_log_seq()")
    with op.batch_alter_table("feedback") as batch_op:
        batch_op.drop_column("log_seq")
