"""Hyperparameters chosen on held-out logged feedback: the split, V̂_SN by hand, the sweep's choice."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rewardloop.learners import CRM, CRMConfig, Reinforce, ReinforceConfig
from rewardloop.learners.base import BanditData
from rewardloop.learners.crm import CorrectedBanditData
from rewardloop.learners.selection import grid_points, select_and_fit, snips_value, split_bandit_data, subset

from .learner_tasks import fresh_policy, uniform_bandit_data

torch.set_num_threads(1)


def _corrected(n: int = 40) -> CorrectedBanditData:
    data, y = uniform_bandit_data(n, seed=4)
    correction = np.where(np.arange(n) % 5 == 0, y, -1).astype(np.int64)
    return CorrectedBanditData(
        data.X, data.action, data.reward, data.pscore, data.labels, correction=correction
    )


def test_split_is_seeded_disjoint_and_keeps_every_field() -> None:
    data = _corrected()
    train, valid = split_bandit_data(data, 0.25, seed=3)
    assert (len(train), len(valid)) == (30, 10)
    assert isinstance(train, CorrectedBanditData) and train.labels == data.labels
    rows = {tuple(r) for r in train.X} | {tuple(r) for r in valid.X}
    assert len(rows) == 40
    again, _ = split_bandit_data(data, 0.25, seed=3)
    assert np.array_equal(again.correction, train.correction)
    assert np.array_equal(subset(data, np.array([0, 5])).correction, data.correction[[0, 5]])
    for bad, message in [(0.0, "must be in"), (1.0, "must be in"), (0.01, "leaves no")]:
        with pytest.raises(ValueError, match=f"^valid_fraction: .*{message}"):
            split_bandit_data(data, bad, seed=0)


class _Fixed:
    """A policy stand-in with a fixed distribution over two labels for every row."""

    def __init__(self, proba: list[float]) -> None:
        self.proba = np.asarray(proba)

    def predict_proba_embeddings(self, X: np.ndarray) -> np.ndarray:
        return np.tile(self.proba, (len(X), 1))


def test_snips_by_hand_with_a_correction_as_full_information() -> None:
    # π = (.8, .2). Bandit rows: a=0 r=1 p=.5 → w=1.6; a=1 r=0 p=.4 → w=.5.
    # The row corrected to 1 enters as π(1) = .2 with weight 1.
    # V̂_SN = (1.6·1 + .5·0 + .2) / (1.6 + .5 + 1) = 1.8 / 3.1
    data = CorrectedBanditData(
        X=np.zeros((3, 2), np.float32),
        action=np.array([0, 1, 0]),
        reward=np.array([1.0, 0.0, 0.0]),
        pscore=np.array([0.5, 0.4, 0.9]),
        labels=["a", "b"],
        correction=np.array([-1, -1, 1]),
    )
    assert snips_value(_Fixed([0.8, 0.2]), data) == pytest.approx(1.8 / 3.1)  # type: ignore[arg-type]
    plain = BanditData(data.X[:2], data.action[:2], data.reward[:2], data.pscore[:2], data.labels)
    assert snips_value(_Fixed([0.8, 0.2]), plain) == pytest.approx(1.6 / 2.1)  # type: ignore[arg-type]


def test_grid_points_in_order_and_errors() -> None:
    assert grid_points({"a": [1, 2], "b": [0]}) == [{"a": 1, "b": 0}, {"a": 2, "b": 0}]
    assert grid_points({}) == [{}]
    with pytest.raises(ValueError, match=r"^grid\.a: no values"):
        grid_points({"a": []})


def test_sweep_picks_the_point_that_generalises_and_refits_on_all() -> None:
    data, _ = uniform_bandit_data(400, seed=6)
    grid = {"lr": [1e-6, 0.05]}  # a step size that cannot move the policy, and one that learns
    learner = select_and_fit(CRM, CRMConfig(epochs=10, batch_size=32), grid, data, policy=fresh_policy())
    chosen = learner.selection_
    assert chosen.params == {"lr": 0.05}
    assert [p for p, _ in chosen.scores] == grid_points(grid)
    assert chosen.scores[1][1] > chosen.scores[0][1] and chosen.score == chosen.scores[1][1]
    assert (chosen.n_train, chosen.n_valid) == (300, 100)
    assert learner.config.lr == 0.05 and learner.history_  # the final fit is on all 400 rows
    assert len(learner.history_) == 10 * -(-400 // 32)
    assert chosen.as_dict()["params"] == {"lr": 0.05}
    with pytest.raises(ValueError, match=r"^grid\.learning_rate: not a field of ReinforceConfig"):
        select_and_fit(Reinforce, ReinforceConfig(), {"learning_rate": [1.0]}, data, policy=fresh_policy())
