"""Records to column values and back (store/rows.py): fields by name, the few that differ given, stored
times back timezone-aware, optional filters of a read."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

from rewardloop.store import Store
from rewardloop.store.experiments import insert_experiment, read_experiments
from rewardloop.store.rows import record_from_row, row_values
from rewardloop.types import Experiment, ReviewItem


def test_row_values_copies_mappings_and_tuples_to_what_a_json_column_stores() -> None:
    exp = Experiment(name="e", policy="p", variants={"a": "1"}, shares={"a": 1.0}, salt="s", ramp=(0.5, 1.0))
    values = row_values(exp, status="stopped")
    assert values["ramp"] == [0.5, 1.0] and type(values["variants"]) is dict
    assert values["status"] == "stopped"
    assert set(values) == set(Experiment.__dataclass_fields__)


def test_record_from_row_reads_each_field_and_makes_stored_times_aware() -> None:
    naive = datetime(2026, 1, 2, 3, 4, 5)  # as SQLite hands a stored UTC time back
    row = SimpleNamespace(
        id="r1",
        decision_id="d1",
        reason="unsure",
        priority=0.5,
        status="open",
        claimed_by=None,
        feedback_id=None,
        created_at=naive,
        resolved_at=None,
        claimed_at=naive,
        answers_needed=2,
    )
    item = record_from_row(ReviewItem, row, priority=0.75)
    aware = naive.replace(tzinfo=UTC)
    assert item == ReviewItem(
        id="r1",
        decision_id="d1",
        reason="unsure",
        priority=0.75,
        created_at=aware,
        claimed_at=aware,
        answers_needed=2,
    )


def test_reads_filter_only_on_the_values_given(store: Store) -> None:
    for name, policy, status in (("e1", "p", "running"), ("e2", "p", "stopped"), ("e3", "q", "running")):
        exp = Experiment(
            name=name, policy=policy, variants={"a": "1"}, shares={"a": 1.0}, salt="s", status=status
        )
        insert_experiment(store, exp)
    assert [e.name for e in read_experiments(store)] == ["e1", "e2", "e3"]
    assert [e.name for e in read_experiments(store, policy="p")] == ["e1", "e2"]
    assert [e.name for e in read_experiments(store, policy="p", status="running")] == ["e1"]
    assert all(e.created_at.tzinfo is not None for e in read_experiments(store))
