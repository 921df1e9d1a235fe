"""Issue 13, items 3, 4, 6 and 11 at the store: ids per project with replay/conflict semantics, what
both databases can hold, the store's bounds, correction labels at write time."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import String, func, select

from rewardloop.store import BatchError, Store, log_decision, read_feedback, write_decisions, write_feedback
from rewardloop.store.tables import Base, FeedbackRow
from rewardloop.types import Decision, Feedback, RecordError
from rewardloop.types.limits import MAX_LENGTH


def decision(i: int, project: str | None = None, **changes: object) -> Decision:
    base: dict[str, object] = dict(
        id=f"d{i}",
        policy="news",
        policy_version="1",
        kind="classifier",
        actions=("sport", "politics"),
        action="sport",
        action_dist=(0.75, 0.25),
        pscore=0.75,
        text=f"match report {i}",
        metadata={"project": project} if project else {},
    )
    return Decision(**{**base, **changes})  # type: ignore[arg-type]


def rating(decision_id: str, value: float = 1.0, **changes: object) -> Feedback:
    return Feedback(decision_id=decision_id, kind="implicit", value=value, **changes)  # type: ignore[arg-type]


def stored_feedback(store: Store) -> int:
    with store.engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(FeedbackRow)))


def test_feedback_ids_are_unique_per_project_not_globally(store: Store) -> None:
    write_decisions(store, [decision(1, "a"), decision(2, "b")])
    # Project B used "order-1001" first; project A's own "order-1001" is stored too (was: dropped, 201).
    assert write_feedback(store, [rating("d2", id="order-1001")]).written == 1
    assert write_feedback(store, [rating("d1", id="order-1001")]).written == 1
    assert sorted(f.decision_id for f in read_feedback(store)) == ["d1", "d2"]


def test_same_feedback_id_same_body_replays_a_different_body_conflicts(store: Store) -> None:
    write_decisions(store, [decision(1, "a")])
    first = rating("d1", id="fb-1")
    assert write_feedback(store, [first]).written == 1
    replay = write_feedback(store, [rating("d1", id="fb-1")])  # a retry: another receipt time
    assert (replay.written, replay.duplicates, replay.conflicts) == (0, 1, [])
    with pytest.raises(BatchError, match=r"row 1: id: 'fb-1' was used before in this project"):
        write_feedback(store, [rating("d1", id="fb-2"), rating("d1", value=0.0, id="fb-1")])
    assert stored_feedback(store) == 1  # the whole batch was refused, fb-2 too
    report = write_feedback(store, [rating("d1", value=0.0, id="fb-1")], skip_invalid=True)
    assert (report.written, report.duplicates, [e.field for e in report.conflicts]) == (0, 0, ["id"])
    (kept,) = read_feedback(store)
    assert kept.value == 1.0


def test_idempotency_key_reused_with_another_body_is_a_conflict(store: Store) -> None:
    assert log_decision(store, decision(1, idempotency_key="req-1")) == "d1"
    assert log_decision(store, decision(1, id="d9", idempotency_key="req-1")) == "d1"  # a replay
    with pytest.raises(BatchError, match="idempotency_key: 'req-1' was used before for a different decision"):
        log_decision(store, decision(1, id="d9", idempotency_key="req-1", text="another request"))
    with pytest.raises(BatchError, match="id: 'd1' was used before"):
        write_decisions(store, [decision(1, text="another request")])
    report = write_decisions(store, [decision(1, text="changed"), decision(2)], skip_invalid=True)
    assert (report.written, [e.row for e in report.conflicts]) == (1, [0])


def test_a_decision_over_max_actions_is_refused_naming_the_field(store: Store) -> None:
    store.max_actions = 3
    many = tuple(f"a{i}" for i in range(4))
    big = decision(1, actions=many, action="a0", action_dist=(0.25,) * 4, pscore=0.25)
    with pytest.raises(
        BatchError, match=r"actions: has 4 actions; at most 3 are accepted \(store.max_actions\)"
    ):
        write_decisions(store, [big])
    with pytest.raises(RecordError, match=r"store\.max_actions"):
        log_decision(store, big)
    assert write_decisions(store, [decision(2)]).written == 1


NUL = "a\x00b"

# Rows that SQLite stored and PostgreSQL refused with a raw DataError (or that failed on SQLite with a
# ProgrammingError and no row number): (changes, field, words of the message).
UNSTORABLE = [
    ({"text": NUL}, "text", "NUL character"),
    ({"metadata": {"note": NUL}}, "metadata", "NUL character"),
    ({"metadata": {NUL: 1}}, "metadata", "NUL character"),
    ({"variant": "v" * 101}, "variant", "at most 100 characters, got 101"),
    ({"experiment": "e" * 201}, "experiment", "at most 200 characters, got 201"),
    ({"policy": "p" * 201}, "policy", "at most 200 characters"),
    ({"idempotency_key": "k" * 201}, "idempotency_key", "at most 200 characters"),
    ({"id": "i" * 65}, "id", "at most 64 characters"),
    ({"text": {"an": "object"}}, "text", "must be a string, got dict"),
    ({"candidates": ["one", 2]}, "candidates", "must be a string, got int"),
    ({"metadata": {"when": {1, 2}}}, "metadata", "must be JSON"),
]


@pytest.mark.parametrize(("changes", "field", "words"), UNSTORABLE)
def test_what_a_store_cannot_hold_is_refused_with_the_row_and_field(
    store: Store, changes: dict, field: str, words: str
) -> None:
    row = {
        "id": "d2",
        "policy": "news",
        "policy_version": "1",
        "kind": "classifier",
        "actions": ["sport", "politics"],
        "action": "sport",
        "action_dist": [0.75, 0.25],
        "pscore": 0.75,
        **changes,
    }
    with pytest.raises(BatchError) as err:
        write_decisions(store, [decision(1), row])
    (e,) = err.value.errors
    assert (e.row, e.field) == (1, field) and words in e.reason
    assert write_decisions(store, [decision(1)]).written == 1


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"comment": NUL}, "comment", "NUL character"),
        ({"rater_id": "r" * 201}, "rater_id", "at most 200 characters"),
        ({"id": "f" * 65}, "id", "at most 64 characters"),
        ({"kind": "correction", "label": ["sport"]}, "label", "must be a string, got list"),
    ],
)
def test_unstorable_feedback_is_refused(store: Store, changes: dict, field: str, words: str) -> None:
    write_decisions(store, [decision(1)])
    with pytest.raises(BatchError) as err:
        write_feedback(store, [{"decision_id": "d1", "kind": "implicit", "value": 1, **changes}])
    (e,) = err.value.errors
    assert e.field == field and words in e.reason
    assert stored_feedback(store) == 0


def test_the_record_limits_are_the_column_lengths() -> None:
    lengths = {}
    for table in (Base.metadata.tables["decisions"], Base.metadata.tables["feedback"]):
        for column in table.columns:
            if isinstance(column.type, String) and column.type.length and column.name in MAX_LENGTH:
                lengths[column.name] = column.type.length
    assert lengths == MAX_LENGTH


def test_times_out_of_range_are_refused_not_overflowing_at_write() -> None:
    from datetime import timedelta, timezone

    with pytest.raises(RecordError, match="client_time: is out of range"):
        rating("d1", client_time=datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=5))))


def test_a_correction_must_name_one_of_the_policy_labels(store: Store) -> None:
    write_decisions(store, [decision(1)])
    bad = Feedback(decision_id="d1", kind="correction", label="sports")
    with pytest.raises(
        BatchError, match=r"label: 'sports' is not one of the policy's labels \(sport, politics\)"
    ):
        write_feedback(store, [bad])
    assert stored_feedback(store) == 0
    assert write_feedback(store, [Feedback(decision_id="d1", kind="correction", label="sport")]).written == 1


def test_client_time_round_trips(store: Store) -> None:
    far = datetime(9999, 1, 1, tzinfo=UTC)
    write_decisions(store, [decision(1, client_time=far)])
    write_feedback(store, [rating("d1", client_time=far)])
    (f,) = read_feedback(store)
    assert f.client_time == far and f.created_at.year < 9999
