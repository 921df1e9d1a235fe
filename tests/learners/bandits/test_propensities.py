"""Action distributions: exact for ε-greedy and softmax; Monte-Carlo estimates for Thompson sampling."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm

from rewardloop.learners.bandits import BetaThompson, EpsilonGreedy, LinearThompson, Softmax
from rewardloop.learners.bandits._choice import monte_carlo_dist


def test_epsilon_greedy_distribution_is_exact_and_choices_follow_it():
    router = EpsilonGreedy(["a", "b", "c", "d"], dim=1, epsilon=0.2, priors={"c": (1.0, 9)}, random_state=0)
    d = router.act([0.0])
    np.testing.assert_allclose(d.action_dist, [0.05, 0.05, 0.85, 0.05])
    picks = np.array([router.act([0.0]).index for _ in range(4000)])
    freq = np.bincount(picks, minlength=4) / len(picks)
    np.testing.assert_allclose(freq, [0.05, 0.05, 0.85, 0.05], atol=0.02)


def test_epsilon_greedy_ties_split_the_greedy_share():
    d = EpsilonGreedy(["a", "b"], dim=1, epsilon=0.5, random_state=0).act([1.0])
    np.testing.assert_allclose(d.action_dist, [0.5, 0.5])


def test_softmax_distribution_is_exact():
    router = Softmax(["a", "b"], dim=1, temperature=0.5, l2=1.0, priors={"b": (1.0, 1)}, random_state=1)
    # estimates 0 and 0.5 (= 1·1 / (1 + 1)): π(b) = e^1 / (1 + e^1)
    d = router.act([0.0])
    np.testing.assert_allclose(d.action_dist, [1 / (1 + np.e), np.e / (1 + np.e)])
    assert d.pscore == d.action_dist[d.index]
    picks = np.array([router.act([0.0]).index for _ in range(3000)])
    assert abs(picks.mean() - np.e / (1 + np.e)) < 0.03


def test_linear_thompson_propensity_matches_the_closed_form_for_two_arms():
    # Two arms: P(arm 1 wins) = Φ((μ1 − μ0) / √(σ0² + σ1²)) exactly.
    router = LinearThompson(["a", "b"], dim=1, v=0.5, n_draws=4000, priors={"b": (0.3, 1)}, random_state=0)
    d = router.act([0.0])
    mu = router.predict([0.0])
    var = router.v**2 * np.array([router.A_inv_[0][-1, -1], router.A_inv_[1][-1, -1]])
    exact = norm.cdf((mu[1] - mu[0]) / np.sqrt(var.sum()))
    assert abs(d.action_dist[1] - exact) < 4 * 0.5 / np.sqrt(4001)
    assert d.pscore > 0 and abs(d.action_dist.sum() - 1) < 1e-12


def test_monte_carlo_dist_counts_the_used_draw():
    dist = monte_carlo_dist(np.array([0, 0, 2]), chosen=1, k=3)
    np.testing.assert_allclose(dist, [0.5, 0.25, 0.25])


@pytest.mark.parametrize("cls", [LinearThompson, BetaThompson])
def test_thompson_pscore_is_never_zero(cls):
    kw = {"dim": 1} if cls is LinearThompson else {}
    router = cls(["a", "b"], n_draws=8, priors={"a": (1.0, 500)}, random_state=0, **kw)
    for _ in range(50):
        d = router.act([0.0])
        assert d.pscore >= 1 / 9
        assert abs(d.action_dist.sum() - 1) < 1e-12


def test_decision_converts_to_a_valid_record():
    d = EpsilonGreedy(["a", "b"], dim=2, epsilon=0.3, random_state=0).act([1.0, 2.0])
    rec = d.to_record(policy="router", policy_version="3", features=[1.0, 2.0], metadata={"category": "x"})
    assert rec.kind == "router" and rec.actions == ("a", "b") and rec.pscore == d.pscore


def test_linear_thompson_propensity_of_a_rare_arm_is_unbiased():
    # Issue 13 item 19: the Monte-Carlo propensity counted the draw used, E[p̂ | chosen] = (n·p + 1)/(n + 1):
    # with p = 0.003 and 256 draws, IPW for that arm gave 0.552 against 1.0.
    router = LinearThompson(["a", "b"], dim=1, v=0.3636, priors={"a": (1.0, 1000)}, random_state=0)
    mu = router.predict([0.0])
    var = router.v**2 * np.array([router.A_inv_[0][-1, -1], router.A_inv_[1][-1, -1]])
    p_b = norm.cdf((mu[1] - mu[0]) / np.sqrt(var.sum()))
    assert 0.002 < p_b < 0.004
    n, ipw = 20_000, 0.0
    for _ in range(n):
        d = router.act([0.0])
        assert d.action_dist[1] == pytest.approx(p_b, rel=1e-4)  # the exact propensity, every time
        ipw += (d.index == 1) / d.pscore
    # IPW of "always b" with reward 1 for b: 1 in expectation; sd √((1/p − 1)/n) ≈ 0.13 at p = 0.003
    assert abs(ipw / n - 1.0) < 3 * np.sqrt((1 / p_b - 1) / n)


def test_an_arm_that_can_win_never_gets_an_exact_zero():
    from rewardloop.learners.bandits.lin_thompson import win_probabilities

    p, ok = win_probabilities(np.array([0.0, 1.0, -1.0]), np.array([0.2, 0.2, 0.2]), rtol=1e-6)
    assert ok and 0 < p[2] < 1e-10 and p.sum() == pytest.approx(1.0)
    # three arms against a 2-million-draw Monte-Carlo reference
    mu, sd = np.array([0.0, 0.5, -0.6]), np.array([0.1, 0.1, 0.3])
    p, ok = win_probabilities(mu, sd)
    draws = mu + sd * np.random.default_rng(0).standard_normal((2_000_000, 3))
    freq = np.bincount(draws.argmax(axis=1), minlength=3) / 2_000_000
    np.testing.assert_allclose(p, freq, atol=4e-5)
