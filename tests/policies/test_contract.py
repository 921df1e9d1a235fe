"""The policy contract, for every kind: ``decide(context, rng)`` gives a normalised distribution and the
propensity of its chosen entry, the same seed gives the same decision, and ``load_policy`` round-trips."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from tests.rewards.test_embedding_reward_model import HashEncoder, _synthetic

from rewardloop.learners.bandits import ROUTERS
from rewardloop.loop.serving import exploration_for, load_policy, served_kind
from rewardloop.policies.abstain import AbstainGate, GatedClassifier, make_q_head
from rewardloop.policies.classifier import ClassifierPolicy, make_head
from rewardloop.policies.contract import (
    GATE_KEY,
    DecisionContext,
    Exploration,
    Policy,
    PolicyInputError,
)
from rewardloop.policies.gating import GatingPolicy
from rewardloop.policies.generator import GeneratorPolicy
from rewardloop.policies.multilabel import CategoryAndActions, MultiLabelPolicy
from rewardloop.policies.reranker import Reranker
from rewardloop.rewards import EmbeddingRewardModel

LABELS = ["a", "b", "c"]


class TableEncoder:
    def __init__(self, table):
        self.table = {k: np.asarray(v, dtype=np.float32) for k, v in table.items()}

    def encode(self, texts):
        return np.stack([self.table[t] for t in texts])


#: Identity-head logits: "sure" → p(a) ≈ 0.93, "unsure" → (0.55, 0.30, 0.15).
ENCODER = TableEncoder(
    {
        "sure": [3.0, 0.0, 0.0],
        "unsure": [math.log(0.55), math.log(0.30), math.log(0.15)],
        "warm-up": [0.0, 0.0, 0.0],
    }
)


def classifier(exploration=None) -> ClassifierPolicy:
    head = make_head(3, 3)
    with torch.no_grad():
        head.weight.copy_(torch.eye(3))
        head.bias.zero_()
    return ClassifierPolicy(LABELS, head=head, in_dim=3, encoder=ENCODER, exploration=exploration)


def threshold_gate(threshold: float = 0.7) -> AbstainGate:
    """Q(act) = 2·top − 2·threshold, Q(abstain) = 0: abstains exactly when top < threshold."""
    head = make_q_head(1)
    with torch.no_grad():
        head[0].weight.copy_(torch.tensor([[1.0, 0.0, 0.0]]))
        head[0].bias.zero_()
        head[2].weight.copy_(torch.tensor([[2.0], [0.0]]))
        head[2].bias.copy_(torch.tensor([-2.0 * threshold, 0.0]))
    return AbstainGate(head=head, hidden=1)


def set_policy(exploration=None) -> MultiLabelPolicy:
    """Identity head over three labels: "unsure" → p ≈ (0.60, 0.45, 0.29) against thresholds 0.5."""
    head = torch.nn.Linear(3, 3)
    with torch.no_grad():
        head.weight.copy_(torch.eye(3))
        head.bias.fill_(1.0)
    return MultiLabelPolicy(["x", "y", "z"], head=head, in_dim=3, encoder=ENCODER, exploration=exploration)


def _router(name: str):
    cls = ROUTERS[name]
    kwargs = {"dim": 3} if cls.needs_context else {}
    router = cls(["x", "y", "z"], random_state=0, **kwargs)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    return router.fit(X if cls.needs_context else None, rng.choice(["x", "y", "z"], size=40), rng.random(40))


def _reranker(tmp_path):
    prompts, answers, ratings = _synthetic(60)
    model = EmbeddingRewardModel(encoder=HashEncoder(), test_size=0).fit(prompts, answers, ratings)
    return Reranker(model)


def _fix_encoders(policy):
    """Give a loaded policy the tests' stand-in encoders (artifacts do not store them)."""
    if isinstance(policy, ClassifierPolicy):
        policy._encoder = ENCODER
    if isinstance(policy, GatedClassifier):
        policy.classifier._encoder = ENCODER
    if isinstance(policy, Reranker):
        policy.model.encoder = HashEncoder()
    if isinstance(policy, MultiLabelPolicy):
        policy._encoder = ENCODER
    if isinstance(policy, CategoryAndActions):
        policy.category._encoder = policy.actions._encoder = ENCODER
    return policy


