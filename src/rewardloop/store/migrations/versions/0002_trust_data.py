"""trust the data: feedback ids per project, client times, voided feedback

Feedback ids become unique per project (primary key ``(project, id)``; a feedback row's project is its
decision's), decisions and feedback keep the client's own time as ``client_time`` beside the server's
receipt time ``created_at``, and a feedback row can be voided (who, when, why).

Revision ID: 0002_trust_data
Revises: 0001
"""

import warnings

import sqlalchemy as sa
from alembic import op

revision = "0002_trust_data"
down_revision = "0001"
branch_labels = None
depends_on = None

_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    with op.batch_alter_table("decisions") as batch_op:
        batch_op.add_column(sa.Column("client_time", _TIME, nullable=True))
    with op.batch_alter_table("feedback") as batch_op:
        batch_op.add_column(sa.Column("project", sa.String(200), nullable=False, server_default="default"))
        batch_op.add_column(sa.Column("client_time", _TIME, nullable=True))
        batch_op.add_column(sa.Column("voided_at", _TIME, nullable=True))
        batch_op.add_column(sa.Column("voided_by", sa.String(200), nullable=True))
        batch_op.add_column(sa.Column("void_reason", sa.Text(), nullable=True))
    # Each stored row takes its decision's project (as store.insights.project_of_decision reads it).
    project = "json_extract(d.meta, '$.project')" if sqlite else "d.meta ->> 'project'"
    op.execute(
        "UPDATE feedback SET project = COALESCE((SELECT "
        f"{project} FROM decisions d WHERE d.id = feedback.decision_id), 'default')"
    )
    if sqlite:
        # Recreating the table replaces the reflected primary key; SQLAlchemy warns that they differ.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", sa.exc.SAWarning)
            with op.batch_alter_table("feedback", recreate="always") as batch_op:
                batch_op.create_primary_key("pk_feedback", ["project", "id"])
    else:
        op.drop_constraint("feedback_pkey", "feedback", type_="primary")
        op.create_primary_key("feedback_pkey", "feedback", ["project", "id"])


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    if sqlite:
        with op.batch_alter_table("feedback", recreate="always") as batch_op:
            batch_op.create_primary_key("pk_feedback", ["id"])
    else:
        op.drop_constraint("feedback_pkey", "feedback", type_="primary")
        op.create_primary_key("feedback_pkey", "feedback", ["id"])
    with op.batch_alter_table("feedback") as batch_op:
        for name in ("void_reason", "voided_by", "voided_at", "client_time", "project"):
            batch_op.drop_column(name)
    with op.batch_alter_table("decisions") as batch_op:
        batch_op.drop_column("client_time")
