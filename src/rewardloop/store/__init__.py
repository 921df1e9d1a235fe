"""The store: tables, migrations, engine, and typed read/write functions.

Open one with :meth:`Store.open`; the functions below take it as their first argument.

The names are loaded on first use (PEP 562), so that importing a light submodule such as
``rewardloop.store.files`` (the JSONL/CSV readers that ``rewardloop eval`` uses for a golden set) does
not import SQLAlchemy and the tables: ~0.5 s of CPU on their own, 0.1–0.2 s of an evaluation's
start-up (which imports some of the same libraries anyway).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rewardloop.store.engine import (
        Store,
        StoreError,
        current_revision,
        head_revision,
        make_engine,
        upgrade,
    )
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

#: exported name -> the submodule that defines it
_WHERE = {
    **dict.fromkeys(
        ["Store", "StoreError", "current_revision", "head_revision", "make_engine", "upgrade"], "engine"
    ),
    **dict.fromkeys(
        [
            "BatchError",
            "GroupStats",
            "StoreStats",
            "WriteReport",
            "existing_decision_ids",
            "insert_feedback",
            "log_decision",
            "read_decisions",
            "read_feedback",
            "read_rewards",
            "store_stats",
            "write_decisions",
            "write_feedback",
            "write_rewards",
        ],
        "repository",
    ),
    **dict.fromkeys(["finish_run", "get_run", "read_runs", "start_run"], "runs"),
}


def __getattr__(name: str) -> Any:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{where}"), name)
    globals()[name] = value  # later look-ups (and monkeypatching) see a plain attribute
    return value


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
