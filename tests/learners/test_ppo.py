"""PPO: the clipped loss on a hand-computed 3-row case, GAE's single-step reduction, metrics, learning;
the ratio against π_old (the policy at the start of each iteration) with truncated weights to μ."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rewardloop.learners._math import gae
from rewardloop.learners.base import BanditData
from rewardloop.learners.ppo import PPO, PPOConfig, ppo_loss

from .learner_tasks import accuracy, fresh_policy, linear_task, uniform_bandit_data

torch.set_num_threads(1)

# Three rows, two labels, logits 0 so π(a|x) = .5 for every row; the old policy's propensities
# π_old(a|x) of 1, .5, 1/3 give ratios π/π_old of .5, 1, 1.5. Advantages −1, +1, +1; ε = .2:
#   row 1: min(.5·−1, .8·−1) = −.8 (clipped: the pessimistic bound)
#   row 2: min(1·1, 1·1) = 1
#   row 3: min(1.5·1, 1.2·1) = 1.2 (clipped)
LOGITS = torch.zeros(3, 2)
ACTIONS = torch.tensor([0, 0, 0])
OLD_LOGP = torch.log(torch.tensor([1.0, 0.5, 1.0 / 3.0]))
ADV = torch.tensor([-1.0, 1.0, 1.0])
RETURNS = torch.tensor([1.0, 0.0, 1.0])


def test_clipped_loss_on_three_rows() -> None:
    values = torch.zeros(3)
    loss, m = ppo_loss(LOGITS, values, ACTIONS, OLD_LOGP, ADV, RETURNS, clip_eps=0.2, vf_coef=0.0)
    assert m["policy_loss"] == pytest.approx(-(-0.8 + 1.0 + 1.2) / 3, abs=1e-6)
    assert loss.item() == pytest.approx(-1.4 / 3, abs=1e-6)
    assert m["clip_fraction"] == pytest.approx(2 / 3)
    kl = ((-0.5 - math.log(0.5)) + 0.0 + (0.5 - math.log(1.5))) / 3
    assert m["approx_kl"] == pytest.approx(kl, abs=1e-6)
    # value loss: mean((0 − R)²) = 2/3, weighted by vf_coef
    with_value, m = ppo_loss(LOGITS, values, ACTIONS, OLD_LOGP, ADV, RETURNS, clip_eps=0.2, vf_coef=0.5)
    assert m["value_loss"] == pytest.approx(2 / 3)
    assert with_value.item() == pytest.approx(-1.4 / 3 + 0.5 * 2 / 3, abs=1e-6)


def test_clipped_rows_get_no_policy_gradient() -> None:
    logits = torch.zeros(3, 2, requires_grad=True)
    loss, _ = ppo_loss(logits, torch.zeros(3), ACTIONS, OLD_LOGP, ADV, RETURNS, clip_eps=0.2, vf_coef=0.0)
    loss.backward()
    assert logits.grad is not None
    assert logits.grad[0].abs().sum() == 0 and logits.grad[2].abs().sum() == 0
    assert logits.grad[1].abs().sum() > 0


def test_wider_clip_changes_the_result() -> None:
    _, m = ppo_loss(LOGITS, torch.zeros(3), ACTIONS, OLD_LOGP, ADV, RETURNS, clip_eps=0.6, vf_coef=0.0)
    assert m["policy_loss"] == pytest.approx(-(-0.5 + 1.0 + 1.5) / 3, abs=1e-6)
    assert m["clip_fraction"] == 0.0


def test_truncated_importance_weights_scale_each_row() -> None:
    # ρ = (.5, 2, 1): the surrogates −.8, 1, 1.2 become −.4, 2, 1.2 → policy loss −(2.8)/3
    rho = torch.tensor([0.5, 2.0, 1.0])
    loss, m = ppo_loss(
        LOGITS, torch.zeros(3), ACTIONS, OLD_LOGP, ADV, RETURNS, clip_eps=0.2, vf_coef=0.0, is_weight=rho
    )
    assert m["policy_loss"] == pytest.approx(-2.8 / 3, abs=1e-6)
    assert m["is_weight"] == pytest.approx(3.5 / 3)
    assert loss.item() == pytest.approx(-2.8 / 3, abs=1e-6)


def _epsilon_greedy_data(n: int = 256, epsilon: float = 0.1) -> tuple[BanditData, np.ndarray]:
    """Decisions logged ε-greedily around the fresh policy's arg-max, as the service logs them."""
    data, _ = uniform_bandit_data(n)
    proba = fresh_policy().predict_proba_embeddings(data.X)  # (n, K)
    k = proba.shape[1]
    rng = np.random.default_rng(4)
    greedy = proba.argmax(axis=1)
    explore = rng.random(n) < epsilon
    action = np.where(explore, rng.integers(0, k, n), greedy)
    pscore = np.where(action == greedy, 1 - epsilon + epsilon / k, epsilon / k)
    logged = BanditData(data.X, action.astype(np.int64), data.reward, pscore, data.labels)
    return logged, proba


