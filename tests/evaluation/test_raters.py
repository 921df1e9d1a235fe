"""Rater agreement: Cohen's κ, Krippendorff's α, per-rater figures and the suggested authority."""

from __future__ import annotations

import doctest

import numpy as np
import pytest

from rewardloop.evaluation import raters
from rewardloop.evaluation.raters import (
    cohen_kappa,
    krippendorff_alpha,
    overall_alpha,
    pairwise_kappa,
    rate_raters,
)


def test_cohen_kappa_by_hand():
    assert cohen_kappa(["a", "a", "b", "b"], ["a", "b", "b", "b"]) == 0.5
    assert cohen_kappa(["a", "b"], ["b", "a"]) == -1.0
    assert cohen_kappa(["a", "a"], ["a", "a"]) == 1.0
    with pytest.raises(ValueError, match="2 and 1 labels"):
        cohen_kappa(["a", "b"], ["a"])
    with pytest.raises(ValueError, match="no items"):
        cohen_kappa([], [])


def test_krippendorff_alpha_by_hand():
    # items (a,a) (a,b) (b,b) (b,b): o_aa 2, o_ab = o_ba 1, o_bb 4; n_a 3, n_b 5, n 8
    # D_o = 2/8, D_e = 30/56 → α = 1 − 14/30 = 8/15
    units = {1: ["a", "a"], 2: ["a", "b"], 3: ["b", "b"], 4: ["b", "b"], 5: ["a"]}
    assert krippendorff_alpha(units) == pytest.approx(8 / 15)
    assert krippendorff_alpha({1: ["a"]}) is None
    assert krippendorff_alpha({1: ["a", "a"], 2: ["a", "a"]}) == 1.0


def _crowd(seed=0, n_items=300, error_rates=(0.02, 0.05, 0.05, 0.08, 0.2)):
    rng = np.random.default_rng(seed)
    classes = [f"c{i}" for i in range(6)]
    truth = {f"i{j}": classes[rng.integers(6)] for j in range(n_items)}
    rows = []
    for r, err in enumerate(error_rates):
        for item, label in truth.items():
            if rng.random() < 0.6:
                wrong = rng.random() < err
                rows.append(
                    (f"r{r}", item, classes[rng.integers(6)] if wrong and rng.random() < 1 else label)
                )
    return rows, truth


def test_the_unreliable_rater_is_ranked_last():
    rows, truth = _crowd()
    golden = dict(list(truth.items())[:60])
    audit = list(truth)[60:100]
    reports = rate_raters(rows, golden=golden, audit=audit)
    assert [r.rater for r in reports][-1] == "r4"
    bad = reports[-1]
    assert bad.basis == "truth" and bad.suggested_authority < min(r.suggested_authority for r in reports[:-1])
    assert bad.golden_n >= 10 and 0.7 < bad.golden_accuracy < 0.9
    assert bad.audit_n >= 10 and bad.audit_accuracy < min(r.audit_accuracy for r in reports[:-1])
    # without any truth, peers alone still single it out
    by_peers = rate_raters(rows)
    assert by_peers[-1].rater == "r4" and by_peers[-1].basis == "peers"


def test_rate_raters_by_hand():
    rows = [("ann", "x", "a"), ("ann", "y", "b"), ("bob", "x", "a"), ("bob", "y", "a"), ("ann", "y", "a")]
    reports = {r.rater: r for r in rate_raters(rows, golden={"x": "a", "y": "a"}, min_items=2)}
    ann = reports["ann"]  # her later "a" on y replaced the "b"
    assert (ann.n_items, ann.golden_n, ann.golden_accuracy, ann.truth_kappa) == (2, 2, 1.0, 1.0)
    assert ann.suggested_authority == 1.0 and ann.audit_accuracy is None and ann.peer_kappa == 1.0
    lone = rate_raters([("cy", "z", "a")])[0]
    assert (lone.basis, lone.suggested_authority, lone.peer_kappa) == ("none", 1.0, None)


def test_pairwise_and_overall():
    rows = [("a", "1", "x"), ("b", "1", "x"), ("a", "2", "y"), ("b", "2", "x")]
    assert pairwise_kappa(rows) == {("a", "b"): pytest.approx(0.0)}
    assert pairwise_kappa(rows, min_items=3) == {}
    assert overall_alpha(rows) == pytest.approx(krippendorff_alpha({"1": ["x", "x"], "2": ["y", "x"]}))


def test_doctests():
    assert doctest.testmod(raters).failed == 0


def test_rate_stored_raters_takes_truth_from_golden_feedback_and_the_golden_file():
    from datetime import UTC, datetime

    from rewardloop.evaluation.raters import rate_stored_raters
    from rewardloop.store.raters import RaterLabel, RaterLabels

    t = datetime(2026, 1, 1, tzinfo=UTC)
    labels = [RaterLabel(r, d, lab, 1.0, "human", t) for r, d, lab in [
        ("ann", "d1", "x"), ("ann", "d2", "y"), ("bob", "d1", "x"), ("bob", "d2", "x"),
    ]]  # fmt: skip
    data = RaterLabels(labels, golden={"d1": "x"}, texts={"d1": "hello", "d2": "bye"})
    by = {
        r.rater: r
        for r in rate_stored_raters(
            data, golden_texts={"bye": "y"}, in_audit=lambda i: i == "d2", min_items=1
        )
    }
    assert (by["ann"].golden_n, by["ann"].golden_accuracy) == (2, 1.0)
    assert (by["bob"].golden_n, by["bob"].golden_accuracy) == (2, 0.5)
    # on the audit item d2 each is compared with the other: they disagree
    assert (by["ann"].audit_n, by["ann"].audit_accuracy) == (1, 0.0)
    assert [r.rater for r in rate_stored_raters(data, golden_texts={"bye": "y"}, min_items=1)] == [
        "ann",
        "bob",
    ]


def test_overlap_agreement_on_a_hand_computed_case() -> None:
    from rewardloop.evaluation.raters import overlap_agreement

    # four items with two answers (first a, a, b, b; second a, b, b, b) and one with one (left out)
    rows = [
        ("ann", "i1", "a"), ("bob", "i1", "a"), ("ann", "i2", "a"), ("cy", "i2", "b"),
        ("bob", "i3", "b"), ("cy", "i3", "b"), ("ann", "i4", "b"), ("bob", "i4", "b"), ("ann", "i5", "a"),
    ]  # fmt: skip
    o = overlap_agreement(rows)
    # p_o = 3/4, p_e = (2·1 + 2·3)/16 = 1/2 → κ = 1/2; α: o_aa = 2, o_ab = o_ba = 1, o_bb = 4, n = 8,
    # D_o = 2/8, D_e = 2·3·5/(8·7) → α = 1 − (1/4)/(30/56) = 8/15
    assert (o.items, o.agreed) == (4, 3)
    assert o.kappa == pytest.approx(0.5) and o.alpha == pytest.approx(8 / 15)
    # a reviewer's second answer to an item replaces the first
    assert overlap_agreement([*rows, ("cy", "i2", "a")]).agreed == 4
    assert overlap_agreement([("ann", "i1", "a")]) == type(o)(0, 0, None, None)
    # perfect agreement on one label throughout: κ = 1 by convention, α = 1 (no expected disagreement)
    same = overlap_agreement([("a", "i", "x"), ("b", "i", "x"), ("a", "j", "x"), ("b", "j", "x")])
    assert (same.kappa, same.alpha) == (1.0, 1.0)
