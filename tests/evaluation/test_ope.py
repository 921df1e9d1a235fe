"""Off-policy estimators: exact values on a hand-derived case, statistics on seeded synthetic logs."""

from __future__ import annotations

import re

import numpy as np
import pytest

from rewardloop.evaluation.ope import (
    DirectMethod,
    DoublyRobust,
    DoublyRobustWithShrinkage,
    InverseProbabilityWeighting,
    OPEInputError,
    SelfNormalizedInverseProbabilityWeighting,
    SwitchDoublyRobust,
    bootstrap_interval,
    effective_sample_size,
    estimate_policy_values,
    evaluate_off_policy,
    logged_feedback_from_decisions,
    ope_diagnostics,
    tabular_reward_model,
)

# Three rounds, two actions, two slots. Entries of q_hat at slots a round was not logged at are 9.0, so an
# estimator reading the wrong slot is off by a mile.
ACTION_DIST = np.array(
    [
        [[0.7, 0.4], [0.3, 0.6]],  # t0: slot 0 (0.7, 0.3), slot 1 (0.4, 0.6)
        [[0.2, 0.5], [0.8, 0.5]],  # t1: slot 0 (0.2, 0.8), slot 1 (0.5, 0.5)
        [[1.0, 0.1], [0.0, 0.9]],  # t2: slot 0 (1.0, 0.0), slot 1 (0.1, 0.9)
    ]
)  # (n=3, K=2, L=2)
Q_HAT = np.array(
    [
        [[9.0, 0.5], [9.0, 0.2]],  # t0 logged at slot 1: q(0)=0.5, q(1)=0.2
        [[0.1, 9.0], [0.4, 9.0]],  # t1 logged at slot 0: q(0)=0.1, q(1)=0.4
        [[0.6, 9.0], [0.3, 9.0]],  # t2 logged at slot 0: q(0)=0.6, q(1)=0.3
    ]
)
LOGS = {
    "reward": np.array([1.0, 0.0, 1.0]),
    "action": np.array([0, 1, 0]),
    "position": np.array([1, 0, 0]),
    "pscore": np.array([0.5, 0.25, 0.5]),
    "action_dist": ACTION_DIST,
    "estimated_rewards_by_reg_model": Q_HAT,
}
# Hand derivation: w = π_e(a_t|x_t, k_t) / pscore = (0.4/0.5, 0.8/0.25, 1.0/0.5) = (0.8, 3.2, 2.0).
# q̂(x, π_e) = (0.4·0.5 + 0.6·0.2, 0.2·0.1 + 0.8·0.4, 1.0·0.6) = (0.32, 0.34, 0.6);
# q̂(x, a_t) = (0.5, 0.4, 0.6).
DR_TERMS = (0.32 + 0.8 * (1 - 0.5), 0.34 + 3.2 * (0 - 0.4), 0.6 + 2.0 * (1 - 0.6))
EXPECTED = [
    (InverseProbabilityWeighting(), (0.8 * 1 + 3.2 * 0 + 2.0 * 1) / 3),
    (SelfNormalizedInverseProbabilityWeighting(), (0.8 + 2.0) / (0.8 + 3.2 + 2.0)),
    (DirectMethod(), (0.32 + 0.34 + 0.6) / 3),
    (DoublyRobust(), sum(DR_TERMS) / 3),
    (SwitchDoublyRobust(tau=2.0), (DR_TERMS[0] + 0.34 + DR_TERMS[2]) / 3),  # w=3.2 > τ: DM only
    (SwitchDoublyRobust(), sum(DR_TERMS) / 3),  # τ = ∞ is DR
    (
        DoublyRobustWithShrinkage(lambda_=1.0),
        (0.32 + 0.8 / 1.64 * 0.5 + 0.34 + 3.2 / 11.24 * (-0.4) + 0.6 + 2.0 / 5.0 * 0.4) / 3,
    ),
    (DoublyRobustWithShrinkage(lambda_=0.0), (0.32 + 0.34 + 0.6) / 3),  # λ = 0 is DM
]


@pytest.mark.parametrize(("estimator", "expected"), EXPECTED, ids=lambda x: getattr(x, "name", ""))
def test_estimators_match_hand_derivation_to_1e12(estimator, expected):
    assert estimator.estimate_policy_value(**LOGS) == pytest.approx(expected, abs=1e-12)


