"""Feedback log positions (migration 0008): on SQLite the insert numbers its rows itself, consecutively
and in commit order, with no per-row trigger; replays and repeats take no position; a void moves the
row to the end. On PostgreSQL a batch shares its transaction's position."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select, text
from tests.store.test_repository import make_decision

from rewardloop.store import Store, write_decisions, write_feedback
from rewardloop.store.tables import FeedbackRow
from rewardloop.store.voids import void_feedback
from rewardloop.types import Decision, Feedback

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def _decisions(n: int) -> list[Decision]:
    return [make_decision(i) for i in range(n)]


def _rating(fid: str, decision: str, value: float = 1.0) -> Feedback:
    return Feedback(id=fid, decision_id=decision, kind="rating", value=value, scale=(0, 1), created_at=T0)


def _positions(store: Store) -> dict[str, int | None]:
    f = FeedbackRow
    with store.engine.connect() as conn:
        return {r[0]: r[1] for r in conn.execute(select(f.id, f.log_seq).order_by(f.id))}


def test_sqlite_batches_take_consecutive_positions_and_skipped_rows_none(sqlite_store: Store):
    store = sqlite_store
    write_decisions(store, _decisions(5))
    assert write_feedback(store, [_rating("a", "d0"), _rating("b", "d1"), _rating("c", "d2")]).written == 3
    assert _positions(store) == {"a": 1, "b": 2, "c": 3}
    # d: new; a: a replay; d again: a repeat in the batch; e: new. Only d and e are written.
    batch = [_rating("d", "d3"), _rating("a", "d0"), _rating("d", "d3"), _rating("e", "d4")]
    report = write_feedback(store, batch)
    assert (report.written, report.duplicates, report.conflicts) == (2, 2, [])
    assert _positions(store) == {"a": 1, "b": 2, "c": 3, "d": 4, "e": 5}
    void_feedback(store, "b", reason="spam", actor="ops")
    assert _positions(store)["b"] == 6


def test_sqlite_conflicting_batch_is_refused_and_takes_no_position(sqlite_store: Store):
    store = sqlite_store
    write_decisions(store, _decisions(2))
    write_feedback(store, [_rating("a", "d0")])
    report = write_feedback(store, [_rating("b", "d1"), _rating("a", "d0", 0.0)], skip_invalid=True)
    assert report.written == 1 and [e.row for e in report.conflicts] == [1]
    assert _positions(store) == {"a": 1, "b": 2}


def test_sqlite_has_no_per_row_insert_trigger(sqlite_store: Store):
    with sqlite_store.engine.connect() as conn:
        triggers = conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'trigger'")).scalars()
        assert sorted(triggers) == ["feedback_log_seq_void"]


def test_every_stored_row_has_a_position(store: Store):
    write_decisions(store, _decisions(3))
    write_feedback(store, [_rating("a", "d0"), _rating("b", "d1")])
    write_feedback(store, [_rating("c", "d2")])
    positions = _positions(store)
    if store.dialect == "sqlite":
        assert positions == {"a": 1, "b": 2, "c": 3}
    else:  # the writing transaction's id: shared by a batch, later for a later batch
        assert positions["a"] == positions["b"] is not None and positions["c"] is not None
        assert positions["a"] < positions["c"]