FEATURES = DecisionContext(features=(0.3, -1.0, 0.5), text="route me", metadata={"user_id": "u1"})
CASES = {
    "classifier": ("classifier", lambda tmp: classifier(), DecisionContext(text="unsure")),
    "classifier-greedy": (
        "classifier",
        lambda tmp: classifier(Exploration("greedy")),
        DecisionContext(text="unsure"),
    ),
    "classifier-sample": (
        "classifier",
        lambda tmp: classifier(Exploration("sample", temperature=2.0)),
        DecisionContext(text="unsure"),
    ),
    **{f"router-{name}": ("router", lambda tmp, n=name: _router(n), FEATURES) for name in sorted(ROUTERS)},
    "router-gating": ("router", lambda tmp: GatingPolicy(["x", "y"], in_dim=3, random_state=0), FEATURES),
    "reranker": (
        "reranker",
        _reranker,
        DecisionContext(text="How was it?", candidates=("awful sad day", "lovely happy day", "fine day")),
    ),
    "abstain_gate": (
        "abstain_gate",
        lambda tmp: GatedClassifier(classifier(), threshold_gate()),
        DecisionContext(text="unsure"),
    ),
    "set": ("set", lambda tmp: set_policy(), DecisionContext(text="unsure", metadata={"user_id": "u1"})),
    "set-sample": ("set", lambda tmp: set_policy(Exploration("sample")), DecisionContext(text="unsure")),
    "category_actions": (
        "category_actions",
        lambda tmp: CategoryAndActions(classifier(), set_policy()),
        DecisionContext(text="unsure"),
    ),
    # The tiny random model of SmolLM2's architecture; a few tokens keep 20 decisions in seconds.
    "generator": (
        "generator",
        lambda tmp: GeneratorPolicy.random(seed=0, max_new_tokens=6),
        DecisionContext(text="When does the shop open?", metadata={"passages": ["It opens at 9."]}),
    ),
    "generator-sample": (
        "generator",
        lambda tmp: GeneratorPolicy.random(seed=0, mode="sample", temperature=1.5, max_new_tokens=6),
        DecisionContext(text="hello"),
    ),
}


def _same(d1, d2):
    return (d1.action, d1.action_dist, d1.pscore, d1.ranking, dict(d1.metadata), d1.chosen_set) == (
        d2.action,
        d2.action_dist,
        d2.pscore,
        d2.ranking,
        dict(d2.metadata),
        d2.chosen_set,
    )


def _same_loaded(kind, d1, d2):
    """``_same``; a generator reloaded from safetensors gives the same answer, with log-probabilities
    equal to float32 rounding (measured: 1e-8 relative), not bit for bit."""
    if kind != "generator":
        return _same(d1, d2)
    floats = ("sequence_logp", "sampling_logp")
    return (
        (d1.action, d1.actions, {k: v for k, v in d1.metadata.items() if k not in floats})
        == (d2.action, d2.actions, {k: v for k, v in d2.metadata.items() if k not in floats})
        and d1.pscore == pytest.approx(d2.pscore, rel=1e-5)
        and all(d1.metadata[k] == pytest.approx(d2.metadata[k], rel=1e-6) for k in floats)
    )


@pytest.mark.parametrize("case", sorted(CASES))
def test_decide_contract(case, tmp_path):
    kind, make, context = CASES[case]
    policy = make(tmp_path)
    assert isinstance(policy, Policy)
    decisions = [policy.decide(context, np.random.default_rng(seed)) for seed in range(20)]
    for d in decisions:
        assert math.fsum(d.action_dist) == pytest.approx(1.0, abs=1e-9)
        assert d.pscore == d.action_dist[d.actions.index(d.action)] and d.pscore > 0
        assert d.latency_ms is not None and d.latency_ms >= 0
        assert d.kind == ("classifier" if kind in ("abstain_gate", "category_actions") else kind)
        assert {k: d.metadata[k] for k in context.metadata} == dict(context.metadata)
    again = policy.decide(context, np.random.default_rng(7))
    assert _same(decisions[7], again)  # same seed, same decision

    folder = tmp_path / "artifact"
    policy.save(folder)
    loaded = _fix_encoders(load_policy(kind, folder, getattr(policy, "exploration", None)))
    assert type(loaded) is type(policy)
    assert _same_loaded(kind, loaded.decide(context, np.random.default_rng(7)), again)


