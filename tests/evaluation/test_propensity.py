"""Propensity recovery: on a seeded log whose true logging probabilities are known, the fitted
behaviour policy recovers them, IPW on the estimates lands where IPW on the truth does, and weak
overlap is flagged."""

from __future__ import annotations

import numpy as np
import pytest

from rewardloop.evaluation.ope import OPEInputError
from rewardloop.evaluation.ope.propensity import estimate_propensities


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def seeded_log(n: int = 4000, scale: float = 1.0, seed: int = 7) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Contexts (n, 3), actions drawn from softmax(scale · W x) over 3 actions, and the true probabilities."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    W = np.array([[1.0, -0.5, 0.0], [-0.5, 1.0, 0.5], [0.0, 0.0, -1.0]])  # (K, d)
    true = softmax(scale * X @ W.T)  # (n, K)
    action = np.array([rng.choice(3, p=p) for p in true])
    return X, action, true


def test_the_true_propensities_are_recovered() -> None:
    X, action, true = seeded_log()
    est = estimate_propensities(X, action, 3)
    truth = true[np.arange(len(action)), action]
    assert np.mean(np.abs(est.pscore - truth)) < 0.02
    assert np.allclose(est.action_dist.sum(axis=1), 1.0)
    assert est.unlogged_actions == [] and est.ess_uniform > 0.3 * len(action)
    assert not any("little overlap" in w or "never logged" in w for w in est.warnings)


def test_ipw_on_estimated_propensities_matches_ipw_on_the_truth() -> None:
    X, action, true = seeded_log()
    rng = np.random.default_rng(1)
    reward = (action == (X[:, 0] > 0).astype(int)).astype(float) * (rng.random(len(action)) < 0.9)
    target = (X[:, 0] > 0).astype(int)  # a deterministic target policy
    hit = (action == target).astype(float)
    est = estimate_propensities(X, action, 3)
    ipw_true = np.mean(hit * reward / true[np.arange(len(action)), action])
    ipw_est = np.mean(hit * reward / est.pscore)
    assert abs(ipw_est - ipw_true) < 0.03
    assert abs(ipw_est - ipw_true) < abs(np.mean(reward) - ipw_true)  # better than ignoring the logging


def test_weak_overlap_and_unlogged_actions_are_flagged() -> None:
    X, action, _ = seeded_log(scale=8.0)  # a nearly deterministic logger
    est = estimate_propensities(X, action, 4)  # action 3 never logged
    assert est.unlogged_actions == [3]
    assert est.small_share > 0.5 and any("weak overlap" in w for w in est.warnings)
    assert est.ess_uniform < 0.1 * len(action) and any("little overlap" in w for w in est.warnings)
    assert any("never logged" in w for w in est.warnings)
    assert est.min_pscore >= 1e-3  # the floor holds
    assert set(est.diagnostics()) >= {"log_loss", "min_pscore", "small_share", "ess_uniform", "warnings"}


def test_one_logged_action_is_a_point_mass() -> None:
    est = estimate_propensities(np.zeros((5, 2)), np.zeros(5, dtype=int), 2)
    assert est.pscore.tolist() == [1.0] * 5 and est.unlogged_actions == [1]


@pytest.mark.parametrize(
    ("X", "action", "n_actions", "message"),
    [
        (np.zeros((3, 2)), np.array([0, 1]), 2, "X: expected shape"),
        (np.zeros((2, 2)), np.array([0, 2]), 2, "action: must be integers in"),
        (np.zeros((2, 2)), np.array([0.5, 1.0]), 2, "action: must be integers in"),
    ],
)
def test_bad_input_is_named(X: np.ndarray, action: np.ndarray, n_actions: int, message: str) -> None:
    with pytest.raises(OPEInputError, match=message):
        estimate_propensities(X, action, n_actions)