def _obp_formulas(name, reward, action, position, pscore, action_dist, q_hat, tau=1.0, lambda_=1.0):
    """OBP's per-round expressions, written as OBP writes them (fancy indexing, np.average)."""
    n = action.shape[0]
    rounds = np.arange(n)
    iw = action_dist[rounds, action, position] / pscore
    q_at = q_hat[rounds, :, position]
    dm = np.average(q_at, weights=action_dist[rounds, :, position], axis=1)
    q_fact = q_hat[rounds, action, position]
    return {
        "ipw": reward * iw,
        "snipw": reward * iw / iw.mean(),
        "dm": dm,
        "dr": dm + iw * (reward - q_fact),
        "switch-dr": dm + (iw <= tau).astype(int) * iw * (reward - q_fact),
        "dr-os": dm + (lambda_ * iw) / (iw**2 + lambda_) * (reward - q_fact),
    }[name].mean()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_inputs_match_obp_expressions_to_1e12(seed):
    rng = np.random.default_rng(seed)
    n, k, slots = 64, 6, 3
    action_dist = rng.dirichlet(np.ones(k), size=(n, slots)).transpose(0, 2, 1)  # (n, K, L)
    q_hat = rng.random((n, k, slots))
    logs = {
        "reward": rng.binomial(1, 0.3, n).astype(float),
        "action": rng.integers(0, k, n),
        "position": rng.integers(0, slots, n),
        "pscore": rng.uniform(0.05, 1.0, n),
        "action_dist": action_dist,
        "estimated_rewards_by_reg_model": q_hat,
    }
    ests = [
        InverseProbabilityWeighting(),
        SelfNormalizedInverseProbabilityWeighting(),
        DirectMethod(),
        DoublyRobust(),
        SwitchDoublyRobust(tau=1.0),
        DoublyRobustWithShrinkage(lambda_=1.0),
    ]
    args = [logs[x] for x in ("reward", "action", "position", "pscore", "action_dist")]
    for est in ests:
        expected = _obp_formulas(est.name, *args, q_hat)
        assert est.estimate_policy_value(**logs) == pytest.approx(expected, abs=1e-12), est.name


def test_two_dimensional_action_dist_is_one_slot():
    logs = {
        "reward": [1.0, 0.0],
        "action": [1, 0],
        "pscore": [0.5, 0.5],
        "action_dist": [[0.0, 1.0], [0.5, 0.5]],
        "estimated_rewards_by_reg_model": [[0.2, 0.6], [0.2, 0.6]],
    }
    # w = (2, 1); DR terms: 0.6 + 2(1 - 0.6) = 1.4 and 0.4 + 1(0 - 0.2) = 0.2.
    assert DoublyRobust().estimate_policy_value(**logs) == pytest.approx(0.8, abs=1e-12)
    assert estimate_policy_values(**logs) == pytest.approx(
        {"ipw": 1.0, "snipw": 2.0 / 3.0, "dm": 0.5, "dr": 0.8}, abs=1e-12
    )


def _obp_style_bootstrap(samples, alpha, n_boot, seed):
    """OBP's procedure written as its loop: one RandomState, one choice() per replicate."""
    rs = np.random.RandomState(seed)
    boots = [np.mean(rs.choice(samples, size=samples.shape[0])) for _ in range(n_boot)]
    return np.mean(boots), np.percentile(boots, 100 * alpha / 2), np.percentile(boots, 100 * (1 - alpha / 2))


def test_bootstrap_interval_equals_the_obp_loop():
    samples = np.random.default_rng(3).exponential(size=57)
    ours = bootstrap_interval(samples, alpha=0.1, n_bootstrap_samples=300, random_state=11)
    assert ours == pytest.approx(_obp_style_bootstrap(samples, 0.1, 300, 11), abs=1e-12)


def test_interval_reports_estimate_and_obp_keys():
    iv = InverseProbabilityWeighting().estimate_interval(**LOGS, n_bootstrap_samples=50, random_state=0)
    assert iv.value == pytest.approx(2.8 / 3, abs=1e-12)
    assert iv.lower <= iv.mean <= iv.upper
    assert set(iv.to_obp_dict()) == {"mean", "95.0% CI (lower)", "95.0% CI (upper)"}


# ------------------------------------------------------------------------------------------ bad inputs

