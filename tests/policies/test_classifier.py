"""ClassifierPolicy: exact temperature scaling, exploration modes, artifacts, and bad inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rewardloop.policies.classifier import ClassifierPolicy, make_head
from rewardloop.policies.contract import DecisionContext, Exploration


class TableEncoder:
    """A stand-in encoder for unit tests: a fixed vector per known text (no model load)."""

    def __init__(self, table: dict[str, list[float]]) -> None:
        self.table = {k: np.asarray(v, dtype=np.float32) for k, v in table.items()}

    def encode(self, texts):
        return np.stack([self.table[t] for t in texts])


def identity_policy(labels=("a", "b"), encoder=None, temperature=1.0) -> ClassifierPolicy:
    """A policy whose logits are its 2-d input: exact hand-computed probabilities."""
    head = make_head(2, 2)
    with torch.no_grad():
        head.weight.copy_(torch.eye(2))
        head.bias.zero_()
    return ClassifierPolicy(list(labels), head=head, in_dim=2, encoder=encoder, temperature=temperature)


# ------------------------------------------------------------------------------ temperature scaling


def test_fit_temperature_exact_on_a_hand_computed_case():
    # Logits (1, 0) on 4 rows, 3 labelled a and 1 labelled b: the NLL is minimal where
    # p(a) = sigmoid(1/T) = 3/4, i.e. T = 1 / ln 3.
    policy = identity_policy()
    X = np.array([[1.0, 0.0]] * 4, dtype=np.float32)
    policy.fit_temperature(X, ["a", "a", "a", "b"])
    assert policy.temperature == pytest.approx(1 / math.log(3), abs=1e-5)
    before, after = policy.temperature_nll_
    assert before == pytest.approx(-(3 * math.log(1 / (1 + math.exp(-1))) + math.log(1 / (1 + math.e))) / 4)
    assert after == pytest.approx(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25)), abs=1e-9)
    assert policy.predict_proba_embeddings(X[:1])[0, 0] == pytest.approx(0.75, abs=1e-5)


def test_fit_temperature_keeps_the_argmax_and_accepts_indices():
    policy = identity_policy()
    X = np.array([[2.0, 0.0], [0.0, 1.0], [3.0, 1.0]], dtype=np.float32)
    before = policy.predict_proba_embeddings(X).argmax(axis=1)
    policy.fit_temperature(X, [0, 1, 1])
    assert (policy.predict_proba_embeddings(X).argmax(axis=1) == before).all()


@pytest.mark.parametrize(
    ("X", "y", "kwargs", "message"),
    [
        ([[1.0, 0.0]], ["a", "b"], {}, "y_val: 2 labels for 1 samples"),
        ([[1.0, 0.0]], ["c"], {}, "y: row 0: 'c' is not a label"),
        ([[1.0, 0.0]], [5], {}, "y: row 0: label index 5 not in [0, 2)"),
        ([[1.0, 0.0, 0.0]], ["a"], {}, "X: expected embeddings of shape (n, 2)"),
        ([[1.0, 0.0]], ["a"], {"bounds": (2.0, 1.0)}, "bounds: need 0 < low < high"),
    ],
)
def test_fit_temperature_bad_inputs(X, y, kwargs, message):
    policy = identity_policy()
    with pytest.raises(ValueError) as err:
        policy.fit_temperature(np.asarray(X, dtype=np.float32), y, **kwargs)
    assert message in str(err.value)
    assert policy.temperature == 1.0  # nothing changed


# ---------------------------------------------------------------------------------------- decisions


def test_decide_modes_log_exact_distributions_and_propensities():
    enc = TableEncoder({"x": [math.log(3), 0.0]})  # p = (3/4, 1/4)
    policy = identity_policy(encoder=enc)
    greedy = policy.decide_batch(["x"])[0]
    assert (greedy.action, greedy.action_dist, greedy.pscore) == ("a", (1.0, 0.0), 1.0)
    assert greedy.confidence == pytest.approx(0.75)
    eps = policy.decide_batch(["x"], mode="epsilon", epsilon=0.2, rng=np.random.default_rng(0))[0]
    assert eps.action_dist == pytest.approx((0.9, 0.1))
    assert eps.pscore == pytest.approx(0.9 if eps.action == "a" else 0.1)
    draws = policy.decide_batch(["x"] * 4000, mode="sample", rng=np.random.default_rng(1))
    assert draws[0].action_dist == pytest.approx((0.75, 0.25))
    share_a = np.mean([d.action == "a" for d in draws])
    assert abs(share_a - 0.75) < 0.03  # 4000 draws: sd ≈ 0.007
    assert all(d.pscore == pytest.approx(0.75 if d.action == "a" else 0.25) for d in draws)


def test_decide_is_reproducible_with_a_seeded_rng():
    enc = TableEncoder({"x": [0.1, 0.0]})
    policy = identity_policy(encoder=enc)
    a = [d.action for d in policy.decide_batch(["x"] * 50, mode="sample", rng=np.random.default_rng(7))]
    b = [d.action for d in policy.decide_batch(["x"] * 50, mode="sample", rng=np.random.default_rng(7))]
    assert a == b and len(set(a)) == 2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"labels": ["a"]}, "labels: a classifier needs at least 2 labels"),
        ({"labels": ["a", "a"]}, "labels: must not repeat"),
        ({"labels": ["a", "b"], "temperature": 0.0}, "temperature: must be > 0"),
        ({"labels": ["a", "b"], "backend": "gpu"}, "backend: must be one of embedding, finetuned"),
        ({"labels": ["a", "b"], "backend": "finetuned"}, "encoder: backend 'finetuned' needs its own"),
    ],
)
def test_constructor_refuses_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ClassifierPolicy(**kwargs)


def test_decide_refuses_bad_mode_and_epsilon():
    policy = identity_policy(encoder=TableEncoder({"x": [0.0, 1.0]}))
    with pytest.raises(ValueError, match="mode: must be greedy, sample or epsilon"):
        policy.decide_batch(["x"], mode="softmax", rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"epsilon: must be in \[0, 1\]"):
        policy.decide_batch(["x"], mode="epsilon", epsilon=1.5, rng=np.random.default_rng(0))


# ---------------------------------------------------------------------------------------- artifacts


def test_save_load_roundtrip_is_exact_and_pickle_free(tmp_path):
    torch.manual_seed(0)
    policy = ClassifierPolicy(["x", "y", "z"], hidden=8, in_dim=4, temperature=1.7, name="p", version="3")
    X = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    policy.save(tmp_path / "p")
    assert sorted(f.name for f in (tmp_path / "p").iterdir()) == ["head.safetensors", "policy.json"]
    loaded = ClassifierPolicy.load(tmp_path / "p", encoder=TableEncoder({}))
    assert (loaded.labels, loaded.hidden, loaded.temperature, loaded.name, loaded.version) == (
        ["x", "y", "z"],
        8,
        1.7,
        "p",
        "3",
    )
    np.testing.assert_array_equal(loaded.predict_proba_embeddings(X), policy.predict_proba_embeddings(X))
    assert loaded.head_fitted


def test_load_refuses_what_is_not_a_classifier(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no policy\.json"):
        ClassifierPolicy.load(tmp_path)
    (tmp_path / "policy.json").write_text('{"kind": "router"}')
    with pytest.raises(ValueError, match="kind is 'router', not a classifier"):
        ClassifierPolicy.load(tmp_path)


# ------------------------------------------------------------------------------------ real encoder


def test_real_encoder_decision_is_complete(encoder):
    policy = ClassifierPolicy(["on", "off"], encoder=encoder, exploration=Exploration("sample"))
    d = policy.decide(DecisionContext(text="turn on the kitchen lights"), np.random.default_rng(0))
    assert d.kind == "classifier" and d.text == "turn on the kitchen lights"
    assert sum(d.action_dist) == pytest.approx(1.0) and d.latency_ms is not None and d.latency_ms > 0
    assert policy.embed(["turn on the kitchen lights"]).shape == (1, 384)


def test_length_sorted_golden_batches_give_the_one_by_one_scores():
    """``rewardloop eval`` batches the golden texts by length: each text's probabilities are those of
    scoring it alone (to float rounding), in the golden set's order."""
    from rewardloop.encoders import MiniLMEncoder
    from rewardloop.evaluation.golden import GoldenItem, GoldenSet
    from rewardloop.evaluation.metrics import evaluate_golden

    torch.manual_seed(0)
    texts = ["turn off the bedroom lamp please", "hi", "what's the weather", "", "set a timer for 5 min"]
    policy = ClassifierPolicy(["a", "b", "c"], encoder=MiniLMEncoder(cache_size=0))
    alone = np.concatenate([policy.predict_proba([t]) for t in texts])
    golden = GoldenSet([GoldenItem(str(i), t, "a") for i, t in enumerate(texts)])
    report = evaluate_golden(policy, golden, batch_size=2)
    conf = [item["confidence"] for item in report.items]
    assert conf == pytest.approx(alone.max(axis=1).tolist(), abs=1e-6)
    assert [item["predicted"] for item in report.items] == [policy.labels[j] for j in alone.argmax(axis=1)]
