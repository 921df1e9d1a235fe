"""Gating policy + REINFORCE: exact loss, learning, logged traces with multi-level feedback, artifacts."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rewardloop.learners.gating import (
    GatingConfig,
    GatingTrainer,
    gating_loss,
    rollup_multilevel,
    traces_from_batch,
)
from rewardloop.policies.gating import GatingPolicy
from rewardloop.policies.router import RouterInputError
from rewardloop.store import read_decisions, write_decisions, write_feedback
from rewardloop.types import Decision, Feedback, TraceStep

torch.set_num_threads(1)
EXPERTS = ["literal", "systemic", "principles", "precedent"]


def test_reinforce_loss_hand_computed():
    logits = torch.zeros(2, 2)  # π = (0.5, 0.5) for both rows, H = log 2
    actions = torch.tensor([0, 1])
    rewards = torch.tensor([1.0, 0.0])
    loss, stats = gating_loss(logits, actions, rewards, baseline=0.5, entropy_coef=0.1)
    # −mean(w (r − b) log π) = −mean(0.5·log 0.5, −0.5·log 0.5) = 0;  −β·H = −0.1·log 2
    assert float(loss) == pytest.approx(-0.1 * math.log(2))
    assert stats["entropy"] == pytest.approx(math.log(2))
    # importance ratios π/μ = 0.5/0.25 = 2 and 0.5/1 = 0.5, the first clipped at 1.5
    behaviour = torch.log(torch.tensor([0.25, 1.0]))
    loss, stats = gating_loss(logits, actions, rewards, 0.0, 0.0, behaviour, max_weight=1.5)
    assert float(loss) == pytest.approx(-(1.5 * 1.0 * math.log(0.5)) / 2)
    assert stats["mean_weight"] == pytest.approx(1.0)


def test_rollup_multilevel_hand_computed():
    fb = [
        Feedback(
            decision_id="d",
            kind="multilevel",
            scores={"retrieval": 5, "reasoning": 3},
            scale=(1, 5),
            authority=1.0,
        ),
        Feedback(decision_id="d", kind="rating", value=0, scale=(-1, 1), authority=0.5),
        Feedback(decision_id="d", kind="implicit", value=1),  # not a rating: ignored
    ]
    # rater 1: (1 + 0.5) / 2 = 0.75;  weights {retrieval: 3, reasoning: 1}: (3·1 + 0.5) / 4 = 0.875
    # rater 2: 0.5.   authority-weighted: (1·0.75 + 0.5·0.5) / 1.5
    assert rollup_multilevel(fb) == pytest.approx((0.75 + 0.25) / 1.5)
    assert rollup_multilevel(fb, {"retrieval": 3, "reasoning": 1}) == pytest.approx((0.875 + 0.25) / 1.5)
    assert rollup_multilevel(fb[2:]) is None


def test_on_policy_reinforce_learns_the_best_expert_per_context():
    rng = np.random.default_rng(0)
    policy = GatingPolicy(EXPERTS, in_dim=4, hidden=16, random_state=0)
    trainer = GatingTrainer(policy, GatingConfig(lr=0.02, entropy_coef=0.001))
    X = np.eye(4)  # context i: expert i is right
    before = policy.probs(X)[np.arange(4), np.arange(4)].mean()
    params0 = [p.detach().clone() for p in policy.net.parameters()]
    for _ in range(150):
        rows = rng.integers(0, 4, size=16)
        p = policy.probs(X[rows])  # (16, 4)
        acts = np.minimum((p.cumsum(1) < rng.random((16, 1))).sum(1), 3)  # one draw per row
        trainer.update(X[rows], acts, (acts == rows).astype(float))
    after = policy.probs(X)[np.arange(4), np.arange(4)].mean()
    assert before < 0.35 and after > 0.8
    assert any(not torch.equal(a, b) for a, b in zip(params0, policy.net.parameters(), strict=True))
    assert trainer.history_[-1]["reward"] > trainer.history_[0]["reward"]


def test_off_policy_reinforce_from_logged_traces_and_multilevel_feedback(store):
    """Uniform logging over experts with a two-step trace; feedback scores say 'precedent' is best."""
    rng = np.random.default_rng(1)
    decisions, feedback = [], []
    for t in range(120):
        e = EXPERTS[t % 4]
        d = Decision(
            policy="gate",
            policy_version="0",
            kind="router",
            actions=tuple(EXPERTS),
            action=e,
            action_dist=(0.25,) * 4,
            pscore=0.25,
            features=(1.0, float(rng.normal())),
            trace=(
                TraceStep("expert", e, math.log(0.25)),
                TraceStep("traversal", f"node{t % 3}", math.log(1 / 3)),
            ),
        )
        decisions.append(d)
        good = 5 if e == "precedent" else 2
        feedback.append(
            Feedback(
                decision_id=d.id,
                kind="multilevel",
                scale=(1, 5),
                scores={"retrieval": good, "synthesis": good},
            )
        )
    write_decisions(store, decisions)
    write_feedback(store, feedback)
    batch = read_decisions(store, policy="gate", include_feedback=True)
    traces = traces_from_batch(batch, EXPERTS)
    assert len(traces.ids) == 120 and traces.skipped == 0
    np.testing.assert_allclose(traces.behaviour_logp, math.log(0.25))
    assert set(np.round(traces.rewards, 6)) == {0.25, 1.0}
    X = np.array([d.features for d in batch])
    policy = GatingPolicy(EXPERTS, in_dim=2, hidden=8, random_state=0)
    trainer = GatingTrainer(policy, GatingConfig(lr=0.03, epochs=15, batch_size=20))
    trainer.fit_logged(X, traces.actions, traces.rewards, traces.behaviour_logp)
    assert policy.probs(X).mean(axis=0).argmax() == EXPERTS.index("precedent")
    assert policy.probs(X)[:, 3].mean() > 0.6


def test_trace_with_unknown_expert_names_the_decision(store):
    d = Decision(
        policy="g",
        policy_version="0",
        kind="router",
        actions=("x",),
        action="x",
        action_dist=(1.0,),
        pscore=1.0,
    )
    write_decisions(store, [d])
    with pytest.raises(RouterInputError, match=rf"expert 'x' of decision {d.id} is not one of"):
        traces_from_batch(read_decisions(store), EXPERTS)


def test_save_load_gives_same_distributions_and_draws(tmp_path):
    policy = GatingPolicy(EXPERTS, in_dim=3, hidden=5, temperature=0.7, random_state=4)
    policy.act([0.1, 0.2, 0.3])
    policy.save(tmp_path)
    assert (tmp_path / "gating.safetensors").exists() and (tmp_path / "gating.json").exists()
    again = GatingPolicy.load(tmp_path)
    X = np.random.default_rng(0).normal(size=(6, 3))
    np.testing.assert_array_equal(policy.probs(X), again.probs(X))
    assert [policy.act(x).arm for x in X] == [again.act(x).arm for x in X]


@pytest.mark.parametrize(
    ("x", "message"),
    [([1.0, 2.0], r"expected shape \(n, 3\)"), ([1.0, float("nan"), 0.0], "must be finite")],
)
def test_gating_bad_context(x, message):
    with pytest.raises(RouterInputError, match=message):
        GatingPolicy(EXPERTS, in_dim=3).act(x)
