"""Metrics: exact values on tiny hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rewardloop.evaluation.golden import GoldenError, GoldenItem, GoldenSet
from rewardloop.evaluation.metrics import (
    GoldenReport,
    accuracy,
    brier_score,
    confusion_matrix,
    evaluate_golden,
    evaluate_predictions,
    expected_calibration_error,
    latency_percentiles,
    per_class_metrics,
    reliability_bins,
)

LABELS = ["a", "b", "c"]
# Five items: expected a a b b c. Predictions (argmax) a b b b a.
GOLDEN = GoldenSet(
    [
        GoldenItem("1", "t1", "a", critical=True, priority="high", tags=("x",)),
        GoldenItem("2", "t2", "a", critical=True, priority="high", tags=("x", "y")),
        GoldenItem("3", "t3", "b", priority="low", category="cat1"),
        GoldenItem("4", "t4", "b", priority="low", category="cat1", tags=("y",)),
        GoldenItem("5", "t5", "c", category="cat2"),
    ]
)
PROBA = np.array(
    [
        [0.9, 0.1, 0.0],  # a ✓ conf .9
        [0.3, 0.6, 0.1],  # b ✗ conf .6
        [0.2, 0.8, 0.0],  # b ✓ conf .8
        [0.0, 1.0, 0.0],  # b ✓ conf 1.0
        [0.5, 0.2, 0.3],  # a ✗ conf .5
    ]
)


def test_accuracy_and_confusion_matrix():
    assert accuracy(["a", "b", "c"], ["a", "b", "b"]) == pytest.approx(2 / 3)
    cm = confusion_matrix(["a", "a", "b", "b", "c"], ["a", "b", "b", "b", "a"], LABELS)
    assert cm.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]


def test_per_class_precision_recall_f1():
    m = per_class_metrics(["a", "a", "b", "b", "c"], ["a", "b", "b", "b", "a"], LABELS)
    # a: predicted twice (1 right) → P 1/2; 2 true (1 found) → R 1/2; F1 1/2.
    assert (m["a"].precision, m["a"].recall, m["a"].f1, m["a"].support) == (0.5, 0.5, 0.5, 2)
    # b: predicted 3 (2 right) → P 2/3, R 1, F1 = 2·(2/3)/(5/3) = 0.8.
    assert (
        m["b"].precision == pytest.approx(2 / 3) and m["b"].recall == 1.0 and m["b"].f1 == pytest.approx(0.8)
    )
    # c: never predicted → P 0 (not NaN), R 0.
    assert (m["c"].precision, m["c"].recall, m["c"].f1) == (0.0, 0.0, 0.0)


def test_ece_exact_and_bin_edges():
    # 10 bins; conf .9 (✓), .6 (✗), .8 (✓), 1.0 (✓), .5 (✗) all in different bins:
    # ECE = (0.1 + 0.6 + 0.2 + 0 + 0.5) / 5 = 0.28.
    conf = [0.9, 0.6, 0.8, 1.0, 0.5]
    ok = [1, 0, 1, 1, 0]
    assert expected_calibration_error(conf, ok, n_bins=10) == pytest.approx(0.28, abs=1e-12)
    # One bin: |mean acc − mean conf| = |0.6 − 0.76| = 0.16.
    assert expected_calibration_error(conf, ok, n_bins=1) == pytest.approx(0.16, abs=1e-12)
    # 0.7 lies on an edge: it belongs to (0.6, 0.7], with 0.65, not with 0.75.
    bins = reliability_bins([0.65, 0.7, 0.75], [1, 1, 0], n_bins=10)
    assert [(b.lower, b.count) for b in bins] == [(pytest.approx(0.6), 2), (pytest.approx(0.7), 1)]
    assert expected_calibration_error([1.0, 1.0], [1, 1]) == 0.0
    with pytest.raises(ValueError, match="confidence: values must lie in"):
        expected_calibration_error([1.2], [1])


def test_brier_exact():
    # Both expected label 0. Item terms: (0.9−1)² + 0.1² = 0.02; (0.3−1)² + 0.6² + 0.1² = 0.86.
    assert brier_score(PROBA[:2], [0, 0]) == pytest.approx((0.02 + 0.86) / 2, abs=1e-12)
    assert brier_score([[1.0, 0.0]], [0]) == 0.0
    assert brier_score([[0.0, 1.0]], [0]) == 2.0


def test_latency_percentiles_linear_interpolation():
    lat = latency_percentiles([10, 20, 30, 40, 50])
    assert lat["p50"] == 30 and lat["p95"] == pytest.approx(48) and lat["p99"] == pytest.approx(49.6)
    assert lat["mean"] == 30


def test_golden_report_exact():
    r = evaluate_predictions(GOLDEN, LABELS, PROBA, latency_ms=[10, 20, 30, 40, 50], policy="p")
    assert r.accuracy == pytest.approx(0.6)
    assert r.critical_accuracy == 0.5 and r.n_critical == 2
    assert r.macro_f1 == pytest.approx((0.5 + 0.8 + 0.0) / 3)
    assert r.weighted_f1 == pytest.approx((0.5 * 2 + 0.8 * 2 + 0) / 5)
    assert r.ece == pytest.approx(expected_calibration_error([0.9, 0.6, 0.8, 1.0, 0.5], [1, 0, 1, 1, 0], 15))
    assert r.confusion == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    assert {k: (g.n, g.correct) for k, g in r.by_category.items()} == {
        "a": (2, 1),
        "cat1": (2, 2),
        "cat2": (1, 0),
    }
    assert {k: (g.n, g.correct) for k, g in r.by_priority.items()} == {
        "high": (2, 1),
        "low": (2, 2),
        "none": (1, 0),
    }
    assert {k: (g.n, g.correct) for k, g in r.by_tag.items()} == {"x": (2, 1), "y": (2, 1)}
    assert [(m.id, m.expected, m.predicted, m.confidence) for m in r.misclassified] == [
        ("2", "a", "b", 0.6),
        ("5", "c", "a", 0.5),
    ]
    assert r.latency_ms["p50"] == 30


def test_report_json_round_trip(tmp_path):
    r = evaluate_predictions(GOLDEN, LABELS, PROBA, policy="p")
    again = GoldenReport.from_json(r.to_json(tmp_path / "r.json"))
    assert again == r
    no_crit = evaluate_predictions(GoldenSet([GoldenItem("1", "t", "a")]), LABELS, PROBA[:1])
    assert math.isnan(GoldenReport.from_dict(no_crit.to_dict()).critical_accuracy)
    (tmp_path / "bad.json").write_text('{"policy": "x"}')
    with pytest.raises(ValueError, match="not a golden report"):
        GoldenReport.from_json(tmp_path / "bad.json")


def test_bad_predictions_are_refused():
    with pytest.raises(ValueError, match=r"proba: expected shape \(5, 3\)"):
        evaluate_predictions(GOLDEN, LABELS, PROBA[:4])
    with pytest.raises(ValueError, match="proba: each row must"):
        evaluate_predictions(GOLDEN, LABELS, PROBA * 2)
    with pytest.raises(GoldenError, match="label 'c' is not one of the policy's labels"):
        evaluate_predictions(GOLDEN, ["a", "b"], PROBA[:, :2])


class FakePolicy:
    """The protocol: labels + predict_proba. Looks the answer up by text."""

    labels = LABELS

    def __init__(self):
        self.calls = []

    def predict_proba(self, texts):
        self.calls.append(len(texts))
        return np.array([PROBA[int(t[1]) - 1] for t in texts])


def test_evaluate_golden_calls_the_policy_and_times_it():
    pol = FakePolicy()
    r = evaluate_golden(pol, GOLDEN)
    assert pol.calls == [1, 1, 1, 1, 1]
    assert r.accuracy == pytest.approx(0.6) and r.policy == "FakePolicy"
    assert set(r.latency_ms) == {"p50", "p95", "p99", "mean"}
    pol2 = FakePolicy()
    assert evaluate_golden(pol2, GOLDEN, batch_size=2).accuracy == pytest.approx(0.6)
    assert pol2.calls == [2, 2, 1]


def test_batches_are_of_similar_length_and_results_in_golden_order():
    """Batched, the policy sees the texts sorted by length (stably) and each item gets its own row and
    its batch's latency back in the golden set's order."""
    texts = ["ccc", "a", "bb", "dddd", "e", "ff"]
    golden = GoldenSet([GoldenItem(str(i), t, LABELS[len(t) % 3]) for i, t in enumerate(texts)])

    class ByLength(FakePolicy):
        def predict_proba_with_latency(self, batch):
            self.calls.append(list(batch))
            rows = np.zeros((len(batch), 3))
            rows[np.arange(len(batch)), [len(t) % 3 for t in batch]] = 1.0
            return rows, [5.0] * len(batch)

    pol = ByLength()
    report = evaluate_golden(pol, golden, batch_size=4)
    assert pol.calls == [["a", "e", "bb", "ff"], ["ccc", "dddd"]]
    assert report.accuracy == 1.0
    assert [i["predicted"] for i in report.items] == [LABELS[len(t) % 3] for t in texts]
    one_by_one = ByLength()
    evaluate_golden(one_by_one, golden)  # one at a time: the file's order
    assert one_by_one.calls == [[t] for t in texts]


def test_policy_reported_latency_is_used():
    class WithLatency(FakePolicy):
        def predict_proba_with_latency(self, texts):
            return self.predict_proba(texts), [7.0] * len(texts)

    r = evaluate_golden(WithLatency(), GOLDEN, batch_size=5)
    assert r.latency_ms["p99"] == 7.0


def test_prf_and_confusion_agree_with_scikit_learn():
    from sklearn.metrics import confusion_matrix as sk_cm
    from sklearn.metrics import precision_recall_fscore_support

    rng = np.random.default_rng(0)
    labels = ["a", "b", "c", "d"]
    y_true = list(rng.choice(labels[:3], 200))  # "d" never expected
    y_pred = list(rng.choice(labels, 200, p=[0.4, 0.3, 0.3, 0.0]))  # "d" never predicted
    ours = per_class_metrics(y_true, y_pred, labels)
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    for i, lab in enumerate(labels):
        assert (ours[lab].precision, ours[lab].recall, ours[lab].f1, ours[lab].support) == pytest.approx(
            (p[i], r[i], f[i], s[i]), abs=1e-12
        )
    assert confusion_matrix(y_true, y_pred, labels).tolist() == sk_cm(y_true, y_pred, labels=labels).tolist()


def test_golden_macro_f1_is_scikit_learns_over_the_policy_labels():
    # Issue 13 item 20: one macro-F1 (rewards.functions.f1_macro) over the declared labels, a label
    # without golden items included with F1 0 as scikit-learn does.
    from sklearn.metrics import f1_score

    y_true, y_pred, labels = ["a", "a", "b", "b"], ["a", "c", "b", "b"], ["a", "b", "c"]
    per = per_class_metrics(y_true, y_pred, labels)
    assert [per[k].f1 for k in labels] == pytest.approx([2 / 3, 1.0, 0.0])
    golden = GoldenSet([GoldenItem(str(i), f"t{i}", y) for i, y in enumerate(y_true)])
    proba = np.array([[1.0 if lab == p else 0.0 for lab in labels] for p in y_pred])
    report = evaluate_predictions(golden, labels, proba)
    assert report.macro_f1 == pytest.approx(
        f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)
    )
