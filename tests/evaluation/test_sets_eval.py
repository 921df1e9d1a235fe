"""Set metrics, per-label OPE and the gate on set policies, on hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from rewardloop.config.sections import GateConfig
from rewardloop.evaluation.gate import run_gate
from rewardloop.evaluation.ope import OPEInputError
from rewardloop.evaluation.ope.sets import PerLabelDoublyRobust, PerLabelIPS
from rewardloop.evaluation.sets import set_golden_report, set_metrics

LABELS = ["a", "b", "c"]
TRUE = [[1, 0, 1], [0, 1, 0]]
PRED = [[1, 1, 0], [0, 1, 0]]
PROBA = [[0.9, 0.6, 0.4], [0.2, 0.7, 0.1]]


def test_set_metrics_by_hand():
    m = set_metrics(TRUE, PRED, LABELS, PROBA)
    a, b, c = (m.per_action[k] for k in LABELS)
    assert (a.precision, a.recall, a.f1, a.support) == (1.0, 1.0, 1.0, 1)
    assert (b.precision, b.recall, b.f1) == pytest.approx((0.5, 1.0, 2 / 3))
    assert (c.precision, c.recall, c.f1, c.support) == (0.0, 0.0, 0.0, 1)
    assert m.micro_f1 == pytest.approx(4 / 6)  # tp 2, fp 1, fn 1
    assert m.macro_f1 == pytest.approx((1 + 2 / 3 + 0) / 3)
    assert (m.subset_accuracy, m.hamming_loss) == pytest.approx((0.5, 2 / 6))
    # action a: 0.9 (true) and 0.2 (false) in their own bins: ½·|1 − 0.9| + ½·|0 − 0.2|
    assert m.ece_per_action["a"] == pytest.approx(0.15)
    assert m.mean_ece == pytest.approx(np.mean(list(m.ece_per_action.values())))
    with pytest.raises(ValueError, match="expected the shape of Y_true"):
        set_metrics(TRUE, [[1, 0]], LABELS)


def test_the_gate_reads_a_set_policys_report_like_any_other():
    m = set_metrics(TRUE, PRED, LABELS, PROBA)
    report = set_golden_report("slots-v2", m, PROBA, TRUE)
    assert (report.accuracy, report.weighted_f1) == pytest.approx((0.5, 4 / 6))
    assert report.brier == pytest.approx(np.mean((np.array(PROBA) - np.array(TRUE)) ** 2))
    assert run_gate(report, None, GateConfig(min_accuracy=0.5)).passed
    assert not run_gate(report, None, GateConfig(min_accuracy=0.6)).passed
    better = set_golden_report("slots-v1", set_metrics(TRUE, TRUE, LABELS, PROBA), PROBA, TRUE)
    gate = run_gate(report, better, GateConfig(max_class_drop=0.5))
    assert not gate.passed  # action c: recall 1 → 0
    assert "class 'c'" in gate.checks[0].detail


LOGS = dict(
    reward=[[1.0, 0.0], [0.0, 1.0]],
    logged=[[1, 0], [0, 1]],
    pscore=[[0.5, 0.25], [0.5, 0.5]],
    action_dist=[[0.8, 0.1], [0.2, 0.6]],
)
Q_HAT = [[[0.2, 0.7], [0.5, 0.1]], [[0.5, 0.5], [0.0, 1.0]]]


def test_per_label_ips_by_hand():
    # round 1: 0.8/0.5 · 1 + (0.9/0.75) · 0 = 1.6; round 2: (0.8/0.5) · 0 + 0.6/0.5 · 1 = 1.2
    ips = PerLabelIPS()
    assert ips.weights(LOGS["logged"], LOGS["pscore"], LOGS["action_dist"]) == pytest.approx(
        np.array([[1.6, 1.2], [1.6, 1.2]])
    )
    assert ips.estimate_round_rewards(**LOGS) == pytest.approx([1.6, 1.2])
    assert ips.estimate_policy_value(**LOGS) == pytest.approx(1.4)
    assert ips.estimate_policy_value(**LOGS, mask=[[1, 0], [0, 0]]) == pytest.approx(0.8)


def test_per_label_dr_by_hand():
    # round 1: label a 0.2·0.2 + 0.8·0.7 + 1.6·(1 − 0.7) = 1.08;
    #          label b 0.9·0.5 + 0.1·0.1 + 1.2·(0 − 0.5) = −0.14
    # round 2: label a 0.5 + 1.6·(0 − 0.5) = −0.3; label b 0.6·1 + 1.2·(1 − 1) = 0.6
    dr = PerLabelDoublyRobust()
    terms = dr.estimate_round_rewards(**LOGS, estimated_rewards_by_reg_model=Q_HAT)
    assert terms == pytest.approx([0.94, 0.3])
    interval = dr.estimate_interval(
        **LOGS, estimated_rewards_by_reg_model=Q_HAT, n_bootstrap_samples=200, random_state=0
    )
    assert interval.value == pytest.approx(0.62) and interval.lower <= interval.upper
    with pytest.raises(OPEInputError, match="required by set-dr"):
        dr.estimate_policy_value(**LOGS)


def test_bad_logs_are_refused_naming_the_input():
    with pytest.raises(OPEInputError, match="the logged state had probability 0"):
        PerLabelIPS().estimate_policy_value(**{**LOGS, "pscore": [[0.0, 0.25], [0.5, 0.5]]})
    with pytest.raises(OPEInputError, match=r"action_dist: shape \(2, 1\)"):
        PerLabelIPS().estimate_policy_value(**{**LOGS, "action_dist": [[0.8], [0.2]]})
    with pytest.raises(OPEInputError, match="logged: must hold 0"):
        PerLabelIPS().estimate_policy_value(**{**LOGS, "logged": [[2, 0], [0, 1]]})


def test_on_seeded_synthetic_logs_both_estimate_the_true_value():
    """Known truth: labels ~ Bernoulli(θ_tj), logging μ = 0.5, π_j = θ_tj; r = 1 when the state is right."""
    rng = np.random.default_rng(0)
    n, L = 20000, 3
    theta = rng.uniform(0.05, 0.95, size=(n, L))
    y = rng.random((n, L)) < theta
    mu = np.full((n, L), 0.5)
    z = rng.random((n, L)) < mu
    r = (z == y).astype(float)
    pi = theta
    true_value = float((pi * theta + (1 - pi) * (1 - theta)).sum(axis=1).mean())
    logs = dict(reward=r, logged=z.astype(float), pscore=mu, action_dist=pi)
    ips = PerLabelIPS().estimate_policy_value(**logs)
    q = np.stack([1 - theta, theta], axis=-1) * 0.9 + 0.05  # a biased reward model
    dr = PerLabelDoublyRobust().estimate_policy_value(**logs, estimated_rewards_by_reg_model=q)
    naive = float(r.sum(axis=1).mean())  # the logging policy's value: off by ~0.3
    assert abs(ips - true_value) < 0.03 and abs(dr - true_value) < 0.03
    assert abs(dr - true_value) < abs(naive - true_value) / 5
