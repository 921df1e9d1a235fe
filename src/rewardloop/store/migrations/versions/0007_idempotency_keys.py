"""Idempotency-Key: the stored answer of each write sent with the header, per API key, until it expires

``idempotency_keys`` holds one row per (API key, SHA-256 of the header value): a fingerprint of the
request (method, path, query and body), the answer's status, media type and body, and when the row
stops counting (``service.idempotency_hours`` after the write). The same key with the same request replays the
answer; with another request it is refused.

Revision ID: 0007_idempotency_keys
Revises: 0006_review_workflow
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_idempotency_keys"
down_revision = "0006_review_workflow"

_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "idempotency_keys",
        sa.Column("api_key_id", sa.String(64), primary_key=True),
        sa.Column("key_hash", sa.String(128), primary_key=True),
        sa.Column("fingerprint", sa.String(128), nullable=False),
        sa.Column("method", sa.String(20), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("content_type", sa.String(200), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("expires_at", _TIME, nullable=False),
    )
    op.create_index("ix_idempotency_keys_expires_at", "idempotency_keys", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_idempotency_keys_expires_at", "idempotency_keys")
    op.drop_table("idempotency_keys")
