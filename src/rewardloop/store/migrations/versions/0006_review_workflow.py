"""review workflow: claims that expire, items answered by two reviewers, skips

``review_items.claimed_at`` is when the item was claimed (a claim older than ``review.claim_minutes``
lapses: the item is open to others again); ``review_items.answers_needed`` is how many reviewers must
answer the item (2 for the overlap share, whose agreement is measured). ``review_marks`` holds one row
per (item, reviewer): ``answer`` (with the feedback it wrote) or ``skip`` (the item is not shown to that
reviewer again). Rows stored before this revision need one answer and carry no claim time.

Revision ID: 0006_review_workflow
Revises: 0005_online_learning
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_review_workflow"
down_revision = "0005_online_learning"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("review_items") as batch_op:
        batch_op.add_column(sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("answers_needed", sa.Integer(), nullable=False, server_default="1"))
    op.create_table(
        "review_marks",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("item_id", sa.String(64), sa.ForeignKey("review_items.id"), nullable=False),
        sa.Column("reviewer", sa.String(200), nullable=False),
        sa.Column("mark", sa.String(20), nullable=False),
        sa.Column("feedback_id", sa.String(64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("item_id", "reviewer", name="uq_review_marks_item_reviewer"),
    )
    op.create_index("ix_review_marks_reviewer", "review_marks", ["reviewer"])


def downgrade() -> None:
    op.drop_index("ix_review_marks_reviewer", "review_marks")
    op.drop_table("review_marks")
    with op.batch_alter_table("review_items") as batch_op:
        batch_op.drop_column("answers_needed")
        batch_op.drop_column("claimed_at")
