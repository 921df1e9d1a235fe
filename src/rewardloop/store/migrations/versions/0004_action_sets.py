"""set-valued decisions: a decision's chosen set, and the labels of set feedback

``decisions.action_set`` holds a set decided beside (or as) the action: ``{"labels": [...], "chosen":
[...], "probs": [...]}`` (``Decision.label_space``, ``chosen_set``, ``label_probs``); ``feedback.labels``
the labels of ``missed_actions``, ``unnecessary_actions`` and ``set_correction`` feedback. Both are
nullable JSON: rows stored before this revision carry no set. The upgrade runs in the one transaction of
``store.engine.upgrade`` (all or nothing on both databases).

Revision ID: 0004_action_sets
Revises: 0003_registry_project
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0004_action_sets"
down_revision = "0003_registry_project"
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("decisions") as batch_op:
        batch_op.add_column(sa.Column("action_set", _JSON, nullable=True))
    with op.batch_alter_table("feedback") as batch_op:
        batch_op.add_column(sa.Column("labels", _JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("feedback") as batch_op:
        batch_op.drop_column("labels")
    with op.batch_alter_table("decisions") as batch_op:
        batch_op.drop_column("action_set")
