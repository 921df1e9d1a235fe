"""feedback log positions on SQLite come from the insert itself, not from a per-row trigger

Migration 0005 numbered each feedback row on SQLite with an ``AFTER INSERT`` trigger that updated the
row just written (``log_seq = MAX(log_seq) + 1``): a second write of the row and of its index entries,
which doubled the database's work per feedback row. The store's one feedback insert
(:func:`rewardloop.store.bulk._bulk_insert`) now gives the value in the ``INSERT`` itself, from the same
``MAX(log_seq) + 1`` read by the same statement: writers take turns on SQLite, so positions still
follow commit order, and the rows of a batch take consecutive positions. The trigger that moves a
voided row to the end of the log stays (a void is one row). PostgreSQL is unchanged: its position is
the writing transaction's id, a column default, with no per-row trigger on insert.

Revision ID: 0008_log_seq_in_insert
Revises: 0007_idempotency_keys
"""

from alembic import op

revision = "0008_log_seq_in_insert"
down_revision = "0007_idempotency_keys"

_SQLITE_INSERT_TRIGGER = """CREATE TRIGGER feedback_log_seq_insert AFTER INSERT ON feedback BEGIN
       UPDATE feedback SET log_seq = (SELECT COALESCE(MAX(log_seq), 0) + 1 FROM feedback)
       WHERE rowid = NEW.rowid; END"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER feedback_log_seq_insert")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute(_SQLITE_INSERT_TRIGGER)
