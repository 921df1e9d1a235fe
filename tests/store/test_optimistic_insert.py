"""On PostgreSQL, batches of at least ``_OPTIMISTIC_MIN_ROWS`` rows are first inserted under a
savepoint without looking up what is stored; any skipped row rolls the savepoint back and the careful
path answers (SQLite takes the careful path at once: the same tests hold there).
Every guarantee of the careful path holds on the optimistic one: all or nothing, replays by id (and
key), an id reused with another body refused, unknown decisions refused."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from tests.store.test_trust import decision, rating

from rewardloop.store import BatchError, Store, read_feedback, write_decisions, write_feedback
from rewardloop.store.bulk import _OPTIMISTIC_MIN_ROWS
from rewardloop.store.writing import DEFAULT_PROJECT, _project_of, insert_decisions
from rewardloop.types import Feedback

N = _OPTIMISTIC_MIN_ROWS + 6


def count(store: Store, table: str) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one())


def test_an_all_new_batch_is_written_in_one_go(store: Store) -> None:
    report = write_decisions(store, [decision(i, idempotency_key=f"k{i}") for i in range(N)])
    assert (report.written, report.duplicates, report.conflicts) == (N, 0, [])
    fb = write_feedback(store, [rating(f"d{i}", id=f"f{i}") for i in range(N)])
    assert (fb.written, fb.duplicates, fb.conflicts) == (N, 0, [])
    assert (count(store, "decisions"), count(store, "feedback")) == (N, N)


def test_one_replay_in_a_large_batch_rolls_back_to_the_careful_path(store: Store) -> None:
    write_decisions(store, [decision(0)])
    report = write_decisions(store, [decision(i) for i in range(N)])  # d0 replayed at the front
    assert (report.written, report.duplicates, report.conflicts) == (N - 1, 1, [])
    write_feedback(store, [rating("d5", id="f5")])
    fb = write_feedback(store, [rating(f"d{i}", id=f"f{i}") for i in range(N)])  # f5 replayed
    assert (fb.written, fb.duplicates) == (N - 1, 1)
    assert (count(store, "decisions"), count(store, "feedback")) == (N, N)


def test_an_id_reused_with_another_body_refuses_the_large_batch(store: Store) -> None:
    write_decisions(store, [decision(3)])
    batch = [decision(i) for i in range(N)]
    batch[3] = decision(3, text="another text")
    with pytest.raises(BatchError, match="'d3' was used before for a different decision"):
        write_decisions(store, batch)
    assert count(store, "decisions") == 1  # nothing of the batch, the optimistic insert included
    report = write_decisions(store, batch, skip_invalid=True)
    assert (report.written, len(report.conflicts), report.conflicts[0].row) == (N - 1, 1, 3)


def test_a_reused_idempotency_key_and_a_repeated_id_in_a_large_batch(store: Store) -> None:
    write_decisions(store, [decision(0, idempotency_key="k")])
    batch = [decision(i) for i in range(1, N)]
    batch.append(decision(0, id="d-new", idempotency_key="k"))  # same body as d0 by key: a replay
    batch.append(decision(1))  # d1 twice in the batch: the second is a replay
    report = write_decisions(store, batch)
    assert (report.written, report.duplicates, report.conflicts) == (N - 1, 2, [])
    with pytest.raises(BatchError, match="idempotency_key: 'k' was used before"):
        write_decisions(
            store, [decision(i) for i in range(N, 2 * N)] + [decision(9, id="x", idempotency_key="k")]
        )
    assert count(store, "decisions") == N


def test_feedback_id_reused_with_another_body_refuses_the_large_batch(store: Store) -> None:
    write_decisions(store, [decision(i) for i in range(N)])
    write_feedback(store, [rating("d0", id="f0")])
    batch = [rating(f"d{i}", id=f"f{i}") for i in range(N)]
    batch[0] = rating("d0", value=0.0, id="f0")
    with pytest.raises(BatchError, match="'f0' was used before in this project for different feedback"):
        write_feedback(store, batch)
    assert count(store, "feedback") == 1
    assert [f.value for f in read_feedback(store)] == [1.0]  # the stored row is untouched


def test_feedback_on_an_unknown_decision_refuses_the_large_batch(store: Store) -> None:
    write_decisions(store, [decision(i) for i in range(N)])
    batch = [rating(f"d{i}") for i in range(N)] + [rating("nope")]
    with pytest.raises(BatchError, match="no decision 'nope' in the store"):
        write_feedback(store, batch)
    assert count(store, "feedback") == 0


def test_a_large_batch_takes_each_decisions_project_and_checks_corrections(store: Store) -> None:
    write_decisions(store, [decision(i, "a" if i % 2 else None) for i in range(N)])
    write_feedback(store, [rating(f"d{i}") for i in range(N)])
    with store.engine.connect() as conn:
        projects = dict(conn.execute(text("SELECT decision_id, project FROM feedback")).all())
    assert projects["d1"] == "a" and projects["d2"] == DEFAULT_PROJECT
    fixes = [Feedback(decision_id=f"d{i}", kind="correction", label="politics") for i in range(N)]
    fixes[7] = Feedback(decision_id="d7", kind="correction", label="weather")
    with pytest.raises(BatchError, match="row 7: label: 'weather' is not one of the policy's labels"):
        write_feedback(store, fixes)
    assert count(store, "feedback") == N


@pytest.mark.parametrize("wrote_before", [False, True])
def test_the_savepoint_leaves_the_callers_transaction_to_the_caller(store: Store, wrote_before: bool) -> None:
    """Releasing the savepoint leaves the caller's transaction open: its failure writes nothing."""
    with pytest.raises(RuntimeError, match="after the insert"), store.engine.begin() as conn:
        if wrote_before:
            insert_decisions(conn, [decision(-1)])
        outcomes = insert_decisions(conn, [decision(i) for i in range(N)])
        assert {o.status for o in outcomes} == {"new"}
        raise RuntimeError("after the insert")
    assert count(store, "decisions") == 0


@pytest.mark.parametrize(
    ("meta", "project"),
    [
        (None, DEFAULT_PROJECT),
        ("{}", DEFAULT_PROJECT),
        ('{"user_id": "u1"}', DEFAULT_PROJECT),
        ('{"project": "a", "user_id": "u1"}', "a"),
        ('{"project": null}', DEFAULT_PROJECT),
        ('{"project": ""}', DEFAULT_PROJECT),
        ('{"note": "project"}', DEFAULT_PROJECT),  # the word as a value, not a key
        ('{"note": "\\"project\\""}', DEFAULT_PROJECT),
    ],
)
def test_the_project_is_read_from_stored_metadata(meta: str | None, project: str) -> None:
    assert _project_of(meta) == project
