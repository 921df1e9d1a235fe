"""DPO of a generator through TRL + peft on the tiny random SmolLM2-architecture model: the pairs the
loop's feedback gives, bad input refused by name, and "it learns" (the preferred answer's log-probability
margin over the rejected one grows)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rewardloop.learners import GENERATOR_LEARNERS
from rewardloop.learners.base import LearnerConfigError
from rewardloop.learners.lm_dpo import (
    GeneratorDPO,
    GeneratorDPOConfig,
    PreferenceExamples,
    preference_examples_from_batch,
)
from rewardloop.learners.sft import ChatExamples
from rewardloop.policies.generator import GeneratorPolicy, classifier_system
from rewardloop.types import DecisionBatch, Feedback

from .test_sft import LABELS, _classifier, _generator  # importing test_sft also unshadows `datasets`


def _batch() -> DecisionBatch:
    decisions = [
        _generator("Where is Paris?", "In Spain.", "g1", passages=["Paris is in France."]),
        _generator("Where is Paris?", "In France.", "g2"),
        _generator("Say hi", "Hi!", "g3"),
        _generator("Say hi", "Hi!", "g4"),
        _classifier("turn on the fan", "HassTurnOff", "c1"),
    ]
    feedback = {
        # g2's answer (named by its decision id) over a text; a correction; a thumbs up gives no pair
        "g1": [
            Feedback(
                decision_id="g1", kind="preference", preferred="g2", rejected="In Spain.", authority=0.7
            ),
            Feedback(decision_id="g1", kind="rating", value=1, scale=(0, 1)),
        ],
        "g3": [Feedback(decision_id="g3", kind="preference", preferred="g3", rejected="g4")],  # equal answers
        "c1": [Feedback(decision_id="c1", kind="correction", label="HassTurnOn", source="golden")],
    }
    return DecisionBatch(decisions, feedback)


def test_pairs_from_preferences_and_corrections_keep_the_served_prompt_and_authority() -> None:
    data = GeneratorDPO.data_from_batch(_batch())
    assert data.decision_ids == ["g1", "c1"]
    assert list(zip(data.completions, data.rejected, strict=True)) == [
        ("In France.", "In Spain."),
        ("HassTurnOn", "HassTurnOff"),
    ]
    assert data.weights == [0.7, 1.0]
    assert data.skipped == {"preference between two equal answers": 1}
    rows = data.rows("SYS")
    assert rows[0]["prompt"][0]["content"] == "SYS\nUse these passages:\n[1] Paris is in France."
    assert rows[1]["prompt"][0]["content"] == classifier_system(LABELS)
    assert rows[1]["chosen"] == [{"role": "assistant", "content": "HassTurnOn"}]
    assert rows[1]["rejected"] == [{"role": "assistant", "content": "HassTurnOff"}]
    assert GENERATOR_LEARNERS["dpo"] is GeneratorDPO


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: GeneratorDPOConfig.from_dict({"beta": 0}), LearnerConfigError, "^beta"),
        (lambda: GeneratorDPOConfig.from_dict({"lora_r": 0}), LearnerConfigError, "^lora_r"),
        (
            lambda: GeneratorDPO().fit(preference_examples_from_batch(_batch())),
            LearnerConfigError,
            "policy: dpo improves a generator; give training.init_from",
        ),
        (
            lambda: GeneratorDPO().fit(
                preference_examples_from_batch(DecisionBatch([])), policy=GeneratorPolicy.random(seed=0)
            ),
            ValueError,
            "DPO: no preference pairs",
        ),
        (
            lambda: GeneratorDPO().fit(
                ChatExamples.from_pairs(["a"], ["HassTurnOn"], LABELS),  # type: ignore[arg-type]
                policy=GeneratorPolicy.random(seed=0),
            ),
            LearnerConfigError,
            "data: DPO takes PreferenceExamples, got ChatExamples",
        ),
        (
            lambda: PreferenceExamples([None], ["x"], [{}], ["a"], [1.0], ["d"], {}, []),
            ValueError,
            "the fields differ in length",
        ),
    ],
)
def test_bad_input_is_refused_by_name(call, error, message) -> None:
    with pytest.raises(error, match=message):
        call()


def test_dpo_widens_the_margin_of_the_preferred_answer_and_leaves_the_start_policy_unchanged() -> None:
    torch.set_num_threads(1)
    texts = ["turn on the fan", "switch on the tv", "fan on", "lights on please"]
    decisions = [_classifier(t, "HassTurnOff", f"c{i}") for i, t in enumerate(texts)]
    feedback = {d.id: [Feedback(decision_id=d.id, kind="correction", label="HassTurnOn")] for d in decisions}
    data = preference_examples_from_batch(DecisionBatch(decisions, feedback))
    policy = GeneratorPolicy.random(seed=0, max_new_tokens=4)
    before = {k: v.clone() for k, v in policy.model.state_dict().items()}

    def margin(p: GeneratorPolicy) -> np.ndarray:  # log π(HassTurnOn | x) - log π(HassTurnOff | x)
        scores = p.score_labels(texts, LABELS)
        return scores[:, 0] - scores[:, 1]

    margin_before = margin(policy)
    learner = GeneratorDPO(GeneratorDPOConfig(lr=1e-2, batch_size=4, max_steps=4, lora_r=8))
    fitted = learner.fit(data, policy=policy)
    assert (margin(fitted) > margin_before + 0.5).all()
    for k, v in policy.model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert fitted.version == "0+dpo" and learner.n_examples_ == 4
    losses = [h["train/loss"] for h in learner.history_]
    assert len(losses) == 4 and losses[-1] < losses[0]
    assert all("train/reward_margin" in h for h in learner.history_)
