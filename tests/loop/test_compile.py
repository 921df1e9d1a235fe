"""Compiling rewards in the store (SQLite and PostgreSQL): provenance, idempotency, windows, increments."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from rewardloop.loop.compile import compile_rewards
from rewardloop.rewards import RewardSpec
from rewardloop.store import read_rewards, write_decisions, write_feedback
from rewardloop.store.reward_compile import read_compile_inputs
from rewardloop.types import Decision, Feedback, TimeWindow

T0 = datetime(2026, 3, 1, tzinfo=UTC)
SPEC = RewardSpec("acc", function="accuracy", version=1)


def _decision(i, policy="intent", action="on"):
    return Decision(
        id=f"d{i}",
        policy=policy,
        policy_version="1",
        kind="classifier",
        actions=("on", "off"),
        action=action,
        action_dist=(0.7, 0.3) if action == "on" else (0.3, 0.7),
        pscore=0.7,
        created_at=T0 + timedelta(hours=i),
    )


def _seed(store):
    write_decisions(store, [_decision(i) for i in range(4)] + [_decision(9, policy="other")])
    write_feedback(
        store,
        [
            Feedback(
                id="f0",
                decision_id="d0",
                kind="correction",
                label="on",
                rater_id="ann",
                created_at=T0 + timedelta(days=1),
            ),
            Feedback(
                id="f1",
                decision_id="d0",
                kind="correction",
                label="off",
                rater_id="bob",
                authority=0.5,
                created_at=T0 + timedelta(days=1, minutes=1),
            ),
            Feedback(
                id="f2",
                decision_id="d1",
                kind="rating",
                value=4,
                scale=(1, 5),
                rater_id="ann",
                created_at=T0 + timedelta(days=1, minutes=2),
            ),
            Feedback(
                id="f3",
                decision_id="d2",
                kind="multilevel",
                scores={"retrieval.p": 1.0, "synthesis": 0.5},
                scale=(0, 1),
                created_at=T0 + timedelta(days=1, minutes=3),
            ),
            Feedback(id="f9", decision_id="d9", kind="implicit", value=1, created_at=T0 + timedelta(days=1)),
        ],
    )


def test_compile_writes_rewards_with_provenance(store):
    _seed(store)
    report = compile_rewards(store, SPEC, policy="intent")
    assert (report.decisions, report.feedback_rows, report.written) == (3, 4, 3)
    rewards = {r.decision_id: r for r in read_rewards(store, "acc", 1)}
    assert set(rewards) == {"d0", "d1", "d2"}  # d3 has no feedback: no reward, not 0; d9 is another policy
    assert rewards["d0"].value == pytest.approx(2 / 3)  # (1·1 + 0.5·0) / 1.5
    assert rewards["d0"].disagreement == pytest.approx((2 / 9) ** 0.5)
    assert rewards["d0"].feedback_ids == ("f0", "f1")
    assert rewards["d1"].value == pytest.approx(0.75)
    assert rewards["d2"].value == pytest.approx(0.75)  # roll-up (1 + 0.5) / 2
    assert rewards["d2"].components == {"correct": pytest.approx(0.75)}


def test_recompiling_is_idempotent(store):
    _seed(store)
    compile_rewards(store, SPEC)
    first = {r.decision_id: (r.value, r.feedback_ids, r.disagreement) for r in read_rewards(store, "acc", 1)}
    report = compile_rewards(store, SPEC)
    again = {r.decision_id: (r.value, r.feedback_ids, r.disagreement) for r in read_rewards(store, "acc", 1)}
    assert first == again
    assert report.written == 4 and len(again) == 4
    # another version lives beside it
    compile_rewards(store, RewardSpec("acc", function="accuracy", version=2, scale="signed"))
    assert read_rewards(store, "acc", 2)[0].value == pytest.approx(2 * first["d0"][0] - 1)
    assert len(read_rewards(store, "acc", 1)) == 4


def test_time_window_on_decisions(store):
    _seed(store)
    report = compile_rewards(store, SPEC, window=TimeWindow(T0 + timedelta(hours=1), T0 + timedelta(hours=3)))
    assert {r.decision_id for r in read_rewards(store, "acc", 1)} == {"d1", "d2"}
    assert report.written == 2


def test_incremental_compiles_only_decisions_with_new_feedback(store):
    _seed(store)
    first = compile_rewards(store, SPEC, incremental=True)  # nothing compiled yet: everything
    assert first.written == 4
    none = compile_rewards(store, SPEC, incremental=True)
    assert none.written == 0
    write_feedback(
        store,
        [
            Feedback(id="f4", decision_id="d3", kind="correction", label="off", created_at=datetime.now(UTC)),
            Feedback(id="f5", decision_id="d1", kind="correction", label="on", created_at=datetime.now(UTC)),
        ],
    )
    more = compile_rewards(store, SPEC, incremental=True)
    assert (more.decisions, more.written) == (2, 2)
    rewards = {r.decision_id: r for r in read_rewards(store, "acc", 1)}
    assert rewards["d3"].value == 0.0
    assert rewards["d1"].feedback_ids == ("f2", "f5")  # all of d1's rows, not only the new one
    assert rewards["d1"].value == pytest.approx(0.875)


def test_skip_reasons_are_reported_and_nothing_is_written_for_them(store):
    _seed(store)
    report = compile_rewards(store, RewardSpec("fast", function="latency", options={"target_ms": 50}))
    assert report.written == 0
    assert report.skipped == {"no latency_ms logged": 4}
    assert read_rewards(store, "fast", 1) == []
    assert "4 no latency_ms logged" in report.summary()


def test_fast_reader_matches_the_records(store):
    _seed(store)
    decisions, feedback = read_compile_inputs(store, policy="intent")
    assert sorted(d.id for d in decisions) == ["d0", "d1", "d2"]
    f3 = feedback["d2"][0]
    assert f3.scores == {"retrieval.p": 1.0, "synthesis": 0.5}
    assert f3.scale == (0.0, 1.0)
    assert feedback["d1"][0].value == 4.0
