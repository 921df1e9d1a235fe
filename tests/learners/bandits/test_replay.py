"""Batch replay from the store: logged decisions + compiled rewards → the same router as online learning."""

from __future__ import annotations

import numpy as np
import pytest

from rewardloop.learners.bandits import EpsilonGreedy, LinUCB, RouterInputError
from rewardloop.learners.bandits.replay import logged_rows, replay, replay_weights
from rewardloop.policies.router import ContextFeatures
from rewardloop.store import read_decisions, write_decisions, write_rewards
from rewardloop.types import Reward


def _log(store, n=60, policy="router", seed=0):
    """Serve ``n`` requests with an ε-greedy router, log them and their rewards; returns the online router."""
    rng = np.random.default_rng(seed)
    online = EpsilonGreedy(["a", "b", "c"], dim=2, epsilon=0.3, random_state=seed)
    decisions, rewards = [], []
    for t in range(n):
        x = rng.normal(size=2)
        d = online.act(x)
        r = float(rng.random() < (0.8 if d.arm == "b" else 0.3))
        rec = d.to_record(policy=policy, policy_version="1", features=x, metadata={"category": f"c{t % 2}"})
        decisions.append(rec)
        if t % 10 != 9:  # every tenth decision gets no feedback
            rewards.append(Reward(decision_id=rec.id, spec="ok", spec_version=1, value=r))
            online.learn(x, d.arm, r, category=f"c{t % 2}")
    write_decisions(store, decisions)
    write_rewards(store, rewards)
    return online


def test_replay_from_store_equals_online_learning(store):
    online = _log(store)
    batch = read_decisions(store, policy="router", reward_spec=("ok", 1))
    rows = logged_rows(batch, ContextFeatures("numeric", n_numeric=2))
    assert len(rows) == 54 and rows.skipped_without_reward == 6
    fresh = EpsilonGreedy(["a", "b", "c"], dim=2, epsilon=0.3)
    report = replay(fresh, rows, policy="router")
    assert report.rows == 54 and report.weighted_rows == 0  # its own logs: weight 1
    np.testing.assert_allclose(fresh.A_inv_, online.A_inv_, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(fresh.theta_, online.theta_, rtol=1e-8, atol=1e-10)
    assert fresh.stats_.to_dict()["by_category"].keys() == {"c0", "c1"}
    for a, b in zip(fresh.leaderboard("c1"), online.leaderboard("c1"), strict=True):
        assert (a.arm, a.pulls) == (b.arm, b.pulls) and a.mean == pytest.approx(b.mean)


def test_replay_of_another_policy_is_importance_weighted(store):
    _log(store, n=30, policy="old_router")
    rows = logged_rows(read_decisions(store, reward_spec=("ok", 1)), ContextFeatures("numeric", n_numeric=2))
    w = replay_weights(rows, "auto", policy="new_router", max_weight=10.0)
    np.testing.assert_allclose(w, np.minimum((1 / 3) / rows.pscore, 10.0))
    router = LinUCB(["a", "b", "c"], dim=2)
    report = replay(router, rows, policy="new_router")
    assert report.weighted_rows == np.count_nonzero(w != 1.0) > 0
    expected = LinUCB(["a", "b", "c"], dim=2).fit(rows.X, rows.arms, rows.rewards, sample_weight=w)
    np.testing.assert_allclose(router.theta_, expected.theta_, rtol=1e-10)


def test_importance_weights_hand_computed():
    from rewardloop.learners.bandits.replay import LoggedRows

    rows = LoggedRows(
        X=None,
        arms=["a", "b", "a"],
        rewards=np.zeros(3),
        pscore=np.array([0.5, 0.01, 1 / 3]),
        n_actions=np.array([2.0, 4.0, 3.0]),
        policies=["old", "old", "me"],
        categories=[None] * 3,
    )
    np.testing.assert_allclose(replay_weights(rows, "ipw", max_weight=5), [1.0, 5.0, 1.0])
    np.testing.assert_allclose(replay_weights(rows, "auto", "me", max_weight=50), [1.0, 25.0, 1.0])
    np.testing.assert_allclose(replay_weights(rows, "none"), [1.0, 1.0, 1.0])


def test_unknown_logged_arm_is_refused_or_added(store, snap):
    _log(store, n=20)
    rows = logged_rows(read_decisions(store, reward_spec=("ok", 1)), ContextFeatures("numeric", n_numeric=2))
    router = LinUCB(["a", "b"], dim=2)
    before = snap(router)
    with pytest.raises(RouterInputError, match=r"arm\(s\) \['c'\] the router does not have"):
        replay(router, rows)
    snap.same(before, snap(router))
    report = replay(router, rows, add_unknown_arms=True)
    assert report.added_arms == ["c"] and router.arms_ == ["a", "b", "c"]
    # the router keeps working as one piece after the all-or-nothing copy: scores match its state
    x = np.array([0.3, -0.2])
    xa = np.append(x, 1.0)
    width = np.sqrt(np.einsum("i,kij,j->k", xa, router.A_inv_, xa))
    np.testing.assert_allclose(router.act(x).scores, router.theta_ @ xa + router.alpha * width)
    router.learn(x, "c", 1.0)
    np.testing.assert_allclose(
        router.act(x).scores[:2],
        (router.theta_ @ xa + router.alpha * np.sqrt(np.einsum("i,kij,j->k", xa, router.A_inv_, xa)))[:2],
    )


def test_bad_reward_in_logs_leaves_router_unchanged_even_with_arms_to_add(store, snap):
    _log(store, n=12)
    batch = read_decisions(store, reward_spec=("ok", 1))
    rows = logged_rows(batch, ContextFeatures("numeric", n_numeric=2))
    router = LinUCB(["a"], dim=2, reward_range=(0.0, 0.5))  # rewards of 1 are outside
    before = snap(router)
    with pytest.raises(RouterInputError, match="outside the declared reward range"):
        replay(router, rows, add_unknown_arms=True)
    snap.same(before, snap(router))


def test_missing_features_name_the_decision(store):
    _log(store, n=5)
    batch = read_decisions(store, reward_spec=("ok", 1))
    with pytest.raises(RouterInputError, match=r"features\[0\].*expected 3 values, got 2 \(decision "):
        logged_rows(batch, ContextFeatures("numeric", n_numeric=3))
