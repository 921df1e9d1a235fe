"""What the set loop evaluates with, by hand: golden sets of sets, the set gate's checks, the per-label
rewards of logged set feedback (per-action penalties, raters by authority) and the per-label DR of a
policy as served."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch

from rewardloop.config.sections import GateConfig
from rewardloop.evaluation.golden import GoldenError, load_golden, write_golden
from rewardloop.evaluation.sets import (
    SetEvaluation,
    per_label_logs,
    set_gate,
    set_golden_report,
    set_metrics,
    set_ope,
)
from rewardloop.policies.contract import Exploration
from rewardloop.policies.multilabel import MultiLabelPolicy
from rewardloop.rewards.sets import Penalties
from rewardloop.types import Decision, DecisionBatch, Feedback, set_decision_fields


def _write(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_golden_set_of_sets_reads_labels_from_jsonl_and_csv_and_round_trips(tmp_path):
    rows = [{"id": "g1", "text": "lights on", "labels": ["lights"]}, {"text": "hello", "labels": []}]
    golden = load_golden(_write(tmp_path, "g.jsonl", "\n".join(json.dumps(r) for r in rows)))
    assert golden.is_sets and golden.action_labels == ["lights"]
    assert [(i.labels, i.label) for i in golden.items] == [(("lights",), "{lights}"), ((), "{}")]
    assert golden.matrix(["music", "lights"]).tolist() == [[0.0, 1.0], [0.0, 0.0]]
    csv = load_golden(_write(tmp_path, "g.csv", "text,labels\nplay and light,music|lights\nhi,\n"))
    assert [i.labels for i in csv.items] == [("music", "lights"), ()]
    again = load_golden(write_golden(golden, tmp_path / "again.jsonl"))
    assert [(i.id, i.labels) for i in again.items] == [(i.id, i.labels) for i in golden.items]


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (['{"text": "t", "label": "a", "labels": ["a"]}'], "line 1: give 'label' (one label) or 'labels'"),
        (['{"text": "t", "labels": "a"}', '{"text": "u", "label": "a"}'], "line 2: every item expects a set"),
        (['{"text": "t", "labels": [1]}'], "line 1: 'labels' must be a list of non-empty strings"),
        (['{"text": "t", "labels": ["a", "a"]}'], "line 1: 'labels' repeats a label"),
    ],
)
def test_bad_golden_sets_are_refused_naming_the_line(tmp_path, lines, message):
    with pytest.raises(GoldenError, match=re.escape(message)):
        load_golden(_write(tmp_path, "g.jsonl", "\n".join(lines)))


def test_a_golden_action_the_policy_lacks_is_named_with_its_line(tmp_path):
    golden = load_golden(
        _write(tmp_path, "g.jsonl", '{"text": "t", "labels": ["a"]}\n{"text": "u", "labels": ["zz"]}')
    )
    with pytest.raises(GoldenError, match=r"g\.jsonl line 2: action 'zz' is not one of the policy's labels"):
        golden.check_labels(["a", "b"])


def _evaluation(name: str, Y_true, Y_pred, P) -> SetEvaluation:
    m = set_metrics(Y_true, Y_pred, ["a", "b"], P)
    return SetEvaluation(m, set_golden_report(name, m, P, Y_true))


def test_the_set_gate_adds_micro_f1_and_hamming_loss_to_the_common_checks():
    truth = [[1, 0], [1, 1], [0, 1], [0, 0]]
    cand = _evaluation(
        "v2", truth, [[1, 0], [1, 0], [0, 1], [0, 0]], [[0.9, 0.1], [0.8, 0.4], [0.2, 0.7], [0.1, 0.2]]
    )
    champ = _evaluation(
        "v1", truth, [[1, 0], [1, 1], [0, 1], [0, 0]], [[0.9, 0.1], [0.8, 0.6], [0.2, 0.7], [0.1, 0.2]]
    )
    # candidate: tp 3, fp 0, fn 1 → micro F1 6/7; 1 wrong cell of 8; 3 of 4 sets exactly right;
    # action b's recall 1 → 1/2 (the champion had both b's)
    gate = GateConfig(min_micro_f1=0.85, max_hamming_loss=0.1, min_accuracy=0.75, max_class_drop=0.4)
    report = set_gate(cand, champ, gate)
    by_name = {c.name: c for c in report.checks}
    assert sorted(by_name) == ["accuracy", "hamming_loss", "max_class_drop", "micro_f1"]
    assert by_name["micro_f1"].figure == pytest.approx(6 / 7) and by_name["micro_f1"].passed
    assert by_name["hamming_loss"].figure == pytest.approx(1 / 8) and not by_name["hamming_loss"].passed
    assert by_name["accuracy"].figure == pytest.approx(0.75) and by_name["accuracy"].passed
    assert by_name["max_class_drop"].figure == pytest.approx(0.5) and not by_name["max_class_drop"].passed
    assert by_name["micro_f1"].detail == "4 items × 2 actions"
    assert [c.name for c in report.failed] == ["max_class_drop", "hamming_loss"] and not report.passed


def test_per_label_rewards_are_the_authority_weighted_set_penalty_split_over_labels():
    d = Decision(id="d", policy="p", policy_version="1", kind="set", text="t",
                 **set_decision_fields(["a", "b"], ["a"], [0.6, 0.3]))  # fmt: skip
    fb = [
        Feedback(decision_id="d", kind="missed_actions", labels=("b",), rater_id="r1", authority=0.25),
        Feedback(decision_id="d", kind="unnecessary_actions", labels=("a",), rater_id="r2", authority=0.75),
    ]
    penalties = Penalties.from_options({"action_penalties": {"a": {"unnecessary": 1.0}}})
    logs = per_label_logs(DecisionBatch([d], {"d": fb}, {}), ["a", "b"], penalties)
    # r1 (0.25) holds {a, b} right, r2 (0.75) {}: y = (1/4, 1/4); r_a = −1.0·(1 − 1/4), r_b = −0.5·1/4
    assert logs.reward[0].tolist() == pytest.approx([-0.75, -0.125])
    assert (logs.logged.tolist(), logs.pscore.tolist(), logs.mask.tolist()) == (
        [[1, 0]],
        [[0.6, 0.3]],
        [[1, 1]],
    )
    # their sum is the authority mean of the raters' set penalties: 0.25·(−0.5) + 0.75·(−1.0)
    assert logs.logged_value == pytest.approx(-0.875)


def test_per_label_dr_of_a_policy_as_served_by_hand():
    torch.manual_seed(0)
    policy = MultiLabelPolicy(["a", "b"], exploration=Exploration("sample"))
    with torch.no_grad():  # p = (0.8, 0.2) whatever the text; sampled as is (thresholds 0.5)
        policy.head.weight.zero_()
        policy.head.bias.copy_(torch.tensor([np.log(4.0), -np.log(4.0)]))
    d = Decision(id="d", policy="p", policy_version="1", kind="set", text="t",
                 **set_decision_fields(["a", "b"], ["a"], [0.5, 0.5]))  # fmt: skip
    fb = [Feedback(decision_id="d", kind="missed_actions", labels=("b",), rater_id="u")]
    logs = per_label_logs(DecisionBatch([d], {"d": fb}, {}), ["a", "b"], Penalties())
    ope = set_ope(policy, logs, n_bootstrap_samples=50)
    assert ope is not None
    # r = (0, −0.5); q̂_a = (−0.5·0.8, −0.3·0.2), q̂_b = (−0.5·0.2, −0.3·0.8); w = (0.8/0.5, 0.8/0.5)
    # a: 0.2·(−0.4) + 0.8·(−0.06) + 1.6·(0 + 0.06) = −0.032; b: −0.128 + 1.6·(−0.5 + 0.1) = −0.768
    assert ope.candidate.value == pytest.approx(-0.8)
    assert ope.champion_value == pytest.approx(-0.5)
    assert ope.candidate.estimator == "set-dr" and ope.served_as == "sample per label"
    assert set_ope(policy, per_label_logs(DecisionBatch([], {}, {}), ["a", "b"], Penalties())) is None
