"""The store: tables, migrations, engine, and typed read/write functions.

Open one with :meth:`Store.open`; the functions below take it as their first argument.
"""

from rewardloop.store.engine import Store, StoreError, current_revision, head_revision, make_engine, upgrade
from rewardloop.store.repository import (
    BatchError,
    GroupStats,
    StoreStats,
    WriteReport,
    existing_decision_ids,
    insert_feedback,
    log_decision,
    read_decisions,
    read_feedback,
    read_rewards,
    store_stats,
    write_decisions,
    write_feedback,
    write_rewards,
)
from rewardloop.store.runs import finish_run, get_run, read_runs, start_run

__all__ = [
    "BatchError",
    "GroupStats",
    "Store",
    "StoreError",
    "StoreStats",
    "WriteReport",
    "current_revision",
    "existing_decision_ids",
    "finish_run",
    "get_run",
    "head_revision",
    "insert_feedback",
    "log_decision",
    "make_engine",
    "read_decisions",
    "read_feedback",
    "read_rewards",
    "read_runs",
    "start_run",
    "store_stats",
    "upgrade",
    "write_decisions",
    "write_feedback",
    "write_rewards",
]
