"""KTO of a generator on thumbs through TRL + peft on the tiny random model: the examples the loop's
feedback gives, bad input refused by name, and "it learns" (the thumbed-up label's margin grows)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rewardloop.learners import GENERATOR_LEARNERS
from rewardloop.learners.base import LearnerConfigError
from rewardloop.learners.kto import KTO, KTOConfig, ThumbsExamples, thumbs_from_batch
from rewardloop.learners.lm_dpo import PreferenceExamples
from rewardloop.policies.generator import GeneratorPolicy
from rewardloop.types import DecisionBatch, Feedback

from .test_sft import LABELS, _classifier, _generator  # importing test_sft also unshadows `datasets`


def test_thumbs_and_corrections_become_desirable_and_undesirable_answers() -> None:
    decisions = [
        _generator("Where is Paris?", "In Spain.", "g1"),
        _generator("Say hi", "Hi!", "g2"),
        _generator("Say bye", "Bye.", "g3"),
        _classifier("turn on the fan", "HassTurnOn", "c1"),
    ]
    feedback = {
        "g1": [Feedback(decision_id="g1", kind="correction", label="In France.", authority=0.8)],
        "g2": [
            Feedback(decision_id="g2", kind="rating", value=5, scale=(1, 5)),
            Feedback(decision_id="g2", kind="rating", value=3, scale=(1, 5)),  # the middle: skipped
        ],
        "g3": [Feedback(decision_id="g3", kind="implicit", value=0)],
        "c1": [Feedback(decision_id="c1", kind="preference", preferred="HassTurnOn", rejected="HassTurnOff")],
    }
    data = KTO.data_from_batch(DecisionBatch(decisions, feedback))
    assert list(zip(data.decision_ids, data.completions, data.desirable, strict=True)) == [
        ("g1", "In France.", True),
        ("g1", "In Spain.", False),
        ("g2", "Hi!", True),
        ("g3", "Bye.", False),
    ]
    assert data.weights == [0.8, 0.8, 1.0, 1.0]
    assert data.skipped == {"rating at the middle of its scale": 1}
    assert data.rows("SYS")[1]["completion"] == [{"role": "assistant", "content": "In Spain."}]
    assert data.rows("SYS")[1]["label"] is False
    assert GENERATOR_LEARNERS["kto"] is KTO


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: KTOConfig.from_dict({"undesirable_weight": 0}), LearnerConfigError, "^undesirable_weight"),
        (
            lambda: KTO().fit(thumbs_from_batch(DecisionBatch([]))),
            LearnerConfigError,
            "policy: kto improves a generator",
        ),
        (
            lambda: KTO().fit(thumbs_from_batch(DecisionBatch([])), policy=GeneratorPolicy.random(seed=0)),
            ValueError,
            "KTO: no thumbs",
        ),
        (
            lambda: KTO().fit(
                PreferenceExamples([], [], [], [], [], []),  # type: ignore[arg-type]
                policy=GeneratorPolicy.random(seed=0),
            ),
            LearnerConfigError,
            "data: KTO takes ThumbsExamples, got PreferenceExamples",
        ),
        (
            lambda: ThumbsExamples([None], ["x"], [{}], ["a"], [1.0], ["d"], {}, []),
            ValueError,
            "the fields differ in length",
        ),
    ],
)
def test_bad_input_is_refused_by_name(call, error, message) -> None:
    with pytest.raises(error, match=message):
        call()


def test_kto_raises_the_thumbed_up_answer_over_the_thumbed_down_one() -> None:
    torch.set_num_threads(1)
    texts = ["turn on the fan", "switch on the tv", "fan on", "lights on please"]
    decisions = [_classifier(t, LABELS[i % 2], f"c{i}") for i, t in enumerate(texts)]
    thumbs = {  # HassTurnOn answers thumbed up, HassTurnOff ones down
        d.id: [Feedback(decision_id=d.id, kind="rating", value=float(d.action == "HassTurnOn"), scale=(0, 1))]
        for d in decisions
    }
    policy = GeneratorPolicy.random(seed=0, max_new_tokens=4)

    def margin(p: GeneratorPolicy) -> np.ndarray:  # log π(HassTurnOn | x) - log π(HassTurnOff | x)
        scores = p.score_labels(texts, LABELS)
        return scores[:, 0] - scores[:, 1]

    before = margin(policy)
    learner = KTO(KTOConfig(lr=1e-2, batch_size=4, max_steps=4, lora_r=8))
    fitted = learner.fit(thumbs_from_batch(DecisionBatch(decisions, thumbs)), policy=policy)
    assert (margin(fitted) > before + 0.5).all()
    assert np.array_equal(margin(policy), before)  # the start policy is not changed
    assert fitted.version == "0+kto" and learner.n_examples_ == 4
    losses = [h["train/loss"] for h in learner.history_]
    assert len(losses) == 4 and losses[-1] < losses[0]