def test_randomised_kinds_explore_with_the_rng():
    for case in ("classifier", "router-softmax", "router-lin_thompson", "reranker", "set"):
        _, make, context = CASES[case]
        policy = make(None)
        actions = {policy.decide(context, np.random.default_rng(s)).action for s in range(200)}
        assert len(actions) > 1, case


def test_classifier_serves_its_exploration_exactly():
    eps = classifier(Exploration("epsilon", 0.3)).decide(
        DecisionContext(text="unsure"), np.random.default_rng(0)
    )
    assert eps.action_dist == pytest.approx((0.8, 0.1, 0.1))
    assert eps.confidence == pytest.approx({"a": 0.55, "b": 0.30, "c": 0.15}[eps.action])
    tempered = classifier(Exploration("sample", temperature=0.5))
    d = tempered.decide(DecisionContext(text="unsure"), np.random.default_rng(0))
    p = np.array([0.55, 0.30, 0.15]) ** 2
    assert d.action_dist == pytest.approx(tuple(p / p.sum()))


def test_abstain_gate_marks_unsure_decisions_and_keeps_their_propensity():
    gated = GatedClassifier(classifier(Exploration("epsilon", 0.3)), threshold_gate(0.7))
    unsure = gated.decide(DecisionContext(text="unsure"), np.random.default_rng(0))
    sure = gated.decide(DecisionContext(text="sure"), np.random.default_rng(0))
    assert unsure.metadata[GATE_KEY] == "abstain" and sure.metadata[GATE_KEY] == "act"
    # Q(act) = 2·0.55 − 1.4 = −0.3 < Q(abstain) = 0
    assert unsure.metadata["gate_q"] == pytest.approx([-0.3, 0.0], abs=1e-6)
    assert unsure.action_dist == pytest.approx((0.8, 0.1, 0.1)) and unsure.pscore in (
        pytest.approx(0.8),
        pytest.approx(0.1),
    )


def test_served_kind_finds_the_gate_in_a_classifier_folder(tmp_path):
    classifier().save(tmp_path / "plain")
    GatedClassifier(classifier(), threshold_gate()).save(tmp_path / "gated")
    assert served_kind("classifier", tmp_path / "plain") == "classifier"
    assert served_kind("classifier", tmp_path / "gated") == "abstain_gate"
    assert served_kind("router", tmp_path / "gated") == "router"


@pytest.mark.parametrize(
    ("call", "field", "message"),
    [
        (
            lambda: classifier().decide(DecisionContext(), np.random.default_rng(0)),
            "text",
            "decides on `text`",
        ),
        (
            lambda: _router("linucb").decide(DecisionContext(text="x"), np.random.default_rng(0)),
            "features",
            "features",
        ),
        (
            lambda: _router("linucb").decide(DecisionContext(features=(1.0,)), np.random.default_rng(0)),
            "context",
            r"expected shape \(3,\)",
        ),
        (
            lambda: Reranker().decide(DecisionContext(text="q"), np.random.default_rng(0)),
            "candidates",
            "ranks",
        ),
        (lambda: DecisionContext(features=(1.0, math.nan)), "features", "finite"),
        (
            lambda: DecisionContext(candidates=("a", "b"), actions=("x",)),
            "actions",
            "1 names for 2 candidates",
        ),
        (lambda: Exploration("softmax"), "explore", "greedy, sample or epsilon"),
        (lambda: Exploration.from_options({"epsilon": 2}), "options.epsilon", r"in \[0, 1\]"),
        (lambda: Exploration.from_options({"temperature": 0}), "options.temperature", "> 0"),
        (lambda: load_policy("ranker", "."), "kind", "must be one of classifier, router, reranker"),
        (
            lambda: exploration_for("generator", {"temperature": 0.5}),
            "options.temperature",
            "a generator samples with the decoding saved with it",
        ),
    ],
)
def test_bad_input_names_the_field(call, field, message):
    with pytest.raises(PolicyInputError, match=message) as err:
        call()
    assert err.value.field == field


def test_unseeded_draws_are_refused():
    with pytest.raises(ValueError, match="rng: mode 'sample' draws labels"):
        classifier().decide_batch(["sure"], mode="sample")