BAD = [
    ({"pscore": [0.5, 0.0, 0.5]}, "pscore: round 1 has propensity 0.0"),
    ({"pscore": [0.5, 1.5, 0.5]}, "pscore: round 1 has propensity 1.5"),
    ({"action": [0, 2, 0]}, "action: round 1 has action 2, outside [0, n_actions=2)"),
    ({"action": [0.5, 1, 0]}, "action: must hold integers"),
    ({"position": [1, 0, 2]}, "position: round 2 has position 2"),
    ({"position": None}, "position: required when action_dist has len_list=2"),
    ({"reward": [1.0, np.nan, 1.0]}, "reward: round 1 is not finite"),
    ({"reward": [1.0, 0.0]}, "reward: has 2 rounds, expected n_rounds=3"),
    ({"action_dist": ACTION_DIST * 0.5}, "action_dist: round 0 does not sum to 1"),
    ({"estimated_rewards_by_reg_model": Q_HAT[:, :, :1]}, "estimated_rewards_by_reg_model: shape"),
]


@pytest.mark.parametrize(("change", "message"), BAD, ids=[m for _, m in BAD])
def test_bad_inputs_name_the_argument(change, message):
    with pytest.raises(OPEInputError, match=re.escape(message)):
        DoublyRobust().estimate_policy_value(**{**LOGS, **change})


def test_reward_model_required_by_dm_and_dr():
    logs = {k: v for k, v in LOGS.items() if k != "estimated_rewards_by_reg_model"}
    with pytest.raises(OPEInputError, match="estimated_rewards_by_reg_model: required by dr"):
        DoublyRobust().estimate_policy_value(**logs)
    assert InverseProbabilityWeighting().estimate_policy_value(**logs) == pytest.approx(2.8 / 3)


def test_bad_hyperparameters():
    with pytest.raises(OPEInputError, match="tau"):
        SwitchDoublyRobust(tau=-1)
    with pytest.raises(OPEInputError, match="lambda_"):
        DoublyRobustWithShrinkage(lambda_=-0.5)


# ------------------------------------------------------------------------------------------ diagnostics


def test_effective_sample_size_exact():
    assert effective_sample_size([1, 1, 1, 1]) == 4.0
    assert effective_sample_size([2, 0, 0, 0]) == 1.0
    assert effective_sample_size([0.8, 3.2, 2.0]) == pytest.approx(36 / (0.64 + 10.24 + 4))


def test_diagnostics_flag_no_exploration_and_unlogged_actions():
    n = 10
    action = np.zeros(n, dtype=int)
    pscore = np.ones(n)
    candidate = np.tile([0.5, 0.5, 0.0], (n, 1))  # half its mass on action 1, never logged
    behavior = np.tile([1.0, 0.0, 0.0], (n, 1))
    d = ope_diagnostics(action=action, pscore=pscore, action_dist=candidate, behavior_action_dist=behavior)
    assert d.deterministic_share == 1.0
    assert d.unsupported_mass == pytest.approx(0.5)
    assert d.unlogged_actions == [1]
    assert d.mean_weight == pytest.approx(0.5)
    text = " ".join(d.warnings)
    for phrase in ("no exploration", "no support", "overlap", "mean importance weight"):
        assert phrase in text


def test_diagnostics_quiet_on_healthy_uniform_logs():
    rng = np.random.default_rng(0)
    n, k = 2000, 4
    action = rng.integers(0, k, n)
    d = ope_diagnostics(action=action, pscore=np.full(n, 1 / k), action_dist=np.full((n, k), 1 / k))
    assert d.warnings == []
    assert d.ess == pytest.approx(n)


# ------------------------------------------------------------------------------------------ statistics


def _synthetic(rng, n, k=5, d=3):
    """Contexts, true expected rewards q(x, a), a softmax logging policy and a different target policy."""
    x = rng.normal(size=(n, d))
    theta = np.linspace(-1, 1, k * d).reshape(d, k)
    q = 1 / (1 + np.exp(-(x @ theta)))  # (n, K) expected reward in (0, 1)
    logits_b = 0.5 * (x @ theta[:, ::-1])
    pi_b = np.exp(logits_b) / np.exp(logits_b).sum(1, keepdims=True)
    logits_e = 2.0 * (x @ theta)
    pi_e = np.exp(logits_e) / np.exp(logits_e).sum(1, keepdims=True)
    return x, q, pi_b, pi_e


def _sample(rng, probs):
    u = rng.random(probs.shape[0])[:, None]
    return np.minimum((u > probs.cumsum(1)).sum(1), probs.shape[1] - 1)


