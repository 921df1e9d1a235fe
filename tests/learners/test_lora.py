"""LoRA learner: tiny fine-tunes (default run), and one that must beat the frozen head (slow, ~4 min)."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from rewardloop.learners import LEARNERS, LearnerConfigError
from rewardloop.learners.lora import LoRAConfig, LoRALearner
from rewardloop.policies.classifier import ClassifierPolicy

TEXTS = [
    "turn on the light",
    "lights on please",
    "switch the lamp on",
    "turn off the light",
    "lights off",
    "switch the lamp off",
    "what time is it",
    "tell me the time",
    "current time please",
]
LABELS = ["on"] * 3 + ["off"] * 3 + ["time"] * 3
TINY = LoRAConfig(epochs=2, r=2, batch_size=9, lr=5e-3, seed=0)


@pytest.fixture(scope="module")
def encoder():
    torch.set_num_threads(1)
    from rewardloop.encoders import default_encoder

    return default_encoder()


@pytest.fixture(scope="module")
def tiny_fit(encoder):
    learner = LoRALearner(TINY)
    return learner, learner.fit(TEXTS, LABELS)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"r": 0}, "r: must be >= 1"),
        ({"alpha": 0}, "alpha: must be > 0"),
        ({"head_lr": -1.0}, "head_lr: must be > 0"),
        ({"target_modules": " , "}, "target_modules: name at least one layer"),
        ({"lora_dropout": 1.0}, "lora_dropout: must be in [0, 1)"),
        ({"rank": 4}, "rank: not a field of LoRAConfig"),
        # the fields LoRA shares with the supervised learner (LabelConfig) are checked the same way
        ({"golden_weight": -1.0}, "golden_weight: must be >= 0"),
        ({"hidden": -1}, "hidden: must be >= 0"),
        ({"class_weight": "auto"}, "class_weight: must be none or balanced"),
    ],
)
def test_config_errors_name_the_key(values, message):
    with pytest.raises(LearnerConfigError) as err:
        LoRAConfig.from_dict(values)
    assert message in str(err.value)
    assert LEARNERS["lora"] is LoRALearner


def test_tiny_fit_merges_the_adapters_and_leaves_the_shared_encoder_alone(tiny_fit, encoder):
    learner, policy = tiny_fit
    assert policy.backend == "finetuned" and policy.labels == ["off", "on", "time"]
    names = [n for n, _ in policy.encoder.model.named_modules()]
    assert not any("lora" in n for n in names)  # a plain BertModel: merged
    q_tuned = policy.encoder.model.encoder.layer[0].attention.self.query.weight
    q_base = encoder.model.encoder.layer[0].attention.self.query.weight
    assert not torch.equal(q_tuned, q_base)  # the merged update W + (α/r)·B·A changed W
    assert policy.encoder is not encoder
    assert learner.n_trainable_ < sum(p.numel() for p in encoder.model.parameters()) / 50
    assert learner.loss_history_[-1] < learner.loss_history_[0]


def test_saved_policy_loads_without_peft(tiny_fit, tmp_path, monkeypatch):
    _, policy = tiny_fit
    policy.save(tmp_path / "p")
    assert sorted(f.name for f in (tmp_path / "p").iterdir()) == [
        "encoder.safetensors",
        "head.safetensors",
        "policy.json",
    ]
    monkeypatch.setitem(sys.modules, "peft", None)  # importing peft now fails
    loaded = ClassifierPolicy.load(tmp_path / "p")
    assert loaded.backend == "finetuned"
    np.testing.assert_allclose(loaded.predict_proba(TEXTS), policy.predict_proba(TEXTS), atol=1e-6)


def test_same_seed_same_result(tiny_fit):
    _, policy = tiny_fit
    again = LoRALearner(TINY).fit(TEXTS, LABELS)
    np.testing.assert_allclose(again.predict_proba(TEXTS), policy.predict_proba(TEXTS), atol=1e-6)


def test_refuses_embeddings():
    with pytest.raises(ValueError, match="X: LoRA fine-tuning reads texts"):
        LoRALearner(TINY).fit(np.zeros((2, 384), np.float32), ["a", "b"])


@pytest.mark.slow
def test_lora_beats_the_frozen_head_on_real_intents(encoder):
    from rewardloop.datasets.intents import load_intents
    from rewardloop.learners.supervised import SupervisedConfig, SupervisedLearner

    data = load_intents(seed=0, seed_per_intent=10, golden_per_intent=10)
    y_gold = data.golden.y(data.labels)
    head = SupervisedLearner(SupervisedConfig()).fit(
        data.seed_set.texts, data.seed_set.intents, labels=data.labels
    )
    frozen = (head.predict_proba(data.golden.texts).argmax(1) == y_gold).mean()
    tuned = LoRALearner(LoRAConfig(epochs=4, seed=0)).fit(
        data.seed_set.texts, data.seed_set.intents, policy=head
    )
    acc = (tuned.predict_proba(data.golden.texts).argmax(1) == y_gold).mean()
    assert acc > frozen + 0.02, (acc, frozen)  # measured: 0.844 → 0.903 (seed 0, 10 texts per intent)
