"""Alembic environment: runs on the connection rewardloop hands it (see store.engine.upgrade)."""

from alembic import context

from rewardloop.store.tables import Base

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only through `alembic` on the command line
    raise RuntimeError("run migrations through rewardloop.store.upgrade() or `rewardloop init`")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