def test_dr_error_is_within_a_bound_of_the_on_policy_estimate():
    """As OBP's accuracy test: estimator errors stay within a multiple of the on-policy estimate's."""
    rng = np.random.default_rng(2024)
    n, reps = 2000, 25
    _, q_big, _, pi_e_big = _synthetic(np.random.default_rng(7), 200_000)
    true_value = float(np.sum(pi_e_big * q_big, axis=1).mean())
    errs: dict[str, list[float]] = {"on_policy": [], "ipw": [], "dr": [], "dm_biased": []}
    for _ in range(reps):
        _, q, pi_b, pi_e = _synthetic(rng, n)
        a = _sample(rng, pi_b)
        r = rng.binomial(1, q[np.arange(n), a]).astype(float)
        a_on = _sample(rng, pi_e)  # the same contexts, served by the target policy itself
        errs["on_policy"].append(rng.binomial(1, q[np.arange(n), a_on]).mean() - true_value)
        q_hat = np.clip(q + 0.15, 0, 1)  # a reward model that is off by +0.15
        logs = {"reward": r, "action": a, "pscore": pi_b[np.arange(n), a], "action_dist": pi_e}
        errs["ipw"].append(InverseProbabilityWeighting().estimate_policy_value(**logs) - true_value)
        errs["dr"].append(
            DoublyRobust().estimate_policy_value(**logs, estimated_rewards_by_reg_model=q_hat) - true_value
        )
        errs["dm_biased"].append(
            DirectMethod().estimate_policy_value(**logs, estimated_rewards_by_reg_model=q_hat) - true_value
        )
    rmse = {k: float(np.sqrt(np.mean(np.square(v)))) for k, v in errs.items()}
    assert rmse["dr"] <= 3.0 * rmse["on_policy"], rmse
    assert rmse["ipw"] <= 5.0 * rmse["on_policy"], rmse
    # DR corrects the reward model's bias; DM keeps it.
    assert abs(np.mean(errs["dr"])) < 3 * np.std(errs["dr"]) / np.sqrt(reps)
    assert rmse["dm_biased"] > 0.1 > rmse["dr"]


def test_bootstrap_ci_coverage_is_near_nominal():
    rng = np.random.default_rng(5)
    n, reps = 400, 300
    _, q_big, _, pi_e_big = _synthetic(np.random.default_rng(8), 200_000)
    true_value = float(np.sum(pi_e_big * q_big, axis=1).mean())
    covered = 0
    for i in range(reps):
        _, q, pi_b, pi_e = _synthetic(rng, n)
        a = _sample(rng, pi_b)
        r = rng.binomial(1, q[np.arange(n), a]).astype(float)
        iv = DoublyRobust().estimate_interval(
            reward=r,
            action=a,
            pscore=pi_b[np.arange(n), a],
            action_dist=pi_e,
            estimated_rewards_by_reg_model=np.full_like(q, 0.5),
            n_bootstrap_samples=300,
            random_state=i,
        )
        covered += iv.lower <= true_value <= iv.upper
    coverage = covered / reps
    # Binomial sd at 95% over 300 repetitions is 1.3 points; allow for the percentile bootstrap's small
    # under-coverage at n=400.
    assert 0.89 <= coverage <= 0.99, coverage


def test_evaluate_off_policy_runs_every_estimator_and_diagnoses():
    rng = np.random.default_rng(1)
    n = 500
    _, q, pi_b, pi_e = _synthetic(rng, n)
    a = _sample(rng, pi_b)
    r = rng.binomial(1, q[np.arange(n), a]).astype(float)
    rep = evaluate_off_policy(
        reward=r,
        action=a,
        pscore=pi_b[np.arange(n), a],
        action_dist=pi_e,
        estimated_rewards_by_reg_model=q,
        behavior_action_dist=pi_b,
        n_bootstrap_samples=100,
    )
    assert list(rep.estimates) == ["ipw", "snipw", "dm", "dr"]
    assert rep.diagnostics.unsupported_mass == 0.0
    assert 0 < rep.diagnostics.ess < n
    assert rep.to_dict()["estimates"]["dr"]["estimator"] == "dr"


def test_tabular_reward_model_is_cross_fitted_and_shrunk():
    rng = np.random.default_rng(0)
    n = 4000
    action = rng.integers(0, 2, n)
    position = rng.integers(0, 2, n)
    reward = (rng.random(n) < np.where(action == 0, 0.2, 0.6)).astype(float)
    q = tabular_reward_model(reward=reward, action=action, n_actions=2, position=position, len_list=2)
    assert q.shape == (n, 2, 2)
    assert np.abs(q[:, 0, :] - 0.2).max() < 0.08 and np.abs(q[:, 1, :] - 0.6).max() < 0.08  # SE ≈ 0.022
    # Cross-fitting: a round's own reward never enters its own prediction.
    flipped = reward.copy()
    flipped[17] = 1.0 - flipped[17]
    q2 = tabular_reward_model(reward=flipped, action=action, n_actions=2, position=position, len_list=2)
    assert np.array_equal(q2[17], q[17])
    assert not np.array_equal(q2, q)
    # Constant rewards give a constant model, whatever the shrinkage.
    const = tabular_reward_model(reward=np.full(10, 0.3), action=np.arange(10) % 3, n_actions=3)
    assert np.allclose(const, 0.3)


