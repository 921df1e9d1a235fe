"""It learns: on a seeded synthetic problem with a known best arm per context, regret falls."""

from __future__ import annotations

import numpy as np
import pytest

from rewardloop.learners.bandits import BetaThompson, EpsilonGreedy, LinearThompson, LinUCB, Softmax

K, D, N = 4, 5, 1500


def _problem(seed: int = 0):
    rng = np.random.default_rng(seed)
    theta = rng.normal(size=(K, D))  # true coefficients; the best arm depends on the context
    X = rng.normal(size=(N, D))
    means = 1 / (1 + np.exp(-(X @ theta.T)))  # (N, K) Bernoulli means
    return rng, X, means


@pytest.mark.parametrize(
    ("cls", "kw", "max_ratio"),
    [
        # late/early regret bound: forced exploration (ε, τ) leaves a floor, so those bounds are looser
        (LinUCB, {"alpha": 0.5}, 0.25),
        (LinearThompson, {"v": 0.2, "n_draws": 32}, 0.25),
        (EpsilonGreedy, {"epsilon": 0.05}, 0.4),
        (Softmax, {"temperature": 0.05}, 0.7),
    ],
)
def test_contextual_regret_falls(cls, kw, max_ratio):
    rng, X, means = _problem()
    router = cls([f"arm{k}" for k in range(K)], dim=D, random_state=0, **kw)
    regret = np.empty(N)
    for t in range(N):
        d = router.act(X[t])
        regret[t] = means[t].max() - means[t, d.index]
        router.learn(X[t], d.arm, float(rng.random() < means[t, d.index]))
    uniform = (means.max(axis=1) - means.mean(axis=1)).mean()
    early, late = regret[:100].mean(), regret[-300:].mean()
    assert late < max_ratio * early, (early, late)
    assert late < 0.35 * uniform, (late, uniform)


def test_beta_thompson_finds_the_best_arm():
    rng = np.random.default_rng(0)
    p = np.array([0.2, 0.5, 0.6, 0.35])
    router = BetaThompson([f"arm{k}" for k in range(4)], n_draws=16, random_state=0)
    picks = []
    for _ in range(2000):
        d = router.act()
        picks.append(d.index)
        router.learn(None, d.arm, float(rng.random() < p[d.index]))
    picks_arr = np.array(picks)
    assert (picks_arr[-500:] == 2).mean() > 0.8
    assert (p.max() - p[picks_arr[-500:]]).mean() < 0.5 * (p.max() - p[picks_arr[:200]]).mean()
