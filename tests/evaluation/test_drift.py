"""Input drift: PSI, its permutation test, MMD on embeddings, the feedback-rate test."""

from __future__ import annotations

import doctest
import math

import numpy as np
import pytest

from rewardloop.evaluation import drift
from rewardloop.evaluation.drift import (
    binned_psi,
    confidence_psi,
    label_psi,
    mmd_test,
    permutation_pvalue,
    population_stability_index,
    rate_test,
)


def test_psi_by_hand():
    # p = (.5, .5), q = (.25, .75): -.25 ln .5 + .25 ln 1.5
    assert population_stability_index([50, 50], [25, 75]) == pytest.approx(
        0.25 * math.log(2) + 0.25 * math.log(1.5)
    )
    assert population_stability_index([3, 7], [30, 70]) == 0.0
    # an empty bin is floored at eps: (0 - .5) ln(1e-4 / .5) + (1 - .5) ln(1 / .5)
    want = -0.5 * math.log(1e-4 / 0.5) + 0.5 * math.log(2)
    assert population_stability_index([1, 1], [0, 4]) == pytest.approx(want, rel=1e-3)


@pytest.mark.parametrize(
    ("expected", "actual", "message"),
    [
        ([], [1], "expected: expected a non-empty"),
        ([1, -1], [1, 1], "expected: counts must be finite"),
        ([0, 0], [1, 1], "expected: all counts are 0"),
        ([1, 1], [1, 1, 1], "different numbers of bins"),
    ],
)
def test_psi_refuses_bad_counts(expected, actual, message):
    with pytest.raises(ValueError, match=message):
        population_stability_index(expected, actual)


def test_permutation_pvalue_is_exact_on_a_tiny_case():
    # 2 vs 2 values; 3 permutations seeded; the observed split is the most extreme: p = (1 + hits) / 4
    stat = lambda x, y: abs(float(np.mean(x) - np.mean(y)))  # noqa: E731
    obs, p = permutation_pvalue(stat, np.array([0.0, 0.0]), np.array([1.0, 1.0]), n_permutations=3, seed=0)
    assert obs == 1.0
    assert 0.25 <= p <= 1.0 and (p * 4) == round(p * 4)
    with pytest.raises(ValueError, match="n_permutations"):
        permutation_pvalue(stat, np.zeros(2), np.ones(2), n_permutations=0)


def test_label_psi_flags_a_new_mix_and_not_the_same_mix():
    rng = np.random.default_rng(0)
    base = list(rng.choice(["a", "b", "c"], 600, p=[0.5, 0.3, 0.2]))
    same = list(rng.choice(["a", "b", "c"], 600, p=[0.5, 0.3, 0.2]))
    shifted = list(rng.choice(["a", "b", "c", "d"], 600, p=[0.35, 0.25, 0.2, 0.2]))
    t_same, t_shift = label_psi(base, same, seed=1), label_psi(base, shifted, seed=1)
    assert t_same.p_value > 0.05 and not t_same.flagged(0.05)
    assert t_shift.statistic > 0.25 and t_shift.p_value < 0.01 and t_shift.flagged(0.05)
    assert (t_shift.n_baseline, t_shift.n_current, t_shift.name) == (600, 600, "label_psi")
    assert label_psi(base, shifted, seed=1) == t_shift  # seeded


def test_confidence_psi_bins_at_the_baseline_deciles():
    base = np.arange(100) / 100
    assert binned_psi(base, base) == 0.0
    # all current values in the top decile: 9 bins at eps vs .1, one at 1 vs .1
    want = 9 * (1e-4 - 0.1) * math.log(1e-4 / 0.1) + 0.9 * math.log(10)
    assert binned_psi(base, np.full(50, 0.995)) == pytest.approx(want)
    t = confidence_psi(base, np.full(50, 0.995), n_permutations=50)
    assert t.p_value == pytest.approx(1 / 51)
    with pytest.raises(ValueError, match="finite"):
        confidence_psi([0.1, np.nan], [0.2])
    with pytest.raises(ValueError, match="current: needs at least 1"):
        confidence_psi([0.1], [])


def test_mmd_detects_a_shift_in_embeddings_only():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(150, 8))
    y_same = rng.normal(size=(150, 8))
    y_shift = rng.normal(size=(150, 8)) + np.r_[0.6, np.zeros(7)]
    same = mmd_test(x, y_same, n_permutations=100, seed=0)
    shift = mmd_test(x, y_shift, n_permutations=100, seed=0)
    assert same.p_value > 0.05
    assert shift.p_value < 0.02 and shift.statistic > same.statistic
    assert mmd_test(x, y_shift, n_permutations=100, seed=0) == shift
    assert mmd_test(x, y_shift, n_permutations=10, max_samples=40).n_current == 40
    with pytest.raises(ValueError, match=r"embeddings: expected \(n, d\)"):
        mmd_test(x, y_same[:, :3])


def test_mmd_by_hand_on_two_points_a_side():
    # X = {0, 0}, Y = {1, 1}, σ = 1: k(0,0) = 1, k(0,1) = e^-½. MMD² = 1 + 1 − 2e^-½
    t = mmd_test([[0.0], [0.0]], [[1.0], [1.0]], bandwidth=1.0, n_permutations=5)
    assert t.statistic == pytest.approx(2 - 2 * math.exp(-0.5))


def test_rate_test_by_hand():
    # 30/100 vs 50/100: pooled .4, se = sqrt(.4 * .6 * .02)
    t = rate_test("feedback_rate", 30, 100, 50, 100)
    z = 0.2 / math.sqrt(0.4 * 0.6 * 0.02)
    assert t.statistic == pytest.approx(0.2)
    assert t.p_value == pytest.approx(math.erfc(z / math.sqrt(2)))
    assert rate_test("r", 0, 10, 0, 10).p_value == 1.0
    with pytest.raises(ValueError, match=r"current: count 11 is not within 0\.\.10"):
        rate_test("r", 1, 10, 11, 10)
    with pytest.raises(ValueError, match="baseline: needs at least 1"):
        rate_test("r", 0, 0, 1, 10)


def test_doctests():
    assert doctest.testmod(drift).failed == 0
