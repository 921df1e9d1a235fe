"""registry policies: the owning project and an alias-move counter per registered policy

Revision ID: 0003_registry_project
Revises: 0001
Create Date: 2026-12-01 10:10:00

A policy belongs to the project that registered it. Policies registered before this revision get the
project of their first logged decision, else ``default`` (the project of decisions logged without one).
It reads only tables of revision 0001 (chained after 0002_trust_data, which it does not depend on).
"""

import json
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0003_registry_project"
down_revision = "0002_trust_data"
branch_labels = None
depends_on = None

DEFAULT_PROJECT = "default"


def _first_project(conn: sa.Connection, decisions: sa.Table, policy: str) -> str:
    meta = conn.scalar(
        sa.select(decisions.c.meta)
        .where(decisions.c.policy == policy)
        .order_by(decisions.c.created_at)
        .limit(1)
    )
    if isinstance(meta, str):  # JSON text on SQLite when read without the JSON type
        meta = json.loads(meta)
    project = meta.get("project") if isinstance(meta, dict) else None
    return project if isinstance(project, str) and project else DEFAULT_PROJECT


def upgrade() -> None:
    table = op.create_table(
        "registry_policies",
        sa.Column("policy", sa.String(length=200), nullable=False),
        sa.Column("project", sa.String(length=200), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("policy"),
    )
    op.create_index("ix_registry_policies_project", "registry_policies", ["project"], unique=False)
    conn = op.get_bind()
    versions = sa.table("policy_versions", sa.column("policy", sa.String()))
    decisions = sa.table(
        "decisions",
        sa.column("policy", sa.String()),
        sa.column("meta", sa.JSON()),
        sa.column("created_at", sa.DateTime(timezone=True)),
    )
    now = datetime.now(UTC)
    rows = [
        {"policy": p, "project": _first_project(conn, decisions, p), "generation": 0, "created_at": now}
        for p in conn.scalars(sa.select(versions.c.policy).distinct())
    ]
    if rows:
        op.bulk_insert(table, rows)


def downgrade() -> None:
    op.drop_index("ix_registry_policies_project", table_name="registry_policies")
    op.drop_table("registry_policies")
