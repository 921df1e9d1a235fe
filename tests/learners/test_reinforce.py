"""REINFORCE: the loss on a hand-computed 3-row case, the baseline, clipping, and that it learns."""

from __future__ import annotations

import math

import pytest
import torch

from rewardloop.learners._math import ema_update, entropy, importance_weights
from rewardloop.learners.reinforce import Reinforce, ReinforceConfig, reinforce_loss

from .learner_tasks import accuracy, fresh_policy, linear_task, uniform_bandit_data

torch.set_num_threads(1)
LN3 = math.log(3.0)

# Three rows, two labels. Probabilities (.5, .5), (.75, .25), (.25, .75); actions 0, 0, 1, so
# log π(a|x) = ln .5, ln .75, ln .75; rewards 1, 0, 1; logged propensities .5, .5, .25, so the
# importance weights π/μ are 1, 1.5, 3; with b = .5 the advantages are .5, −.5, .5.
LOGITS = torch.tensor([[0.0, 0.0], [LN3, 0.0], [0.0, LN3]])
ACTIONS = torch.tensor([0, 0, 1])
REWARD = torch.tensor([1.0, 0.0, 1.0])
PSCORE = torch.tensor([0.5, 0.5, 0.25])


def test_loss_with_baseline_and_weights_on_three_rows() -> None:
    loss, metrics = reinforce_loss(LOGITS, ACTIONS, REWARD, PSCORE, baseline=0.5, entropy_coef=0.0)
    # −mean(w · A · log π) = −(1·.5·ln .5 + 1.5·(−.5)·ln .75 + 3·.5·ln .75) / 3
    expected = -(0.5 * math.log(0.5) - 0.75 * math.log(0.75) + 1.5 * math.log(0.75)) / 3
    assert loss.item() == pytest.approx(expected, abs=1e-6)
    assert metrics["mean_weight"] == pytest.approx((1 + 1.5 + 3) / 3)


def test_weights_are_clipped_and_can_be_turned_off() -> None:
    clipped, m = reinforce_loss(LOGITS, ACTIONS, REWARD, PSCORE, 0.5, 0.0, max_importance_weight=2.0)
    expected = -(0.5 * math.log(0.5) - 0.75 * math.log(0.75) + 1.0 * math.log(0.75)) / 3  # w3 = 2
    assert clipped.item() == pytest.approx(expected, abs=1e-6)
    assert m["mean_weight"] == pytest.approx((1 + 1.5 + 2) / 3)
    plain, _ = reinforce_loss(LOGITS, ACTIONS, REWARD, PSCORE, 0.5, 0.0, importance_weighting=False)
    expected = -(0.5 * math.log(0.5) - 0.5 * math.log(0.75) + 0.5 * math.log(0.75)) / 3  # w = 1
    assert plain.item() == pytest.approx(expected, abs=1e-6)


def test_entropy_bonus_is_subtracted() -> None:
    base, _ = reinforce_loss(LOGITS, ACTIONS, REWARD, PSCORE, 0.5, 0.0)
    with_bonus, m = reinforce_loss(LOGITS, ACTIONS, REWARD, PSCORE, 0.5, 0.1)
    h_skewed = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    mean_h = (math.log(2) + 2 * h_skewed) / 3
    assert m["entropy"] == pytest.approx(mean_h, abs=1e-6)
    assert with_bonus.item() == pytest.approx(base.item() - 0.1 * mean_h, abs=1e-6)


def test_gradient_raises_the_logged_action_when_reward_beats_the_baseline() -> None:
    logits = torch.zeros(1, 2, requires_grad=True)
    loss, _ = reinforce_loss(logits, torch.tensor([1]), torch.tensor([1.0]), torch.tensor([0.5]), 0.25, 0.0)
    loss.backward()
    # d(−A·log softmax_1)/d logits = −A · (onehot − π) = −.75 · (−.5, .5)
    assert logits.grad is not None
    assert logits.grad[0].tolist() == pytest.approx([0.375, -0.375])


def test_math_helpers() -> None:
    assert ema_update(1.0, 0.0, 0.9) == pytest.approx(0.9)
    assert ema_update(0.2, 1.0, 0.0) == 1.0
    assert entropy(torch.zeros(1, 4)).item() == pytest.approx(math.log(4))
    w = importance_weights(torch.log(torch.tensor([0.9, 0.1])), torch.tensor([0.05, 0.2]), 10.0)
    assert w.tolist() == pytest.approx([10.0, 0.5])


def test_baseline_tracks_the_reward() -> None:
    data, _ = uniform_bandit_data(256)
    learner = Reinforce(ReinforceConfig(epochs=1, baseline_decay=0.5, importance_weighting=False))
    learner.fit(data, fresh_policy())
    # with w = 1 the baseline is an EMA of batch means, so it stays near the logged mean reward
    assert abs(learner.baseline_ - data.reward.mean()) < 0.15
    assert [h["train/baseline"] for h in learner.history_][-1] == learner.baseline_


def test_it_learns_from_bandit_feedback_only() -> None:
    data, _ = uniform_bandit_data(512)
    X_test, y_test = linear_task(1000, seed=99)
    policy = fresh_policy()
    start = accuracy(policy, X_test, y_test)
    fitted = Reinforce(ReinforceConfig(epochs=20, batch_size=32)).fit(data, policy)
    end = accuracy(fitted, X_test, y_test)
    assert start < 0.4 and end > 0.65, (start, end)


def test_importance_weights_recover_the_on_policy_gradient() -> None:
    # One context; π = (.5, .5); the logging policy μ = (.9, .1) drew action 0 nine times in ten
    # (the rows are its exact expectation). r(0) = 0, r(1) = 1, b = 0. The on-policy gradient of
    # the loss −E_π[r · log π(a)] with respect to the logits is −π_1 · (e_1 − π) = (.25, −.25);
    # weighting by π/μ (w = 5 for action 1) recovers it, and unweighted logs give μ's (.05, −.05).
    actions = torch.tensor([0] * 9 + [1])
    reward = (actions == 1).float()
    pscore = torch.where(actions == 1, 0.1, 0.9)
    grads = []
    for weighting in (True, False):
        z = torch.zeros(2, requires_grad=True)
        loss, _ = reinforce_loss(z.expand(10, 2), actions, reward, pscore, 0.0, 0.0, 10.0, weighting)
        loss.backward()
        assert z.grad is not None
        grads.append(z.grad.tolist())
    assert grads[0] == pytest.approx([0.25, -0.25])
    assert grads[1] == pytest.approx([0.05, -0.05])
