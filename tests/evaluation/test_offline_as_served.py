"""Issue 13 item 14: the gate's OPE check scores the candidate as it will be served (ε-greedy), like the
champion whose ε-greedy logged mean it is compared with — not by sampling from the candidate's softmax."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rewardloop.config.sections import GateConfig
from rewardloop.evaluation.gate import OPEComparison, run_gate
from rewardloop.evaluation.golden import GoldenItem, GoldenSet
from rewardloop.evaluation.metrics import evaluate_predictions
from rewardloop.evaluation.offline import candidate_action_dist, evaluate_candidate_on_logs
from rewardloop.evaluation.ope import logged_feedback_from_decisions
from rewardloop.policies.classifier import ClassifierPolicy, make_head
from rewardloop.policies.contract import Exploration
from rewardloop.types.batches import DecisionBatch
from rewardloop.types.records import Decision, Reward

LABELS = ("a", "b")


class TableEncoder:
    def __init__(self, table):
        self.table = {k: np.asarray(v, dtype=np.float32) for k, v in table.items()}

    def encode(self, texts):
        return np.stack([self.table[t] for t in texts])


def candidate(exploration=None) -> ClassifierPolicy:
    """Right on both texts by its arg-max, but unsure: softmax (0.55, 0.45) on "u", (0.45, 0.55) on "v"."""
    head = make_head(2, 2)
    with torch.no_grad():
        head.weight.copy_(torch.eye(2))
        head.bias.zero_()
    z = math.log(0.55 / 0.45)
    enc = TableEncoder({"u": [z, 0.0], "v": [0.0, z]})
    return ClassifierPolicy(list(LABELS), head=head, in_dim=2, encoder=enc, exploration=exploration)


def champion_logs() -> DecisionBatch:
    """The champion says "a" to everything, served ε-greedy with ε = 0.2: (0.9, 0.1) on every text.

    Truth: "u" is a, "v" is b. Per text 90 decisions "a" and 10 "b"; reward 1 when right. The champion's
    logged value is (90 + 10) / 200 = 0.5.
    """
    decisions, rewards = [], {}
    for text, truth in (("u", "a"), ("v", "b")):
        for i in range(100):
            action = "a" if i < 90 else "b"
            d = Decision(
                policy="intent",
                policy_version="1",
                kind="classifier",
                actions=LABELS,
                action=action,
                action_dist=(0.9, 0.1),
                pscore=0.9 if action == "a" else 0.1,
                text=text,
            )
            decisions.append(d)
            rewards[d.id] = Reward(d.id, "thumbs", 1, float(action == truth))
    return DecisionBatch(decisions, rewards=rewards)


def test_candidate_distribution_is_its_serving_distribution():
    batch = champion_logs()
    logged = logged_feedback_from_decisions(batch)
    served = candidate_action_dist(candidate(Exploration("epsilon", 0.2)), batch, logged)
    sampled = candidate_action_dist(candidate(Exploration("sample")), batch, logged)
    assert served[0].tolist() == pytest.approx([0.9, 0.1]) and served[-1].tolist() == pytest.approx(
        [0.1, 0.9]
    )
    assert sampled[0].tolist() == pytest.approx([0.55, 0.45])
    # A ClassifierPolicy without an explicit exploration is scored as the service serves it by default.
    default = candidate_action_dist(candidate(), batch, logged)
    assert default[0].tolist() == pytest.approx([0.95, 0.05])


def test_gate_compares_the_candidate_as_served_with_the_champion_as_deployed():
    batch = champion_logs()
    golden = GoldenSet([GoldenItem("g1", "u", "a"), GoldenItem("g2", "v", "b")])
    report = evaluate_predictions(golden, list(LABELS), [[0.55, 0.45], [0.45, 0.55]], policy="candidate")
    gate = GateConfig(min_ope_lower_vs_champion=0.0)

    served = evaluate_candidate_on_logs(candidate(Exploration("epsilon", 0.2)), batch, random_state=0)
    # IPW by hand: "u"·a rows weigh 0.9/0.9 = 1 (90 rewards), "v"·b rows 0.9/0.1 = 9 (10 rewards):
    # (90 + 90) / 200 = 0.9 — the ε-greedy candidate's true value.
    assert served.report.value("ipw").value == pytest.approx(0.9)
    assert served.logging_policy_value == pytest.approx(0.5)
    assert served.to_dict()["candidate_served_as"] == "epsilon-greedy (ε=0.2)"
    ope = OPEComparison.from_offline(served, "dr")
    passed = run_gate(report, report, gate, ope=ope)
    assert passed.passed, passed.to_markdown()
    assert "candidate served epsilon-greedy (ε=0.2)" in passed.checks[-1].detail

    # The old check scored the softmax: (90·0.55/0.9 + 10·0.55/0.1) / 200 = 0.55, its lower bound under
    # the champion's 0.5 — a candidate better than the champion as deployed failed the gate.
    sampled = evaluate_candidate_on_logs(candidate(Exploration("sample")), batch, random_state=0)
    assert sampled.report.value("ipw").value == pytest.approx(0.55)
    failed = run_gate(report, report, gate, ope=OPEComparison.from_offline(sampled, "dr"))
    assert not failed.passed and failed.failed[0].name == "ope_lower_vs_champion"