def test_first_step_starts_inside_the_clip_range_under_epsilon_greedy_logging() -> None:
    # Regression (issue 14): with the ratio taken against μ, nearly every ε-greedy row starts with
    # π/μ far from 1 (π ≈ 1/4 against μ = .925 or .025) and outside the clip range from the first step.
    data, proba = _epsilon_greedy_data()
    learner = PPO(PPOConfig(epochs=2, batch_size=len(data), max_importance_weight=1.0))
    learner.fit(data, fresh_policy())
    first = learner.history_[0]
    assert first["train/clip_fraction"] == 0.0 and first["train/approx_kl"] == pytest.approx(0.0, abs=1e-7)
    # ρ = min(π_old / μ, 1) with π_old the starting policy, one minibatch holding every row
    rho = np.minimum(proba[np.arange(len(data)), data.action] / data.pscore, 1.0)
    assert first["train/is_weight"] == pytest.approx(rho.mean(), rel=1e-5)
    # each iteration refreshes π_old: the second iteration's first step starts at ratio 1 again
    assert learner.history_[1]["train/approx_kl"] == pytest.approx(0.0, abs=1e-7)


def test_gae_reduces_to_r_minus_v_for_one_step_episodes() -> None:
    r, v = torch.tensor([1.0, 0.0, 1.0]), torch.tensor([0.2, 0.7, 0.5])
    for gamma, lam in [(1.0, 0.95), (0.9, 0.0), (0.0, 1.0)]:
        adv = gae(r, v, torch.full((3,), 9.0), torch.ones(3), gamma, lam)
        assert adv.tolist() == pytest.approx((r - v).tolist())


def test_gae_on_a_two_step_episode() -> None:
    # δ1 = 2 − 1 = 1 (terminal); δ0 = 1 + .9·1 − .5 = 1.4; A0 = 1.4 + .9·.8·1 = 2.12
    adv = gae(
        torch.tensor([1.0, 2.0]),
        torch.tensor([0.5, 1.0]),
        torch.tensor([1.0, 3.0]),
        torch.tensor([0, 1]),
        0.9,
        0.8,
    )
    assert adv.tolist() == pytest.approx([2.12, 1.0])


def test_metrics_and_target_kl_stop() -> None:
    data, _ = uniform_bandit_data(256)
    learner = PPO(PPOConfig(epochs=10, batch_size=64))
    learner.fit(data, fresh_policy())
    assert {"train/approx_kl", "train/clip_fraction", "train/is_weight", "train/value_loss"} <= set(
        learner.history_[0]
    )
    assert learner.history_[0]["train/approx_kl"] < learner.history_[-1]["train/approx_kl"]  # π moves
    # π_old is refreshed each iteration: the KL within one grows with its update passes
    early = PPO(PPOConfig(epochs=10, update_epochs=4, batch_size=64, target_kl=1e-4))
    early.fit(data, fresh_policy())
    assert early.stopped_early_ and len(early.history_) < len(learner.history_)


def test_it_learns_from_bandit_feedback_only() -> None:
    data, _ = uniform_bandit_data(512)
    X_test, y_test = linear_task(1000, seed=99)
    policy = fresh_policy()
    start = accuracy(policy, X_test, y_test)
    fitted = PPO(PPOConfig(epochs=20, batch_size=32)).fit(data, policy)
    end = accuracy(fitted, X_test, y_test)
    assert start < 0.4 and end > 0.7, (start, end)
