"""Exact values: Sherman–Morrison state equals a direct ridge solve; batch fit equals one-at-a-time."""

from __future__ import annotations

import numpy as np
import pytest

from rewardloop.learners.bandits import EpsilonGreedy, LinearThompson, LinUCB, Softmax


def test_one_dimensional_hand_computed():
    # dim 1 + intercept, λ = 1, prior (0.5, 2) on arm "a": A = [[1, 0], [0, 3]], b = [0, 1].
    r = LinUCB(["a", "b"], dim=1, alpha=0.0, priors={"a": (0.5, 2)})
    np.testing.assert_allclose(r.predict([3.0]), [1 / 3, 0.0])
    # One reward 1 for "a" at x = 2 (augmented [2, 1]): A = [[5, 2], [2, 4]], b = [2, 2].
    r.learn([2.0], "a", 1.0)
    A = np.array([[5.0, 2.0], [2.0, 4.0]])
    np.testing.assert_allclose(r.A_inv_[0], np.linalg.inv(A), atol=1e-15)
    np.testing.assert_allclose(r.b_[0], [2.0, 2.0], atol=1e-14)
    # θ = A⁻¹ b = [4, 6] / 16
    np.testing.assert_allclose(r.theta_[0], [0.25, 0.375], atol=1e-15)
    # arm "b" untouched: still its prior λ I
    np.testing.assert_array_equal(r.A_inv_[1], np.eye(2))


@pytest.mark.parametrize("fit_intercept", [True, False])
def test_sherman_morrison_equals_direct_ridge_solve(fit_intercept):
    rng = np.random.default_rng(0)
    d, n = 5, 300
    X = rng.normal(size=(n, d))
    arms = rng.choice(["x", "y", "z"], size=n)
    rewards = rng.random(n)
    weights = rng.uniform(0.2, 3.0, size=n)
    priors = {"y": (0.7, 4.0)} if fit_intercept else None
    r = LinUCB(["x", "y", "z"], dim=d, l2=0.5, fit_intercept=fit_intercept, priors=priors)
    for x, a, rew, w in zip(X, arms, rewards, weights, strict=True):
        r.learn(x, str(a), float(rew), weight=float(w))
    Xa = np.hstack([X, np.ones((n, 1))]) if fit_intercept else X
    D = Xa.shape[1]
    for k, name in enumerate(["x", "y", "z"]):
        rows = arms == name
        A = 0.5 * np.eye(D) + (Xa[rows] * weights[rows, None]).T @ Xa[rows]
        b = Xa[rows].T @ (weights[rows] * rewards[rows])
        if name == "y" and fit_intercept:
            A[-1, -1] += 4.0
            b[-1] += 4.0 * 0.7
        np.testing.assert_allclose(r.A_inv_[k], np.linalg.inv(A), rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(r.b_[k], b, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(r.theta_[k], np.linalg.solve(A, b), rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("cls", [LinUCB, LinearThompson, EpsilonGreedy, Softmax])
def test_batch_fit_equals_one_at_a_time(cls):
    rng = np.random.default_rng(1)
    d, n = 4, 500
    X = rng.normal(size=(n, d))
    arms = [str(a) for a in rng.choice(["p", "q", "r"], size=n)]
    rewards = rng.random(n)
    w = rng.uniform(0.5, 2.0, size=n)
    online = cls(["p", "q", "r"], dim=d, priors={"q": (0.2, 3.0)})
    for x, a, rew, wi in zip(X, arms, rewards, w, strict=True):
        online.learn(x, a, rew, weight=float(wi))
    batch = cls(["p", "q", "r"], dim=d, priors={"q": (0.2, 3.0)}).fit(X, arms, rewards, sample_weight=w)
    np.testing.assert_allclose(batch.A_inv_, online.A_inv_, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(batch.b_, online.b_, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(batch.theta_, online.theta_, rtol=1e-7, atol=1e-10)
    np.testing.assert_array_equal(batch.n_pulls_, online.n_pulls_)
    assert [(r.arm, r.pulls) for r in batch.leaderboard()] == [(r.arm, r.pulls) for r in online.leaderboard()]
    np.testing.assert_allclose(
        [r.mean for r in batch.leaderboard()], [r.mean for r in online.leaderboard()], rtol=1e-12
    )


def test_partial_fit_continues_and_accepts_arm_indices():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(40, 3))
    idx = rng.integers(0, 2, size=40)
    r = rng.random(40)
    whole = LinUCB(["a", "b"], dim=3).fit(X, idx, r)
    halves = LinUCB(["a", "b"], dim=3).fit(X[:20], idx[:20], r[:20]).partial_fit(X[20:], idx[20:], r[20:])
    np.testing.assert_allclose(halves.A_inv_, whole.A_inv_, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(halves.theta_, whole.theta_, rtol=1e-8, atol=1e-10)


def test_linucb_score_is_mean_plus_alpha_width():
    r = LinUCB(["a", "b"], dim=2, alpha=2.0, l2=4.0, fit_intercept=False)
    d = r.act([1.0, 1.0])
    # A = 4 I, θ = 0: width = √(xᵀx / 4) = √0.5; ties split evenly
    np.testing.assert_allclose(d.scores, [2 * np.sqrt(0.5)] * 2)
    np.testing.assert_allclose(d.action_dist, [0.5, 0.5])
    assert d.pscore == 0.5
