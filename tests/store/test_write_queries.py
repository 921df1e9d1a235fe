"""The write path's shortcuts give the outcomes of the full check: a batch whose new rows all went in
skips the second look at the table; mixed batches (replays, duplicates in the batch, reused keys) take
the full path; references are read with orjson, stdlib json for what orjson refuses."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from tests.store.test_trust import decision, rating

from rewardloop.store import BatchError, Store, read_feedback, write_decisions, write_feedback
from rewardloop.store.writing import _loads
from rewardloop.types import Feedback


def test_a_batch_of_replays_and_new_rows_reports_each(store: Store) -> None:
    write_decisions(store, [decision(1, idempotency_key="k1"), decision(2)])
    # d1 and d2 stored before (replays), d3 and d4 new: the shortcut path (no duplicate ids)
    report = write_decisions(
        store, [decision(1, idempotency_key="k1"), decision(3), decision(2), decision(4)]
    )
    assert (report.written, report.duplicates, report.conflicts) == (2, 2, [])


def test_duplicate_ids_in_one_batch_and_a_reused_key_take_the_full_path(store: Store) -> None:
    write_decisions(store, [decision(1, idempotency_key="k1")])
    # d5 reuses k1 with the same body as d1 (a replay by key); d6 twice in the batch (the second a replay)
    report = write_decisions(
        store, [decision(1, id="d5", idempotency_key="k1"), decision(6), decision(6)], skip_invalid=True
    )
    assert (report.written, report.duplicates, report.conflicts) == (1, 2, [])
    with pytest.raises(BatchError, match="idempotency_key: 'k1' was used before"):
        write_decisions(store, [decision(7), decision(1, id="d8", idempotency_key="k1", text="other")])
    with store.engine.connect() as conn:
        ids = sorted(conn.execute(text("SELECT id FROM decisions")).scalars())
    assert ids == ["d1", "d6"]  # the refused batch wrote nothing, d7 included


def test_feedback_references_read_the_project_and_labels_of_the_stored_decision(store: Store) -> None:
    write_decisions(store, [decision(1, "a"), decision(2)])
    assert write_feedback(store, [rating("d1")], project="a").written == 1
    with pytest.raises(BatchError, match="no decision 'd2' in this project"):
        write_feedback(store, [rating("d2")], project="a")  # d2 is in the default project
    fix = Feedback(decision_id="d2", kind="correction", label="weather")
    with pytest.raises(BatchError, match="'weather' is not one of the policy's labels"):
        write_feedback(store, [fix])
    assert len(read_feedback(store)) == 1


def test_a_generator_answer_is_corrected_with_any_text(store: Store) -> None:
    """A generator's correction is the right answer's text, not one of its logged actions."""
    answer = decision(
        1, kind="generator", actions=("In Spain.",), action="In Spain.", action_dist=(1.0,), pscore=1.0
    )
    write_decisions(store, [answer])
    fix = Feedback(decision_id="d1", kind="correction", label="In France.")
    assert write_feedback(store, [fix]).written == 1
    assert [f.label for f in read_feedback(store)] == ["In France."]


@pytest.mark.parametrize(
    ("stored", "value"),
    [(None, None), ("null", None), ('{"project": "a"}', {"project": "a"}), ('{"x": NaN}', "nan")],
)
def test_stored_json_is_decoded_like_the_json_column(stored, value) -> None:
    got = _loads(stored)
    if value == "nan":
        assert got["x"] != got["x"]  # NaN, written by the stdlib encoder, read back by the stdlib decoder
    else:
        assert got == value
