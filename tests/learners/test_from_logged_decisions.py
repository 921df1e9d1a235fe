"""End to end without a store: decisions logged by a sampling policy, rewards compiled per decision,
``BanditData.from_batch``, and each RL learner improving the policy from that alone."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rewardloop.learners import LEARNERS
from rewardloop.learners.base import BanditData
from rewardloop.policies.classifier import ClassifierPolicy
from rewardloop.types import DecisionBatch
from rewardloop.types.records import Reward

from .learner_tasks import LABELS, accuracy, fresh_policy, linear_task

torch.set_num_threads(1)


class TableEncoder:
    """Stands in for MiniLM: each text's embedding is looked up in a table."""

    def __init__(self, texts: list[str], X: np.ndarray) -> None:
        self.table = dict(zip(texts, X, strict=True))

    def encode(self, texts: list[str]) -> np.ndarray:
        return np.stack([self.table[t] for t in texts]).astype(np.float32)


@pytest.mark.parametrize("name", ["reinforce", "ppo", "a2c"])
def test_learns_from_logged_decisions_and_compiled_rewards(name: str) -> None:
    X, y = linear_task(600, seed=11)
    texts = [f"text {i}" for i in range(len(y))]
    truth = dict(zip(texts, y, strict=True))
    encoder = TableEncoder(texts, X)
    start = fresh_policy()
    policy = ClassifierPolicy(LABELS, head=start.head, in_dim=start.in_dim, encoder=encoder)  # type: ignore[arg-type]
    decisions = policy.decide_batch(texts, mode="sample", rng=np.random.default_rng(0))
    # every tenth decision has no feedback yet, so no reward: it must be left out
    rewards = {
        d.id: Reward(
            decision_id=d.id, spec="thumbs", spec_version=1, value=float(d.action == LABELS[truth[d.text]])
        )
        for i, d in enumerate(decisions)
        if i % 10
    }
    data = BanditData.from_batch(DecisionBatch(decisions, rewards=rewards), LABELS, encoder.encode)
    assert len(data) == 540
    assert np.allclose(data.pscore, [d.pscore for i, d in enumerate(decisions) if i % 10])
    cls = LEARNERS[name]
    fitted = cls(cls.config_class(epochs=10, batch_size=32)).fit(data, policy)
    X_test, y_test = linear_task(1000, seed=99)
    assert accuracy(fitted, X_test, y_test) > accuracy(policy, X_test, y_test) + 0.25
    assert fitted.encoder is encoder and fitted.predict(texts[:3]) is not None
