"""Reward functions: exact values on tiny hand-computed inputs, and bad inputs with their messages."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rewardloop.rewards import functions as F
from rewardloop.rewards.functions import RewardError


def test_accuracy_unit_and_signed():
    assert F.accuracy([1, 0, 1, 0.5]).tolist() == [1.0, 0.0, 1.0, 0.5]
    assert F.accuracy([1, 0, 0.5], signed=True).tolist() == [1.0, -1.0, 0.0]


def test_confidence_weighted_correctness():
    # confident right +0.9, confident wrong -0.8, unsure right +0.1
    assert F.confidence_weighted([1, 0, 1], [0.9, 0.8, 0.1]).tolist() == pytest.approx([0.9, -0.8, 0.1])


def test_calibration_reward():
    # 1 - |p - c|: right at 0.75 → 0.75; wrong at 0.25 → 0.75; right at 1 → 1; wrong at 1 → 0
    assert F.calibration([1, 0, 1, 0], [0.75, 0.25, 1.0, 1.0]).tolist() == [0.75, 0.75, 1.0, 0.0]


def test_latency_aware_formula_and_clip():
    # target 100 ms: 50 → 1; 100 → 1; 150 → 1 - 0.5·0.5 = 0.75; 200 → 0.5; 400 → 1 - 1.5 → clipped 0
    out = F.latency_aware([1, 1, 1, 1, 1, 0], [50, 100, 150, 200, 400, 10], target_ms=100)
    assert out.tolist() == [1.0, 1.0, 0.75, 0.5, 0.0, 0.0]


def test_weighted_sum_email_reward():
    # the email reward: classification 0.4, actions 0.3, calibration 0.2, engagement 0.1
    w = {"classification": 0.4, "actions": 0.3, "calibration": 0.2, "engagement": 0.1}
    parts = {"classification": [1, 0], "actions": [0.5, 1], "calibration": [0.8, 0.5], "engagement": [0, 1]}
    # row 0: 0.4 + 0.15 + 0.16 + 0 = 0.71; row 1: 0 + 0.3 + 0.1 + 0.1 = 0.5
    assert F.weighted_sum(parts, w).tolist() == pytest.approx([0.71, 0.5])


def test_weighted_sum_normalises_weights_and_ignores_unweighted():
    out = F.weighted_sum({"a": [1.0], "b": [0.0], "c": [0.3]}, {"a": 3, "b": 1})
    assert out.tolist() == [0.75]


def test_multilevel_rollup_groups_dotted_keys():
    scores = {"retrieval.precision": [1.0], "retrieval.recall": [0.5], "reasoning": [0.5], "synthesis": [0.0]}
    # retrieval = 0.75; equal weights: (0.75 + 0.5 + 0) / 3
    assert F.multilevel_rollup(scores).tolist() == pytest.approx([1.25 / 3])
    # weights 2:1:1 → (1.5 + 0.5 + 0) / 4
    assert F.multilevel_rollup(scores, {"retrieval": 2, "reasoning": 1, "synthesis": 1}).tolist() == [0.5]


def test_f1_macro_and_weighted():
    y_true = ["a", "a", "a", "b"]
    y_pred = ["a", "a", "b", "b"]
    # a: tp 2 fp 0 fn 1 → 0.8; b: tp 1 fp 1 fn 0 → 2/3
    assert F.f1_macro(y_true, y_pred) == pytest.approx((0.8 + 2 / 3) / 2)
    assert F.f1_weighted(y_true, y_pred) == pytest.approx((3 * 0.8 + 1 * 2 / 3) / 4)
    assert F.f1_macro(["x"], ["x"]) == 1.0


def test_normalise_and_scale_maps():
    assert F.normalise([1, 3, 5], (1, 5)).tolist() == [0.0, 0.5, 1.0]
    assert F.normalise([-1, 1], (-1, 1)).tolist() == [0.0, 1.0]
    assert F.to_signed([0, 0.25, 1]).tolist() == [-1.0, -0.5, 1.0]
    assert F.to_unit([-1, 0, 1]).tolist() == [0.0, 0.5, 1.0]


def test_weighted_mean_std():
    mean, std = F.weighted_mean_std([1.0, 0.0], [3.0, 1.0])
    assert mean == 0.75
    assert std == pytest.approx(math.sqrt(0.75 * 0.25))
    assert F.weighted_mean_std([0.4], [1.0]) == (0.4, 0.0)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: F.accuracy([]), "correct: empty batch"),
        (lambda: F.accuracy([1.0, np.nan]), "correct: non-finite value nan at index 1"),
        (lambda: F.accuracy([1.5]), "correct: 1.5 at index 0 is outside [0, 1]"),
        (lambda: F.calibration([1, 0], [0.5, 0.5, 0.5]), "confidence: has 3 values, expected 2"),
        (lambda: F.calibration([1], [1.2]), "confidence: 1.2 at index 0 is outside [0, 1]"),
        (lambda: F.latency_aware([1], [10], target_ms=0), "target_ms: must be a positive number"),
        (lambda: F.latency_aware([1], [-5], target_ms=10), "latency_ms: -5.0 at index 0 is outside"),
        (lambda: F.normalise([6], (1, 5)), "value: 6.0 at index 0 is outside [1, 5]"),
        (lambda: F.normalise([1], (5, 1)), "scale: must be (low, high) with low < high"),
        (lambda: F.weighted_sum({"a": [1]}, {}), "weights: a weighted reward needs at least one"),
        (lambda: F.weighted_sum({"a": [1]}, {"a": 1, "b": 1}), "components: missing b"),
        (lambda: F.weighted_sum({"a": [1]}, {"a": -1}), "weights.a: must be a number >= 0"),
        (lambda: F.weighted_sum({"a": [1]}, {"a": 0}), "weights: must not all be 0"),
        (lambda: F.multilevel_rollup({}), "scores: a multi-level roll-up needs at least one"),
        (lambda: F.multilevel_rollup({"a": [2.0]}), "scores.a: 2.0 at index 0 is outside [0, 1]"),
        (lambda: F.multilevel_rollup({"a": [1.0]}, {"b": 1}), "weights: no scores for level(s) b"),
        (lambda: F.f1_macro([], []), "y_true: must be a non-empty"),
        (lambda: F.f1_macro(["a"], ["a", "b"]), "y_pred: has 2 labels for 1 true labels"),
        (lambda: F.weighted_mean_std([1.0], [0.0]), "every rater has authority 0"),
        (lambda: F.accuracy([[1, 0]]), "correct: must be one-dimensional"),
        (lambda: F.accuracy(["x"]), "correct: must be numbers"),
    ],
)
def test_bad_inputs_raise_clear_errors(call, message):
    with pytest.raises(RewardError, match=None) as err:
        call()
    assert message in str(err.value)


def test_f1_macro_is_scikit_learns_over_the_declared_labels():
    # Issue 13 item 20: the two macro-F1s gave 0.833 and 0.556 on this case.
    from sklearn.metrics import f1_score

    y_true, y_pred = ["a", "a", "b", "b"], ["a", "e", "b", "b"]
    # over the declared labels a, b: a: tp 1, fn 1 → 2/3; b: 1 → (2/3 + 1) / 2
    assert F.f1_macro(y_true, y_pred, labels=["a", "b"]) == pytest.approx(5 / 6)
    assert F.f1_macro(y_true, y_pred, labels=["a", "b"]) == pytest.approx(
        f1_score(y_true, y_pred, labels=["a", "b"], average="macro", zero_division=0)
    )
    # without labels, as scikit-learn: every label seen (e's F1 is 0)
    assert F.f1_macro(y_true, y_pred) == pytest.approx((2 / 3 + 1 + 0) / 3)
    assert F.f1_weighted(y_true, y_pred, labels=["a", "b"]) == pytest.approx(
        f1_score(y_true, y_pred, labels=["a", "b"], average="weighted", zero_division=0)
    )
