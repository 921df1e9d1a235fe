"""DQN abstain gate: the TD loss by hand, the features, the usable rows, and that the gate learns."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rewardloop.learners._common import LearnerDataError
from rewardloop.learners.base import BanditData
from rewardloop.learners.dqn import DQN, DQNConfig, ReplayBuffer, dqn_loss, gate_outcomes
from rewardloop.policies.abstain import ABSTAIN, ACT, AbstainGate, confidence_features
from rewardloop.policies.classifier import ClassifierPolicy

from .learner_tasks import DIM, LABELS, linear_task

torch.set_num_threads(1)


def test_td_loss_by_hand() -> None:
    q = torch.tensor([[1.0, 2.0], [0.5, 0.0]])
    next_q = torch.tensor([[5.0, 6.0], [7.0, 8.0]])
    # targets: row 1 terminal → 1; row 2 → −.3 + .5 · max(7, 8) = 3.7. Q taken: 1, 0.
    # squared errors: 0 and 3.7² = 13.69 → mean 6.845
    loss = dqn_loss(q, torch.tensor([0, 1]), torch.tensor([1.0, -0.3]), next_q, torch.tensor([1.0, 0.0]), 0.5)
    assert loss.item() == pytest.approx(6.845)
    weighted = dqn_loss(
        q,
        torch.tensor([0, 1]),
        torch.tensor([1.0, -0.3]),
        next_q,
        torch.tensor([1.0, 0.0]),
        0.5,
        weight=torch.tensor([3.0, 1.0]),
    )
    assert weighted.item() == pytest.approx(13.69 / 4)


def test_one_step_episodes_make_gamma_and_target_irrelevant() -> None:
    q = torch.tensor([[0.2, 0.0], [0.0, -0.1]])
    args = (q, torch.tensor([0, 1]), torch.tensor([1.0, -0.3]))
    a = dqn_loss(*args, torch.tensor([[9.0, 9.0], [9.0, 9.0]]), torch.ones(2), 0.99)
    b = dqn_loss(*args, torch.zeros(2, 2), torch.ones(2), 0.0)
    assert a.item() == b.item() == pytest.approx((0.8**2 + 0.2**2) / 2)


def test_confidence_features_by_hand() -> None:
    f = confidence_features(np.array([[0.7, 0.2, 0.1], [1 / 3, 1 / 3, 1 / 3]]))
    ent = -(0.7 * math.log(0.7) + 0.2 * math.log(0.2) + 0.1 * math.log(0.1)) / math.log(3)
    assert f[0].tolist() == pytest.approx([0.7, 0.5, ent], abs=1e-6)
    assert f[1].tolist() == pytest.approx([1 / 3, 0.0, 1.0], abs=1e-6)
    with pytest.raises(ValueError, match=r"proba: expected shape \(n, K\)"):
        confidence_features(np.array([0.5, 0.5]))


def test_replay_buffer_is_a_ring() -> None:
    buf = ReplayBuffer(3, 1, np.random.default_rng(0))
    for i in range(5):
        buf.add(
            np.array([[i]], np.float32),
            np.array([0]),
            np.array([i]),
            np.zeros((1, 1), np.float32),
            np.ones(1),
            np.ones(1),
        )
    assert buf.size == 3 and sorted(buf.reward.tolist()) == [2.0, 3.0, 4.0]
    assert buf.sample(4)[0].shape == (4, 1)


def _noisy_classifier(noise: float = 3.0) -> ClassifierPolicy:
    """A linear head close to the task's true one: right about 70% of the time, surer when right."""
    w = np.random.default_rng(12345).normal(size=(DIM, len(LABELS)))
    head = torch.nn.Linear(DIM, len(LABELS))
    with torch.no_grad():
        head.weight.copy_(torch.as_tensor(4 * w.T + noise * np.random.default_rng(1).normal(size=w.T.shape)))
        head.bias.zero_()
    return ClassifierPolicy(LABELS, head=head, in_dim=DIM)


def _greedy_logs(policy: ClassifierPolicy, n: int, seed: int) -> tuple[BanditData, np.ndarray]:
    X, y = linear_task(n, seed)
    action = policy.predict_proba_embeddings(X).argmax(axis=1)
    return BanditData(X, action, (action == y).astype(float), np.ones(n), list(LABELS)), y


def test_usable_rows_are_the_argmax_ones_weighted_by_inverse_pscore() -> None:
    policy = _noisy_classifier()
    data, _ = _greedy_logs(policy, 6, seed=2)
    other = (data.action + 1) % len(LABELS)
    action = data.action.copy()
    action[[1, 4]] = other[[1, 4]]
    pscore = np.array([1.0, 0.5, 0.5, 0.25, 0.5, 0.04])
    logged = BanditData(data.X, action, data.reward, pscore, list(LABELS))
    features, right, weight, rows = gate_outcomes(logged, policy, 0.5, max_weight=10.0)
    assert rows.tolist() == [0, 2, 3, 5]
    assert np.array_equal(features, confidence_features(policy.predict_proba_embeddings(data.X[rows])))
    raw = np.array([1.0, 2.0, 4.0, 10.0])  # 1/pscore, the last clipped from 25 to 10
    assert weight.tolist() == pytest.approx((raw / raw.mean()).tolist())
    assert right.tolist() == (data.reward[rows] >= 0.5).tolist()
    with pytest.raises(LearnerDataError, match="action: no logged decision took the classifier's top label"):
        DQN().fit(BanditData(data.X, other, data.reward, np.ones(6), list(LABELS)), policy)


def test_the_gate_learns_to_abstain_when_unsure() -> None:
    policy = _noisy_classifier()
    data, _ = _greedy_logs(policy, 1024, seed=3)
    # a wrong automatic action costs twice what a right one earns: act only when P(right) > .57
    cfg = DQNConfig(epochs=15, review_cost=0.3, reward_wrong=-2.0)
    gate = DQN(cfg).fit(data, policy)
    X, y = linear_task(2000, seed=4)
    proba = policy.predict_proba_embeddings(X)
    right = proba.argmax(axis=1) == y
    act_reward = np.where(right, cfg.reward_correct, cfg.reward_wrong)
    choice = gate.decide(proba)
    gated = np.where(choice == ACT, act_reward, -cfg.review_cost).mean()
    always_act, always_abstain = act_reward.mean(), -cfg.review_cost
    assert 0.55 < right.mean() < 0.85  # the task is one where gating can pay
    assert gated > max(always_act, always_abstain) + 0.04, (gated, always_act, always_abstain)
    # and comes close to the best confidence threshold chosen in hindsight on the test set
    best = max(
        np.where(proba.max(axis=1) >= t, act_reward, -cfg.review_cost).mean() for t in np.linspace(0, 1, 101)
    )
    assert gated > best - 0.02, (gated, best)
    # it abstains more on the wrong predictions than on the right ones
    assert (choice[~right] == ABSTAIN).mean() > (choice[right] == ABSTAIN).mean() + 0.15


def test_gate_save_load_round_trip(tmp_path) -> None:
    gate = AbstainGate(hidden=8)
    proba = np.array([[0.9, 0.1], [0.55, 0.45]])
    loaded = AbstainGate.load(gate.save(tmp_path / "gate"))
    assert loaded.hidden == 8
    assert np.array_equal(loaded.q_values(proba), gate.q_values(proba))
    with pytest.raises(FileNotFoundError, match="not an abstain gate folder"):
        AbstainGate.load(tmp_path)
