"""CUPED, Holm, Benjamini–Hochberg and the power planner against hand-computed cases."""

from __future__ import annotations

import doctest
import math

import numpy as np
import pytest

from rewardloop.evaluation import variance
from rewardloop.evaluation.variance import benjamini_hochberg, cuped, holm, plan_two_proportions


def test_holm_and_bh_by_hand():
    p = [0.01, 0.04, 0.03, 0.005]
    # Holm: sorted .005 .01 .03 .04 × 4 3 2 1 = .02 .03 .06 .04 → running max .02 .03 .06 .06
    assert holm(p) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # BH: × 4/1 4/2 4/3 4/4 = .02 .02 .04 .04 → running min from the top: .02 .02 .04 .04
    assert benjamini_hochberg(p) == pytest.approx([0.02, 0.04, 0.04, 0.02])
    assert holm([0.6, 0.7]) == [1.0, 1.0]
    assert benjamini_hochberg([0.5]) == [0.5]


@pytest.mark.parametrize(
    ("pvalues", "message"),
    [([], "non-empty"), ([0.1, 1.5], r"pvalues\[1\]: 1.5"), ([float("nan")], r"pvalues\[0\]")],
)
def test_adjustments_refuse_bad_pvalues(pvalues, message):
    for fn in (holm, benjamini_hochberg):
        with pytest.raises(ValueError, match=message):
            fn(pvalues)


def test_cuped_by_hand():
    # y = x + (0, 0, 1, 1) shift in treatment: the covariate explains everything but the effect
    xt, xc = np.array([1.0, 3.0]), np.array([1.0, 3.0])
    yt, yc = xt + 1, xc
    r = cuped(yt, xt, yc, xc)
    assert r.effect_unadjusted == pytest.approx(1.0) and r.effect == pytest.approx(1.0)
    # pooled: var(x) = 4/3, cov(y, x) = 4/3 → θ = 1; adjusted arms are constant → se 0
    assert r.theta == pytest.approx(1.0)
    assert r.se == pytest.approx(0.0, abs=1e-12)
    assert r.se_unadjusted == pytest.approx(math.sqrt(2 / 2 + 2 / 2))


def test_cuped_cuts_variance_by_one_minus_rho_squared():
    rng = np.random.default_rng(0)
    n, rho = 20_000, 0.7
    x = rng.normal(size=2 * n)
    y = rho * x + math.sqrt(1 - rho**2) * rng.normal(size=2 * n)
    y[:n] += 0.05
    r = cuped(y[:n], x[:n], y[n:], x[n:])
    assert r.rho == pytest.approx(rho, abs=0.02)
    assert r.variance_ratio == pytest.approx(1 - rho**2, abs=0.02)
    assert r.effect == pytest.approx(0.05, abs=0.02)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (([1.0], [1.0], [1.0, 2.0], [1.0, 2.0]), "treatment: needs at least 2"),
        (([1.0, 2.0], [1.0], [1.0, 2.0], [1.0, 2.0]), "treatment: metric and covariate"),
        (([1.0, 2.0], [1.0, 2.0], [1.0, np.inf], [1.0, 2.0]), "control: values must be finite"),
    ],
)
def test_cuped_refuses_bad_input(args, message):
    with pytest.raises(ValueError, match=message):
        cuped(*args)


def test_power_plan_by_hand():
    # base .10, lift .02, α .05, power .8: Fleiss' formula gives 3,841 per arm
    plan = plan_two_proportions(0.10, 0.02, decisions_per_day=1000)
    za, zb = 1.959963984540054, 0.8416212335729143
    num = za * math.sqrt(2 * 0.11 * 0.89) + zb * math.sqrt(0.09 + 0.12 * 0.88)
    assert plan.n_per_variant == math.ceil(num**2 / 0.02**2) == 3841
    assert plan.n_total == 7682 and plan.days == pytest.approx(7.682)
    # a 10% challenger share: the small arm needs 3,841, so 38,410 in all
    assert plan_two_proportions(0.10, 0.02, share=0.1).n_total == 38410
    assert plan_two_proportions(0.10, 0.02).days is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"base_rate": 0.0, "mde": 0.1}, "base_rate"),
        ({"base_rate": 0.5, "mde": 0.0}, "mde"),
        ({"base_rate": 0.95, "mde": 0.1}, "mde"),
        ({"base_rate": 0.5, "mde": 0.1, "power": 1.0}, "power"),
        ({"base_rate": 0.5, "mde": 0.1, "share": 1.0}, "share"),
        ({"base_rate": 0.5, "mde": 0.1, "decisions_per_day": -1}, "decisions_per_day"),
    ],
)
def test_power_plan_refuses_bad_input(kwargs, message):
    with pytest.raises(ValueError, match=message):
        plan_two_proportions(**kwargs)


def test_doctests():
    assert doctest.testmod(variance).attempted > 0 and doctest.testmod(variance).failed == 0
