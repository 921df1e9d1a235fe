"""The pure compiler: signals per feedback kind, rater combination, each function, and skipped decisions."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from rewardloop.rewards import RewardSpec, compile_feedback, feedback_signals
from rewardloop.types import Decision, Feedback

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def decision(id="d1", action="a", confidence=0.8, latency_ms=None, kind="classifier"):
    return Decision(
        id=id,
        policy="p",
        policy_version="1",
        kind=kind,
        actions=("a", "b"),
        action=action,
        action_dist=(0.8, 0.2) if action == "a" else (0.2, 0.8),
        pscore=0.8,
        confidence=confidence,
        latency_ms=latency_ms,
        created_at=T0,
    )


def fb(kind, i=0, did="d1", **kw):
    kw.setdefault("created_at", T0 + timedelta(seconds=i))
    kw.setdefault("id", f"f{i}")
    return Feedback(decision_id=did, kind=kind, **kw)


@pytest.mark.parametrize(
    ("feedback", "expected"),
    [
        (dict(kind="correction", label="a"), {"correct": 1.0}),
        (dict(kind="correction", label="b"), {"correct": 0.0}),
        (dict(kind="rating", value=4, scale=(1, 5)), {"correct": 0.75, "rating": 0.75}),
        (dict(kind="rating", value=-1, scale=(-1, 1)), {"correct": 0.0, "rating": 0.0}),  # thumbs down
        (dict(kind="implicit", value=1), {"correct": 1.0, "implicit": 1.0}),
        (dict(kind="preference", preferred="a", rejected="b"), {"correct": 1.0, "preference": 1.0}),
        (dict(kind="preference", preferred="b", rejected="a"), {"correct": 0.0, "preference": 0.0}),
        (dict(kind="preference", preferred="x", rejected="y"), {}),
        (dict(kind="preference", preferred="d1", rejected="d9"), {"correct": 1.0, "preference": 1.0}),
        (
            dict(
                kind="multilevel", scores={"retrieval.p": 1, "retrieval.r": 0, "synthesis": 1}, scale=(0, 1)
            ),
            {"retrieval.p": 1.0, "retrieval.r": 0.0, "synthesis": 1.0, "multilevel": 0.75, "correct": 0.75},
        ),
        (
            dict(kind="multilevel", scores={"a": 2}, value=5, scale=(1, 5)),
            {"a": 0.25, "multilevel": 1.0, "correct": 1.0},
        ),
    ],
)
def test_feedback_signals_table(feedback, expected):
    kind = feedback.pop("kind")
    assert feedback_signals(decision(), fb(kind, **feedback)) == pytest.approx(expected)


def test_authority_weighted_mean_and_disagreement_with_provenance():
    rows = [
        fb("correction", 0, label="a", authority=1.0, rater_id="x"),
        fb("correction", 1, label="b", authority=0.5, rater_id="y"),
        fb("rating", 2, value=5, scale=(1, 5), authority=0.5, rater_id="z"),
    ]
    r = compile_feedback([decision()], {"d1": rows}, RewardSpec("acc", function="accuracy")).rewards[0]
    # mean = (1·1 + 0.5·0 + 0.5·1) / 2 = 0.75; var = (1·0.0625 + 0.5·0.5625 + 0.5·0.0625) / 2 = 0.1875
    assert r.value == pytest.approx(0.75)
    assert r.disagreement == pytest.approx(math.sqrt(0.1875))
    assert r.components == {"correct": pytest.approx(0.75)}
    assert r.feedback_ids == ("f0", "f1", "f2")
    assert (r.spec, r.spec_version) == ("acc", 1)


def test_plain_mean_and_latest():
    rows = [fb("correction", 0, label="a", authority=1.0), fb("correction", 1, label="b", authority=0.25)]
    mean = compile_feedback([decision()], {"d1": rows}, RewardSpec("m", function="accuracy", combine="mean"))
    assert mean.rewards[0].value == 0.5
    latest = compile_feedback(
        [decision()], {"d1": rows}, RewardSpec("l", function="accuracy", combine="latest")
    )
    assert (latest.rewards[0].value, latest.rewards[0].feedback_ids) == (0.0, ("f1",))
    assert latest.rewards[0].disagreement is None and mean.rewards[0].disagreement == 0.5


def test_a_rater_counts_once_their_latest_row():
    rows = [
        fb("correction", 0, label="b", rater_id="x"),
        fb("correction", 5, label="a", rater_id="x"),  # x changed their mind
        fb("correction", 1, label="a", rater_id="y"),
    ]
    r = compile_feedback([decision()], {"d1": rows}, RewardSpec("acc", function="accuracy")).rewards[0]
    assert r.value == 1.0
    assert set(r.feedback_ids) == {"f5", "f1"}


def test_signed_scale():
    rows = [fb("rating", 0, value=4, scale=(1, 5))]
    r = compile_feedback([decision()], {"d1": rows}, RewardSpec("s", function="accuracy", scale="signed"))
    assert r.rewards[0].value == 0.5  # 2·0.75 - 1


def test_calibration_confidence_latency_functions():
    d = decision(confidence=0.9, latency_ms=300)
    rows = {"d1": [fb("correction", 0, label="b")]}  # wrong
    cal = compile_feedback([d], rows, RewardSpec("c", function="calibration")).rewards[0]
    assert cal.value == pytest.approx(0.1)
    assert cal.components == {"correct": 0.0, "confidence": 0.9}
    conf = compile_feedback([d], rows, RewardSpec("c", function="confidence", scale="signed")).rewards[0]
    assert conf.value == pytest.approx(-0.9)
    conf_unit = compile_feedback([d], rows, RewardSpec("c", function="confidence")).rewards[0]
    assert conf_unit.value == pytest.approx(0.05)
    right = {"d1": [fb("correction", 0, label="a")]}
    lat = compile_feedback([d], right, RewardSpec("l", function="latency", options={"target_ms": 200}))
    assert lat.rewards[0].value == pytest.approx(0.75)  # 1 - 0.5·(300-200)/200
    assert lat.rewards[0].components["latency_factor"] == pytest.approx(0.75)


def test_weighted_email_style_spec_with_multilevel_and_implicit_components():
    d = decision(confidence=0.8)
    rows = {
        "d1": [
            fb("correction", 0, label="a", rater_id="ann"),
            fb("multilevel", 1, scores={"actions": 0.5}, scale=(0, 1), rater_id="bob"),
            fb("implicit", 2, value=0, source="implicit"),
        ]
    }
    spec = RewardSpec(
        "email",
        function="weighted",
        weights={"correct": 0.4, "actions": 0.3, "calibration": 0.2, "implicit": 0.1},
    )
    r = compile_feedback([d], rows, spec).rewards[0]
    # correct is combined over ann (1), bob's roll-up (0.5) and the implicit 0: mean 0.5
    # calibration = 1 - |0.8 - 0.5| = 0.7; value = 0.4·0.5 + 0.3·0.5 + 0.2·0.7 + 0.1·0 = 0.49
    assert r.components == pytest.approx(
        {"correct": 0.5, "actions": 0.5, "calibration": 0.7, "implicit": 0.0}
    )
    assert r.value == pytest.approx(0.49)
    assert set(r.feedback_ids) == {"f0", "f1", "f2"}


def test_multilevel_function_with_level_weights():
    rows = {
        "d1": [
            fb(
                "multilevel",
                0,
                scores={"retrieval": 1, "reasoning": 0},
                scale=(0, 1),
                rater_id="a",
                authority=1,
            ),
            fb(
                "multilevel",
                1,
                scores={"retrieval": 0, "reasoning": 0},
                scale=(0, 1),
                rater_id="b",
                authority=1,
            ),
        ]
    }
    spec = RewardSpec("ml", function="multilevel", weights={"retrieval": 3, "reasoning": 1})
    r = compile_feedback([decision()], rows, spec).rewards[0]
    # rater a: 0.75, rater b: 0 → mean 0.375, std 0.375
    assert r.value == pytest.approx(0.375)
    assert r.disagreement == pytest.approx(0.375)


def test_decisions_without_usable_feedback_get_no_reward():
    ds = [decision("d1"), decision("d2"), decision("d3"), decision("d4"), decision("d5")]
    rows = {
        "d1": [fb("correction", 0, label="a")],
        "d3": [fb("preference", 1, did="d3", preferred="x", rejected="y")],
        "d4": [fb("correction", 2, did="d4", label="a", authority=0.0)],
        "d5": [fb("rating", 3, did="d5", value=1, scale=(0, 1))],
    }
    out = compile_feedback(ds, rows, RewardSpec("acc", function="accuracy"))
    assert [r.decision_id for r in out.rewards] == ["d1", "d5"]
    assert out.skipped == {
        "no feedback": 1,
        "feedback says nothing about the chosen action": 1,
        "no correct signal (from feedback with authority > 0)": 1,
    }
    assert out.skipped_ids["no feedback"] == ["d2"]
    lat = compile_feedback(ds, rows, RewardSpec("l", function="latency", options={"target_ms": 10}))
    assert lat.skipped["no latency_ms logged"] == 2
    email = compile_feedback(
        ds, rows, RewardSpec("w", function="weighted", weights={"correct": 1, "clicks": 1})
    )
    assert email.rewards == []
    assert email.skipped["no clicks signal (from feedback with authority > 0)"] == 3  # d1, d4, d5


def test_compile_is_deterministic():
    rows = {"d1": [fb("rating", 0, value=3, scale=(1, 5), rater_id="a"), fb("correction", 1, label="a")]}
    spec = RewardSpec("acc", function="accuracy")
    a = compile_feedback([decision()], rows, spec).rewards[0]
    b = compile_feedback([decision()], {"d1": list(reversed(rows["d1"]))}, spec).rewards[0]
    assert (a.value, a.feedback_ids, a.disagreement) == (b.value, b.feedback_ids, b.disagreement)


def test_rewards_carry_the_given_time():
    t = datetime(2026, 5, 1, tzinfo=UTC)
    rows = {"d1": [fb("correction", 0, label="a")]}
    out = compile_feedback([decision()], rows, RewardSpec("acc", function="accuracy"), created_at=t)
    assert out.rewards[0].created_at == t


def test_disagreement_is_on_the_reward_scale():
    # Issue 13 item 20: on the signed scale [-1, 1] the raters' spread is twice the unit one.
    rows = [fb("correction", 0, label="a", rater_id="x"), fb("correction", 1, label="b", rater_id="y")]
    unit = compile_feedback([decision()], {"d1": rows}, RewardSpec("u", function="accuracy")).rewards[0]
    signed = compile_feedback(
        [decision()], {"d1": rows}, RewardSpec("s", function="accuracy", scale="signed")
    ).rewards[0]
    assert (unit.value, unit.disagreement) == (0.5, 0.5)
    assert (signed.value, signed.disagreement) == (0.0, 1.0)  # values -1 and +1: std 1
