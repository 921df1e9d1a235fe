"""The set learners: data from the store's set feedback, BCE with authority weights and fitted
thresholds, and the per-label bandit that learns from logged sets with importance weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rewardloop.learners.base import DataSpec
from rewardloop.learners.multilabel import (
    SetBanditConfig,
    SetBanditLearner,
    SetData,
    SetSupervisedConfig,
    SetSupervisedLearner,
    crm_set_loss,
    per_label_reward,
    weighted_bce,
)
from rewardloop.policies.contract import Exploration
from rewardloop.policies.multilabel import MultiLabelPolicy, best_threshold
from rewardloop.types import Decision, DecisionBatch, Feedback, set_decision_fields

torch.set_num_threads(1)
LABELS = ["area", "name", "brightness"]
DIM = 8


def set_task(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Label j is in the set when x_j > 0 (three independent labels on 8-dim unit-ish vectors)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, DIM)).astype(np.float32)
    return X, (X[:, :3] > 0).astype(np.float64)


def micro_f1(policy: MultiLabelPolicy, X: np.ndarray, Y: np.ndarray) -> float:
    pred = policy.predict_embeddings(X)
    tp = (pred & (Y > 0.5)).sum()
    return float(2 * tp / (pred.sum() + (Y > 0.5).sum()))


def logged_batch() -> DecisionBatch:
    """Two logged sets: one judged by two raters (authority 1 and 0.5), one with no set feedback."""
    d1 = Decision(id="d1", policy="s", policy_version="1", kind="set", text="turn on the kitchen light",
                  **set_decision_fields(LABELS, ["area"], [0.8, 0.4, 0.1]))  # fmt: skip
    d2 = Decision(id="d2", policy="s", policy_version="1", kind="set", text="dim",
                  **set_decision_fields(LABELS, [], [0.2, 0.2, 0.2]))  # fmt: skip
    fb = [
        Feedback(decision_id="d1", kind="missed_actions", labels=("name",), rater_id="a"),
        Feedback(decision_id="d1", kind="set_correction", labels=("name",), rater_id="b", authority=0.5),
        Feedback(decision_id="d1", kind="rating", value=1, scale=(0, 1), rater_id="c"),
    ]
    return DecisionBatch([d1, d2], {"d1": fb}, {})


def test_set_data_from_batch_weights_raters_by_authority():
    data = SetSupervisedLearner.data_from_batch(logged_batch(), DataSpec(labels=LABELS))
    assert len(data) == 1 and data.X == ["turn on the kitchen light"]
    # rater a holds {area, name} right, rater b {name}: area 1/1.5, name 1.5/1.5, brightness 0
    assert data.Y[0] == pytest.approx([1 / 1.5, 1.0, 0.0])
    assert data.weight[0] == pytest.approx(1.5)
    assert data.logged[0].tolist() == [1.0, 0.0, 0.0]
    assert data.mu[0].tolist() == [0.8, 0.4, 0.1]
    assert data.skipped == {"set without set feedback": 1}


def test_weighted_bce_and_per_label_reward_on_hand_computed_inputs():
    logits = torch.tensor([[0.0, 0.0]])
    y = torch.tensor([[1.0, 0.0]])
    assert float(weighted_bce(logits, y, torch.tensor([[1.0, 3.0]]))) == pytest.approx(np.log(2))
    z = torch.tensor([[1.0, 0.0, 1.0, 0.0]])
    y = torch.tensor([[0.0, 1.0, 1.0, 0.0]])  # unnecessary, missed, right, right
    assert per_label_reward(z, y, 0.5, 0.3)[0].tolist() == pytest.approx([-0.3, -0.5, 0.0, 0.0])


def test_crm_set_loss_importance_weights_by_hand():
    # π(in) = σ(0) = 0.5 for both labels; label 0 logged in with μ = 0.25, label 1 out with μ(in) = 0.6
    logits = torch.zeros(1, 2, requires_grad=True)
    z, mu = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.25, 0.6]])
    r = torch.tensor([[-0.3, 0.0]])
    loss, w = crm_set_loss(logits, z, mu, r, torch.ones(1, 2), max_weight=10.0)
    assert w[0].tolist() == pytest.approx([2.0, 1.25])  # 0.5 / 0.25, 0.5 / 0.4
    # b = r (one row): advantages are 0, so the loss is 0
    assert float(loss.detach()) == pytest.approx(0.0)
    assert crm_set_loss(logits, z, mu, r, torch.ones(1, 2), max_weight=1.5)[1][0].tolist() == [1.5, 1.25]


def test_best_threshold_maximises_f1():
    p = np.array([0.9, 0.6, 0.4, 0.2])
    y = np.array([1.0, 1.0, 1.0, 0.0])
    assert best_threshold(p, y, np.array([0.3, 0.5, 0.7])) == 0.3  # all three positives, F1 = 1
    assert best_threshold(p, np.zeros(4), np.array([0.3])) == 0.5


def test_supervised_learns_the_sets_and_fits_thresholds():
    X, Y = set_task(400, seed=0)
    labels = [LABELS[j] for j in range(3)]
    data = SetData.from_sets(X, [[labels[j] for j in range(3) if row[j]] for row in Y], labels)
    learner = SetSupervisedLearner(SetSupervisedConfig(epochs=30, seed=0))
    policy = learner.fit(data)
    Xt, Yt = set_task(300, seed=1)
    assert micro_f1(policy, Xt, Yt) > 0.9
    assert policy.thresholds.shape == (3,) and not np.all(policy.thresholds == 0.5)
    assert learner.history_[-1]["train/loss"] < learner.history_[0]["train/loss"]


def test_authority_weight_zero_rows_teach_nothing():
    X, Y = set_task(200, seed=2)
    truth = [[LABELS[j] for j in range(3) if row[j]] for row in Y]
    flipped = [[LABELS[j] for j in range(3) if not row[j]] for row in Y]
    data = SetData.from_sets(np.vstack([X, X]), truth + flipped, LABELS, weight=[1.0] * 200 + [0.0] * 200)
    policy = SetSupervisedLearner(SetSupervisedConfig(epochs=30, validation_fraction=0.0)).fit(data)
    assert micro_f1(policy, X, Y) > 0.9


def _logged_sets(policy: MultiLabelPolicy, X: np.ndarray, Y: np.ndarray, seed: int) -> SetData:
    """Sets drawn by ``policy`` with its exploration, and their full per-label feedback."""
    rng = np.random.default_rng(seed)
    q = policy.inclusion_probs(policy.predict_proba_embeddings(X))
    z = (rng.random(q.shape) < q).astype(np.float64)
    ones = np.ones_like(Y)
    return SetData(X, Y, np.ones(len(X)), list(policy.labels), z, q, ones)


def test_the_bandit_improves_a_weak_policy_from_its_logged_sets():
    X, Y = set_task(600, seed=3)
    weak = SetSupervisedLearner(SetSupervisedConfig(epochs=2, lr=1e-3, validation_fraction=0.0)).fit(
        SetData.from_sets(X[:30], [[LABELS[j] for j in range(3) if r[j]] for r in Y[:30]], LABELS)
    )
    weak.exploration = Exploration("epsilon", epsilon=0.3)
    data = _logged_sets(weak, X, Y, seed=4)
    learner = SetBanditLearner(SetBanditConfig(epochs=40, seed=0))
    better = learner.fit(data, policy=weak)
    Xt, Yt = set_task(300, seed=5)
    assert micro_f1(better, Xt, Yt) > micro_f1(weak, Xt, Yt) + 0.1
    assert "train/importance_weight" in learner.history_[-1]
    with pytest.raises(ValueError, match="improves a trained set policy"):
        SetBanditLearner().fit(data)


def test_mismatched_labels_and_empty_data_are_refused():
    X, _ = set_task(10, seed=6)
    data = SetData.from_sets(X, [["area"]] * 10, LABELS)
    with pytest.raises(ValueError, match="are not the policy's"):
        SetSupervisedLearner().fit(data, policy=MultiLabelPolicy(["a", "b", "c"], in_dim=DIM))
    empty = SetSupervisedLearner.data_from_batch(DecisionBatch([]), DataSpec(labels=LABELS))
    with pytest.raises(ValueError, match="no logged sets with set feedback"):
        SetSupervisedLearner().fit(empty)
