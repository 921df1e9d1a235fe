"""Priors shift early choices as declared; arms can be added and retired while running."""

from __future__ import annotations

import numpy as np
import pytest

from rewardloop.learners.bandits import BetaThompson, EpsilonGreedy, LinearThompson, LinUCB, Softmax

ARMS = ["naive", "agentic", "hybrid"]
LINEAR = [
    (LinUCB, {"alpha": 0.5}),
    (LinearThompson, {"v": 0.1}),
    (EpsilonGreedy, {"epsilon": 0.1}),
    (Softmax, {"temperature": 0.05}),
]


@pytest.mark.parametrize(("cls", "kw"), LINEAR)
def test_prior_mean_decides_early_choices(cls, kw):
    priors = {"naive": (0.1, 20), "agentic": (0.9, 20), "hybrid": (0.5, 20)}
    router = cls(ARMS, dim=3, priors=priors, random_state=0, **kw)
    rng = np.random.default_rng(0)
    picks = [router.act(rng.normal(size=3)).arm for _ in range(50)]
    # the declared best prior wins the large majority of the first decisions
    assert picks.count("agentic") >= 40
    # and the estimate is the prior mean shrunk by the ridge: s·m / (λ + s)
    np.testing.assert_allclose(router.predict(np.zeros(3)), [20 * 0.1 / 21, 20 * 0.9 / 21, 20 * 0.5 / 21])


def test_prior_strength_counts_pseudo_observations():
    # A prior of strength 5 at mean 1 against 5 observed zeros: the estimate sits halfway (ridge aside).
    router = LinUCB(["a"], dim=1, l2=1e-9, priors={"a": (1.0, 5)})
    for _ in range(5):
        router.learn([0.0], "a", 0.0)
    np.testing.assert_allclose(router.predict([0.0]), [0.5], atol=1e-6)


def test_beta_prior_adds_successes_and_failures():
    router = BetaThompson(["a", "b"], priors={"b": (0.75, 8)}, reward_range=(-1.0, 1.0), random_state=0)
    router.act()
    # mean 0.75 on [-1, 1] is 0.875 on [0, 1]: α = 1 + 7, β = 1 + 1
    np.testing.assert_allclose(router.alpha_, [1.0, 8.0])
    np.testing.assert_allclose(router.beta_, [1.0, 2.0])
    router.learn(None, "a", 0.0)  # reward 0 on [-1, 1] is half a success
    np.testing.assert_allclose(router.alpha_, [1.5, 8.0])
    np.testing.assert_allclose(router.posterior_mean(), [0.0, 0.6])


@pytest.mark.parametrize(("cls", "kw"), [*LINEAR, (BetaThompson, {})])
def test_add_and_retire_arms_keep_other_state(cls, kw):
    linear = cls is not BetaThompson
    make = (
        (lambda: cls(["a", "b"], dim=2, random_state=0, **kw))
        if linear
        else (lambda: cls(["a", "b"], random_state=0))
    )
    router = make()
    x = np.array([1.0, -1.0])
    for _ in range(5):
        router.learn(x, "a", 1.0)
        router.learn(x, "b", 0.0)
    before = {k: v.copy() for k, v in router._state_arrays().items()}
    router.add_arm("c", prior=(0.5, 2))
    assert router.arms_ == ["a", "b", "c"]
    for k, v in router._state_arrays().items():
        np.testing.assert_array_equal(v[:2], before[k])
    d = router.act(x)
    assert d.arms == ("a", "b", "c") and d.action_dist.shape == (3,)
    router.learn(x, "c", 1.0)
    router.retire_arm("a")
    assert router.arms_ == ["b", "c"] and router.retired_ == ["a"]
    for k, v in router._state_arrays().items():
        np.testing.assert_array_equal(v[0], before[k][1])  # b kept its state
    assert router.act(x).arm in ("b", "c")
    # the retired arm stays on the leaderboard, flagged
    rows = {r.arm: r for r in router.leaderboard()}
    assert rows["a"].retired and rows["a"].pulls == 5
    # and can come back, from its prior again
    router.add_arm("a")
    assert router.arms_ == ["b", "c", "a"] and router.n_pulls_.tolist() == [5, 1, 0]


def test_arm_added_with_prior_is_tried_first():
    router = LinUCB(["a", "b"], dim=1, alpha=0.1, random_state=0)
    for _ in range(10):
        router.learn([1.0], "a", 0.3)
        router.learn([1.0], "b", 0.2)
    router.add_arm("new", prior=(0.9, 10))
    assert router.act([1.0]).arm == "new"


def test_default_prior_works_with_any_reward_range():
    # strength 0 carries no information, so its mean need not sit inside e.g. a 1–5 star range
    router = BetaThompson(["a", "b"], reward_range=(1.0, 5.0), random_state=0)
    router.learn(None, "a", 5.0)
    np.testing.assert_allclose(router.alpha_, [2.0, 1.0])
    lin = LinUCB(["a"], dim=1, reward_range=(1.0, 5.0))
    lin.learn([1.0], "a", 4.0)
    assert lin.arm_priors_["a"] == (1.0, 0.0)
