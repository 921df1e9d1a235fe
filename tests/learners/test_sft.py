"""SFT of a generator through TRL + peft on the tiny random SmolLM2-architecture model (seconds)."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
import yaml
from typer.testing import CliRunner

# tests/datasets/ (there is no tests/__init__.py) is collected as a top-level package named
# ``datasets`` and shadows Hugging Face's, which TRL needs: drop the shadow before importing it.
if "datasets" in sys.modules and not hasattr(sys.modules["datasets"], "Dataset"):
    del sys.modules["datasets"]
pytest.importorskip("datasets")
pytest.importorskip("trl")
pytest.importorskip("gguf")

from rewardloop.cli.main import app
from rewardloop.learners._trl import trainer_history
from rewardloop.learners.base import LearnerConfigError
from rewardloop.learners.sft import (
    ChatExamples,
    SFTConfig,
    SFTLearner,
    chat_examples_from_batch,
)
from rewardloop.loop.serving import load_policy
from rewardloop.policies.generator import GeneratorPolicy, classifier_messages
from rewardloop.store import Store, read_runs, write_decisions, write_feedback
from rewardloop.store.files import openai_rows
from rewardloop.types import Decision, DecisionBatch, Feedback

LABELS = ["HassTurnOn", "HassTurnOff"]


def _classifier(text: str, action: str, did: str) -> Decision:
    return Decision(
        policy="intent",
        policy_version="1",
        kind="classifier",
        actions=tuple(LABELS),
        action=action,
        action_dist=(0.5, 0.5),
        pscore=0.5,
        text=text,
        id=did,
    )


def _generator(text: str, answer: str, did: str, **metadata: object) -> Decision:
    return Decision(
        policy="gen",
        policy_version="1",
        kind="generator",
        actions=(answer,),
        action=answer,
        action_dist=(1.0,),
        pscore=1.0,
        text=text,
        id=did,
        metadata=metadata,
    )


def _batch() -> DecisionBatch:
    decisions = [
        _classifier("turn on the fan", "HassTurnOff", "c1"),  # corrected to HassTurnOn
        _classifier("switch off the tv", "HassTurnOff", "c2"),  # approved (rating 5 of 1..5)
        _classifier("lights please", "HassTurnOn", "c3"),  # no feedback: no example
        _generator("Where is Paris?", "In Spain.", "g1", passages=["Paris is in France."]),
        _generator("Say hi", "Hi!", "g2"),  # thumbs down: no example
    ]
    feedback = {
        "c1": [Feedback(decision_id="c1", kind="correction", label="HassTurnOn", authority=0.9)],
        "c2": [Feedback(decision_id="c2", kind="rating", value=5, scale=(1, 5), authority=0.5)],
        "g1": [Feedback(decision_id="g1", kind="correction", label="In France.", source="golden")],
        "g2": [Feedback(decision_id="g2", kind="rating", value=0, scale=(0, 1))],
    }
    return DecisionBatch(decisions, feedback)


def test_examples_from_the_store_match_the_openai_export_and_keep_authority() -> None:
    data = SFTLearner.data_from_batch(_batch(), None)
    assert data.decision_ids == ["c1", "c2", "g1"]
    assert data.completions == ["HassTurnOn", "HassTurnOff", "In France."]
    assert data.weights == [0.9, 0.5, 1.0]
    rows = data.rows("SYS")
    exported = list(openai_rows(_batch()))
    for row, export in zip(rows[:2], exported, strict=True):  # classifier rows are the export's rows
        assert row["prompt"] + row["completion"] == export["messages"]
    assert rows[2]["prompt"] == [
        {"role": "system", "content": "SYS\nUse these passages:\n[1] Paris is in France."},
        {"role": "user", "content": "Where is Paris?"},
    ]
    assert len(chat_examples_from_batch(DecisionBatch([]))) == 0


def test_from_pairs_builds_the_classifier_chat() -> None:
    data = ChatExamples.from_pairs(["turn on the fan"], ["HassTurnOn"], LABELS)
    assert data.rows("ignored")[0]["prompt"] == classifier_messages("turn on the fan", LABELS)


@pytest.mark.parametrize(
    ("values", "key"),
    [
        ({"lora_r": 0}, "lora_r"),
        ({"lora_dropout": 1.0}, "lora_dropout"),
        ({"target_modules": " "}, "target_modules"),
        ({"max_length": 4}, "max_length"),
        ({"max_steps": 0}, "max_steps"),
        ({"lr": 0}, "lr"),
    ],
)
def test_bad_config_names_the_key(values: dict, key: str) -> None:
    with pytest.raises(LearnerConfigError, match=f"^{key}"):
        SFTConfig.from_dict(values)


def test_fit_refuses_no_policy_and_no_examples() -> None:
    with pytest.raises(LearnerConfigError, match="policy"):
        SFTLearner().fit(ChatExamples.from_pairs(["a"], ["HassTurnOn"], LABELS))
    with pytest.raises(ValueError, match="no chat examples"):
        SFTLearner().fit(chat_examples_from_batch(DecisionBatch([])), policy=GeneratorPolicy.random(seed=0))


def test_sft_learns_the_labels_and_leaves_the_start_policy_unchanged() -> None:
    policy = GeneratorPolicy.random(seed=0, max_new_tokens=8)
    texts = ["turn on the fan", "switch off the tv", "fan on", "tv off"]
    labels = ["HassTurnOn", "HassTurnOff", "HassTurnOn", "HassTurnOff"]
    data = ChatExamples.from_pairs(texts, labels, LABELS)
    before = {k: v.clone() for k, v in policy.model.state_dict().items()}
    seen: list[int] = []
    learner = SFTLearner(
        SFTConfig(lr=3e-2, batch_size=4, max_steps=12, lora_r=8), progress=lambda s, n, m: seen.append(s)
    )
    scores_before = policy.score_labels(texts, LABELS)
    fitted = learner.fit(data, policy=policy)
    for k, v in policy.model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert fitted.version == "0+sft" and not any("lora" in k for k in fitted.model.state_dict())
    losses = [h["train/loss"] for h in learner.history_ if "train/loss" in h]
    assert len(losses) == 12 and np.mean(losses[-3:]) < np.mean(losses[:3])
    assert seen and max(seen) == 12
    # The right label's log-likelihood rose for every training text.
    gain = fitted.score_labels(texts, LABELS) - scores_before
    right = np.array([LABELS.index(lb) for lb in labels])
    assert (gain[np.arange(4), right] > 0).all()
    assert learner.n_examples_ == 4 and learner.seconds_ > 0


def test_trainer_history_is_namespaced() -> None:
    log = [{"loss": 1.5, "learning_rate": 0.01, "step": 1, "epoch": 0.5}, {"train_runtime": 3.0, "step": 2}]
    assert trainer_history(log, "train") == [{"train/loss": 1.5, "train/lr": 0.01, "train/step": 1.0}]


# ------------------------------------------------------------------- through `rewardloop train`


def _generator_project(tmp_path, start: str, **training: object) -> str:
    cfg = {
        "store": {"url": f"sqlite:///{tmp_path / 'gen.db'}"},
        "policies": [{"name": "gen", "kind": "generator"}],
        "training": {"output_dir": str(tmp_path / "artifacts"), "init_from": start, **training},
    }
    path = tmp_path / "rewardloop.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def test_rewardloop_train_fine_tunes_a_generator_from_its_logged_feedback(tmp_path) -> None:
    """`training.learner: sft` on a generator policy: read its decisions, fit, save, record the run."""
    start = GeneratorPolicy.random(seed=0, name="gen", version="1", max_new_tokens=4)
    start.save(tmp_path / "start")
    path = _generator_project(
        tmp_path, str(tmp_path / "start"), learner="sft", batch_size=2, options={"max_steps": 2, "lr": 1e-2}
    )
    store = Store.open(f"sqlite:///{tmp_path / 'gen.db'}")
    batch = _batch()
    write_decisions(store, [d for d in batch if d.kind == "generator"])
    write_feedback(store, [f for d in batch if d.kind == "generator" for f in batch.feedback.get(d.id, [])])
    result = CliRunner().invoke(app, ["train", "-c", path])
    assert result.exit_code == 0, result.output
    (run,) = read_runs(store)
    store.close()
    assert (run.learner, run.status, run.n_samples) == ("sft", "succeeded", 1)  # g1's correction
    assert {"train/loss", "train/lr"} <= set(run.metrics)
    fitted = load_policy("generator", run.artifact_path)
    assert isinstance(fitted, GeneratorPolicy) and fitted.version == run.id[:12]
    changed = [
        k for k, v in fitted.model.state_dict().items() if not torch.equal(v, start.model.state_dict()[k])
    ]
    assert any("q_proj" in k for k in changed)  # the LoRA update merged into the attention weights


@pytest.mark.parametrize(
    ("training", "message"),
    [
        (
            {"learner": "supervised"},
            "training.learner: 'supervised' trains classifier policies and 'gen' is a generator "
            "(learners of a generator: sft",
        ),
        ({"learner": "sft", "options": {"lora_r": 0}}, "training.options.lora_r: must be"),
        # `dpo` on a generator is the generator's DPO (the classifier's has no lora_r)
        ({"learner": "dpo", "options": {"lora_r": 0}}, "training.options.lora_r: must be"),
        ({"learner": "sft", "init_from": "nowhere"}, "training.init_from: cannot load a policy from"),
    ],
)
def test_bad_generator_training_configs_are_named(tmp_path, training: dict, message: str) -> None:
    path = _generator_project(tmp_path, str(tmp_path / "start"), **training)
    result = CliRunner().invoke(app, ["train", "-c", path])
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split())