def test_logged_feedback_from_stored_decisions():
    from rewardloop.types.batches import DecisionBatch
    from rewardloop.types.records import Decision, Reward

    def dec(action, dist, actions=("x", "y")):
        i = actions.index(action)
        return Decision(
            policy="r",
            policy_version="1",
            kind="router",
            actions=actions,
            action=action,
            action_dist=dist,
            pscore=dist[i],
        )

    d1, d2, d3 = dec("x", (0.8, 0.2)), dec("y", (0.8, 0.2)), dec("x", (0.5, 0.5))
    batch = DecisionBatch(
        [d1, d2, d3], rewards={d1.id: Reward(d1.id, "s", 1, 1.0), d2.id: Reward(d2.id, "s", 1, 0.5)}
    )
    logged = logged_feedback_from_decisions(batch)  # d3 has no reward: left out
    assert logged.decision_ids == [d1.id, d2.id]
    assert logged.action.tolist() == [0, 1] and logged.pscore.tolist() == [0.8, 0.2]
    assert logged.reward.tolist() == [1.0, 0.5]
    # A candidate that always picks y: IPW = (0 + 1/0.2 · 0.5) / 2 = 1.25.
    value = InverseProbabilityWeighting().estimate_policy_value(
        reward=logged.reward, action=logged.action, pscore=logged.pscore, action_dist=[[0.0, 1.0]] * 2
    )
    assert value == pytest.approx(1.25, abs=1e-12)
    other = dec("x", (0.5, 0.5), actions=("x", "z"))
    mixed = DecisionBatch(
        [d1, other], rewards={d1.id: Reward(d1.id, "s", 1, 1.0), other.id: Reward(other.id, "s", 1, 0.0)}
    )
    with pytest.raises(OPEInputError, match="not the same as"):
        logged_feedback_from_decisions(mixed)
    with pytest.raises(OPEInputError, match="none has a compiled reward"):
        logged_feedback_from_decisions(DecisionBatch([d3]))


def test_dr_os_with_lambda_zero_is_dm_also_where_the_weight_is_zero():
    # Issue 13 item 20: at w = 0 the shrunk weight λw/(w² + λ) is 0/0 for λ = 0; it returned NaN.
    logs = dict(LOGS, action=np.array([1, 1, 1]))  # t2 logs action 1 at slot 0, where π_e(1) = 0: w = 0
    dm = DirectMethod().estimate_policy_value(**logs)
    assert DoublyRobustWithShrinkage(lambda_=0.0).estimate_policy_value(**logs) == pytest.approx(dm)
    assert np.isfinite(DoublyRobustWithShrinkage(lambda_=1.0).estimate_policy_value(**logs))


def test_diagnostics_say_when_propensities_are_estimated():
    logs = {k: LOGS[k] for k in ("action", "position", "pscore", "action_dist")}
    assert not any("estimated propensities" in w for w in ope_diagnostics(**logs).warnings)
    d = ope_diagnostics(**logs, pscore_rtol=1e-4)
    assert any("estimated propensities: each within 0.0001 relative" in w for w in d.warnings)
    with pytest.raises(OPEInputError, match="pscore_rtol"):
        ope_diagnostics(**logs, pscore_rtol=2.0)


def test_bootstrap_partitions_split_the_replicates_with_their_own_seeds():
    from rewardloop.evaluation.ope import bootstrap_partitions

    assert bootstrap_partitions(10, 4, 1) == [(10, 4)]  # one part: the classic single stream
    parts = bootstrap_partitions(10, 4, 3)
    assert [b for b, _ in parts] == [4, 3, 3]
    assert len({seed for _, seed in parts}) == 3 and parts == bootstrap_partitions(10, 4, 3)
    assert [seed for _, seed in bootstrap_partitions(6, None, 2)] == [None, None]
    with pytest.raises(OPEInputError, match="n_partitions: must be >= 1"):
        bootstrap_partitions(10, 0, 0)
    with pytest.raises(OPEInputError, match="at most n_bootstrap_samples"):
        bootstrap_partitions(2, 0, 3)
