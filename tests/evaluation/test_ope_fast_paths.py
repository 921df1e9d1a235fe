"""The fast OPE paths give the same numbers as the plain ones: the blocked validation pass, the flat
gathers, and the bootstrap draws shared by every estimator of a report."""

from __future__ import annotations

import numpy as np
import pytest

from rewardloop.evaluation.ope import (
    DirectMethod,
    DoublyRobust,
    InverseProbabilityWeighting,
    OPEInputError,
    SelfNormalizedInverseProbabilityWeighting,
    SwitchDoublyRobust,
    bootstrap_means,
    estimate_policy_values,
    evaluate_off_policy,
)
from rewardloop.evaluation.ope import inputs as ope_inputs
from rewardloop.evaluation.ope.inputs import check_bandit_feedback

ESTIMATORS = [
    InverseProbabilityWeighting(),
    SelfNormalizedInverseProbabilityWeighting(),
    DirectMethod(),
    DoublyRobust(),
    SwitchDoublyRobust(tau=3.0),
]


def _logs(seed: int, n: int = 257, k: int = 7, len_list: int = 1) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    dist = rng.dirichlet(np.ones(k), size=(n, len_list)).transpose(0, 2, 1)  # (n, K, L)
    q_hat = rng.random((n, k, len_list))
    action = rng.integers(0, k, n)
    position = rng.integers(0, len_list, n)
    return {
        "reward": rng.binomial(1, 0.4, n).astype(float),
        "action": action,
        "pscore": rng.uniform(0.05, 1.0, n),
        "action_dist": dist[:, :, 0] if len_list == 1 else dist,
        "position": None if len_list == 1 else position,
        "estimated_rewards_by_reg_model": q_hat[:, :, 0] if len_list == 1 else q_hat,
    }


def _plain(logs: dict[str, np.ndarray]) -> dict[str, float]:
    """The per-round expressions written out with plain 3-D fancy indexing (OBP's)."""
    dist = np.asarray(logs["action_dist"]).reshape(
        len(logs["reward"]), -1, 1 if logs["position"] is None else 3
    )
    q = np.asarray(logs["estimated_rewards_by_reg_model"]).reshape(dist.shape)
    pos = np.zeros(len(logs["reward"]), int) if logs["position"] is None else logs["position"]
    t, a, r = np.arange(len(pos)), logs["action"], logs["reward"]
    w = dist[t, a, pos] / logs["pscore"]
    dm = (dist[t, :, pos] * q[t, :, pos]).sum(1) / dist[t, :, pos].sum(1)
    dr = dm + w * (r - q[t, a, pos])
    return {"ipw": (w * r).mean(), "snipw": (w * r).sum() / w.sum(), "dm": dm.mean(), "dr": dr.mean()}


@pytest.mark.parametrize("block_floats", [1, 8, 50, 1 << 17])
@pytest.mark.parametrize("len_list", [1, 3])
def test_blocked_pass_gives_the_plain_estimates(monkeypatch, block_floats, len_list):
    monkeypatch.setattr(ope_inputs, "_BLOCK_FLOATS", block_floats)  # 1 row, 1 row, 7 rows, all rows
    logs = _logs(3, len_list=len_list)
    ours = estimate_policy_values(**logs, estimators=ESTIMATORS[:4])
    for name, value in _plain(logs).items():
        assert abs(ours[name] - value) <= 1e-12, name


@pytest.mark.parametrize("block_floats", [8, 1 << 17])
@pytest.mark.parametrize(
    ("row", "value", "message"),
    [
        (200, -0.1, "probabilities must be >= 0"),
        (200, np.nan, "round 200 does not sum to 1"),
        (256, 2.0, "round 256 does not sum to 1"),
    ],
)
def test_blocked_pass_finds_bad_rows_in_any_block(monkeypatch, block_floats, row, value, message):
    monkeypatch.setattr(ope_inputs, "_BLOCK_FLOATS", block_floats)
    logs = _logs(4)
    logs["action_dist"] = logs["action_dist"].copy()
    logs["action_dist"][row, 2] = value
    with pytest.raises(OPEInputError, match=message):
        check_bandit_feedback(**logs)


def test_non_finite_reward_model_is_named_on_the_fast_path():
    logs = _logs(5)
    logs["estimated_rewards_by_reg_model"] = logs["estimated_rewards_by_reg_model"].copy()
    logs["estimated_rewards_by_reg_model"][100, 3] = np.inf
    with pytest.raises(OPEInputError, match="estimated_rewards_by_reg_model: round 100"):
        DirectMethod().estimate_policy_value(**logs)


def test_flat_gather_matches_fancy_indexing_on_views_too():
    logs = _logs(6, len_list=3)
    bf = check_bandit_feedback(**logs)
    t = np.arange(bf.n_rounds)
    expected = bf.action_dist[t, bf.action, bf.position] / bf.pscore
    np.testing.assert_array_equal(bf.importance_weight, expected)
    # a broadcast (non-contiguous) action_dist, as the OBD benchmark passes one: gathered without a copy
    pi = logs["action_dist"][0]  # (K, L)
    view = np.broadcast_to(pi[None], (bf.n_rounds, *pi.shape))
    bf_view = check_bandit_feedback(**{**logs, "action_dist": view})
    np.testing.assert_array_equal(bf_view.importance_weight, pi[bf.action, bf.position] / bf.pscore)


def test_shared_bootstrap_draws_equal_separate_calls_exactly():
    rng = np.random.default_rng(7)
    stack = rng.random((3, 1001))
    shared = bootstrap_means(stack, 250, random_state=5)
    assert shared.shape == (3, 250)
    for row, means in zip(stack, shared, strict=True):
        np.testing.assert_array_equal(means, bootstrap_means(row, 250, random_state=5))


@pytest.mark.parametrize("len_list", [1, 3])
def test_report_intervals_equal_each_estimators_own(len_list):
    logs = _logs(8, len_list=len_list)
    report = evaluate_off_policy(**logs, estimators=ESTIMATORS, n_bootstrap_samples=300, random_state=2)
    assert list(report.estimates) == [e.name for e in ESTIMATORS]
    for est in ESTIMATORS:
        own = est.estimate_interval(**logs, n_bootstrap_samples=300, random_state=2)
        assert report.estimates[est.name] == own


def test_report_with_no_estimators_and_bad_alpha():
    logs = _logs(9)
    assert evaluate_off_policy(**logs, estimators=[], n_bootstrap_samples=10).estimates == {}
    with pytest.raises(OPEInputError, match="alpha: must be in"):
        evaluate_off_policy(**logs, alpha=1.5)
