"""Issue 13, item 11: voiding feedback — audited, excluded from every reader and from rewards, and the
affected decisions recompiled."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from rewardloop.loop.compile import compile_rewards
from rewardloop.rewards import RewardSpec
from rewardloop.store import (
    Store,
    read_decisions,
    read_feedback,
    read_rewards,
    write_decisions,
    write_feedback,
)
from rewardloop.store.reward_compile import read_compile_inputs
from rewardloop.store.voids import VoidError, void_feedback, voids
from rewardloop.types import Decision, Feedback

SPEC = RewardSpec("acc", function="accuracy", version=1)
T0 = datetime(2026, 3, 1, tzinfo=UTC)


def seed(store: Store) -> None:
    write_decisions(
        store,
        [
            Decision(
                id=f"d{i}",
                policy="news",
                policy_version="1",
                kind="classifier",
                actions=("sport", "politics"),
                action="sport",
                action_dist=(0.7, 0.3),
                pscore=0.7,
                metadata={"project": "acme"},
                created_at=T0 + timedelta(hours=i),
            )
            for i in range(2)
        ],
    )
    write_feedback(
        store,
        [
            Feedback(id="f0", decision_id="d0", kind="correction", label="sport", rater_id="ann"),
            Feedback(id="f1", decision_id="d0", kind="correction", label="politics", rater_id="bob"),
            Feedback(id="f2", decision_id="d1", kind="correction", label="politics", rater_id="ann"),
        ],
    )


def test_a_voided_row_is_audited_and_left_out_of_every_reader(store: Store) -> None:
    seed(store)
    done = void_feedback(store, "f1", reason="bob mislabelled", actor="carol")
    assert (done.project, done.decision_id, done.voided_by, done.reason) == (
        "acme",
        "d0",
        "carol",
        "bob mislabelled",
    )
    assert [f.id for f in read_feedback(store)] == ["f0", "f2"]
    assert [f.id for f in read_feedback(store, include_voided=True)] == ["f0", "f1", "f2"]
    batch = read_decisions(store, include_feedback=True)
    assert [f.id for f in batch.feedback["d0"]] == ["f0"]
    _, inputs = read_compile_inputs(store)
    assert sorted(f.id for rows in inputs.values() for f in rows) == ["f0", "f2"]
    (audit,) = voids(store)
    assert (audit.feedback_id, audit.voided_by, audit.reason) == ("f1", "carol", "bob mislabelled")
    assert audit.voided_at >= done.voided_at - timedelta(seconds=1)


def test_voiding_withdraws_the_rewards_and_the_next_compile_rebuilds_them(store: Store) -> None:
    seed(store)
    compile_rewards(store, SPEC)
    before = {r.decision_id: r for r in read_rewards(store, "acc", 1)}
    assert before["d0"].feedback_ids == ("f0", "f1")
    assert void_feedback(store, "f1", reason="spam", actor="carol").rewards_withdrawn == 1
    assert "d0" not in {r.decision_id for r in read_rewards(store, "acc", 1)}
    report = compile_rewards(store, SPEC, incremental=True)
    assert report.decisions == 1  # only the decision whose feedback was voided
    after = {r.decision_id: r for r in read_rewards(store, "acc", 1)}
    assert after["d0"].feedback_ids == ("f0",) and after["d0"].value == 1.0  # sport was right
    void_feedback(store, "f2", reason="spam", actor="carol")
    compile_rewards(store, SPEC, incremental=True)
    assert "d1" not in {r.decision_id for r in read_rewards(store, "acc", 1)}  # no feedback left


@pytest.mark.parametrize(
    ("feedback_id", "changes", "kind", "words"),
    [
        ("nope", {}, "not_found", "no feedback 'nope'"),
        ("f0", {"project": "other"}, "not_found", "no feedback 'f0' in project 'other'"),
        ("f0", {"reason": "  "}, "invalid", "reason: say why"),
        ("f0", {"actor": ""}, "invalid", "actor: say who"),
    ],
)
def test_bad_voids_are_refused_and_change_nothing(
    store: Store, feedback_id: str, changes: dict, kind: str, words: str
) -> None:
    seed(store)
    args = {"reason": "spam", "actor": "carol", **changes}
    with pytest.raises(VoidError) as err:
        void_feedback(store, feedback_id, **args)
    assert err.value.kind == kind and words in str(err.value)
    assert voids(store) == []


def test_a_row_is_voided_once_and_an_ambiguous_id_needs_its_project(store: Store) -> None:
    seed(store)
    void_feedback(store, "f0", reason="spam", actor="carol")
    with pytest.raises(VoidError, match="voided already by carol"):
        void_feedback(store, "f0", reason="again", actor="dan")
    write_decisions(
        store,
        [
            Decision(
                id="x1",
                policy="b",
                policy_version="1",
                kind="classifier",
                actions=("a",),
                action="a",
                action_dist=(1.0,),
                pscore=1.0,
                metadata={"project": "beta"},
            )
        ],
    )
    write_feedback(store, [Feedback(id="f2", decision_id="x1", kind="implicit", value=1)])
    with pytest.raises(VoidError, match="names feedback of projects acme, beta; pass --project"):
        void_feedback(store, "f2", reason="spam", actor="carol")
    assert void_feedback(store, "f2", reason="spam", actor="carol", project="beta").decision_id == "x1"
