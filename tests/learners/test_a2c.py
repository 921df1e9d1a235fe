"""A2C: the loss on a hand-computed 3-row case, the critic, and that it learns."""

from __future__ import annotations

import math

import pytest
import torch

from rewardloop.learners.a2c import A2C, A2CConfig, a2c_loss

from .learner_tasks import accuracy, fresh_policy, linear_task, uniform_bandit_data

torch.set_num_threads(1)


def test_loss_on_three_rows() -> None:
    # π(a|x) = .5 everywhere; pscore .5, .25, 1 → weights 1, 2, .5; V = .5, .5, .25; r = 1, 0, 1
    # A = .5, −.5, .75;  policy loss = −mean(w·A·ln .5) = −(.5 − 1 + .375)·ln .5 / 3
    logits = torch.zeros(3, 2)
    values = torch.tensor([0.5, 0.5, 0.25])
    reward = torch.tensor([1.0, 0.0, 1.0])
    pscore = torch.tensor([0.5, 0.25, 1.0])
    loss, m = a2c_loss(logits, values, torch.tensor([0, 1, 0]), reward, pscore, vf_coef=1.0)
    policy_loss = -(0.5 - 1.0 + 0.375) * math.log(0.5) / 3
    value_loss = (0.25 + 0.25 + 0.5625) / 3
    assert m["policy_loss"] == pytest.approx(policy_loss, abs=1e-6)
    assert m["value_loss"] == pytest.approx(value_loss, abs=1e-6)
    assert loss.item() == pytest.approx(policy_loss + value_loss, abs=1e-6)


def test_critic_gradient_does_not_flow_through_the_advantage() -> None:
    values = torch.tensor([0.5, 0.5, 0.25], requires_grad=True)
    loss, _ = a2c_loss(
        torch.zeros(3, 2),
        values,
        torch.tensor([0, 1, 0]),
        torch.tensor([1.0, 0.0, 1.0]),
        torch.ones(3),
        vf_coef=1.0,
    )
    loss.backward()
    assert values.grad is not None
    # only the squared error: d/dV mean((V − r)²) = 2(V − r)/3
    assert values.grad.tolist() == pytest.approx([2 * -0.5 / 3, 2 * 0.5 / 3, 2 * -0.75 / 3])


def test_critic_learns_the_mean_reward() -> None:
    data, _ = uniform_bandit_data(512)
    learner = A2C(A2CConfig(epochs=10))
    learner.fit(data, fresh_policy())
    with torch.no_grad():
        v = learner.value_head_(torch.as_tensor(data.X)).squeeze(1).numpy()
    assert abs(v.mean() - data.reward.mean()) < 0.05


def test_it_learns_from_bandit_feedback_only() -> None:
    data, _ = uniform_bandit_data(512)
    X_test, y_test = linear_task(1000, seed=99)
    policy = fresh_policy()
    start = accuracy(policy, X_test, y_test)
    fitted = A2C(A2CConfig(epochs=20, batch_size=32)).fit(data, policy)
    end = accuracy(fitted, X_test, y_test)
    assert start < 0.4 and end > 0.6, (start, end)
