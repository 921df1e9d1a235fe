"""The set policy: thresholds, the served per-label probabilities, and category + actions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rewardloop.loop.serving import load_policy, served_kind
from rewardloop.policies.contract import DecisionContext, Exploration
from rewardloop.policies.multilabel import CategoryAndActions, MultiLabelPolicy

from .test_contract import ENCODER, classifier, set_policy


def test_served_probabilities_follow_the_thresholds_and_the_exploration():
    policy = MultiLabelPolicy(["x", "y"], in_dim=3, thresholds=[0.5, 0.8], exploration=Exploration("greedy"))
    proba = np.array([[0.6, 0.7]])  # x above its threshold, y below its 0.8
    assert policy.inclusion_probs(proba).tolist() == [[1.0, 0.0]]
    policy.exploration = Exploration("epsilon", epsilon=0.2)
    assert policy.inclusion_probs(proba)[0] == pytest.approx([0.9, 0.1])  # (1 − ε)·1 + ε/2, ε/2
    policy.exploration = Exploration("sample")
    # s = σ(logit p − logit t): 0.6 at t = 0.5; σ(logit 0.7 − logit 0.8) = (0.7·0.2)/(0.7·0.2 + 0.3·0.8)
    assert policy.inclusion_probs(proba)[0] == pytest.approx([0.6, 0.14 / 0.38])


def test_a_greedy_set_decision_has_propensity_one_and_a_sampled_one_the_product():
    greedy = set_policy(Exploration("greedy")).decide(
        DecisionContext(text="unsure"), np.random.default_rng(0)
    )
    assert greedy.chosen_set == ("x",) and greedy.pscore == 1.0
    d = set_policy(Exploration("epsilon", epsilon=0.5)).decide(
        DecisionContext(text="unsure"), np.random.default_rng(1)
    )
    q = d.label_probs
    assert q == pytest.approx((0.75, 0.25, 0.25))
    assert d.pscore == pytest.approx(
        np.prod([q[j] if lab in d.chosen_set else 1 - q[j] for j, lab in enumerate("xyz")])
    )


def test_thresholds_are_fitted_per_label_on_validation_data():
    policy = set_policy()
    X = ENCODER.encode(["sure", "unsure", "warm-up"])  # p(x) = σ(4), σ(0.4), σ(1)
    Y = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    policy.fit_thresholds(X, Y)
    assert policy.predict_embeddings(X)[:, 0].tolist() == [True, False, False]
    assert policy.thresholds[2] == 0.5  # no positive: kept
    with pytest.raises(ValueError, match=r"Y_val: shape \(3, 2\)"):
        policy.fit_thresholds(X, Y[:, :2])


def test_category_and_actions_is_one_classifier_decision_with_its_set(tmp_path):
    both = CategoryAndActions(classifier(), set_policy())
    d = both.decide(DecisionContext(text="unsure"), np.random.default_rng(3))
    assert d.kind == "classifier" and d.action in ("a", "b", "c")
    assert d.label_space == ("x", "y", "z") and d.set_pscore is not None
    both.save(tmp_path / "p")
    assert served_kind("classifier", tmp_path / "p") == "category_actions"
    loaded = load_policy("category_actions", tmp_path / "p")
    loaded.category._encoder = loaded.actions._encoder = ENCODER
    again = loaded.decide(DecisionContext(text="unsure"), np.random.default_rng(3))
    assert (again.action, again.chosen_set, again.label_probs) == (d.action, d.chosen_set, d.label_probs)


def test_bad_thresholds_and_labels_are_refused():
    with pytest.raises(ValueError, match="thresholds: need one per label"):
        MultiLabelPolicy(["x"], thresholds=[1.0])
    with pytest.raises(ValueError, match="at least one label"):
        MultiLabelPolicy([])
    head = torch.nn.Linear(3, 1)
    with pytest.raises(ValueError, match=r"X: expected embeddings of shape \(n, 3\)"):
        MultiLabelPolicy(["x"], head=head, in_dim=3).predict_proba_embeddings(np.zeros((1, 4), np.float32))
