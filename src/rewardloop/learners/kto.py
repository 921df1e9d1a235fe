"""Kahneman–Tversky optimisation of a generator on thumbs: TRL ``KTOTrainer`` with LoRA (peft).

KTO (Ethayarajh et al. 2024) learns from unpaired answers, each marked desirable or undesirable: the
loop's thumbs. One example per feedback row, on the decision's prompt as served:

- ``rating`` / ``implicit`` feedback: the logged answer, desirable above the middle of the scale,
  undesirable below it (at the middle: skipped and counted);
- ``correction`` feedback: the corrected answer desirable, and the logged answer undesirable when it
  differs.

The reference policy is the starting one (adapters disabled); the adapters are merged after training.
Rater authority is recorded per example (``weights``); TRL's ``KTOTrainer`` weighs only the two
classes (``desirable_weight``, ``undesirable_weight``), not examples, so every example counts once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from rewardloop.learners._trl import LoRATrainerLearner, TRLTrainer
from rewardloop.learners.base import POSITIVE, LearnerConfig, hyperparameter
from rewardloop.learners.sft import (
    ChatExamples,
    FeedbackExamples,
    ReferenceTrainerConfig,
    examples_from_feedback,
)
from rewardloop.types import Decision, DecisionBatch, Feedback

MIDDLE = "rating at the middle of its scale"


@dataclass
class KTOConfig(ReferenceTrainerConfig):
    """KTO with LoRA on a generator: :class:`~rewardloop.learners.sft.ReferenceTrainerConfig`'s fields
    and the two classes' loss weights."""

    desirable_weight: float = hyperparameter(
        1.0, "loss weight of the desirable (thumbs-up) answers", POSITIVE
    )
    undesirable_weight: float = hyperparameter(1.0, "loss weight of the undesirable answers", POSITIVE)


@dataclass(frozen=True)
class ThumbsExamples(ChatExamples):
    """Unpaired answers on prompts (``completions``), each ``desirable`` or not."""

    desirable: list[bool] = field(default_factory=list)
    extra_columns: ClassVar[tuple[str, ...]] = ("desirable",)
    empty_reason: ClassVar[str] = "no thumbs (no rating, implicit signal or correction in the window)"

    def answer_fields(self, i: int) -> dict[str, Any]:
        """Example ``i`` as TRL's conversational unpaired rows hold it: ``completion``, ``label``."""
        return {**super().answer_fields(i), "label": self.desirable[i]}

    @classmethod
    def from_batch(cls, batch: DecisionBatch) -> ThumbsExamples:
        """The thumbs of ``batch`` (:func:`thumbs_from_batch`)."""
        return thumbs_from_batch(batch)


def _thumbs(d: Decision, f: Feedback) -> FeedbackExamples:
    """The (answer, desirable) examples feedback ``f`` on ``d`` gives (a rating at the middle: none)."""
    if f.kind in ("rating", "implicit") and f.value is not None and f.scale is not None:
        middle = (f.scale[0] + f.scale[1]) / 2
        return MIDDLE if f.value == middle else [(d.action, f.value > middle)]
    if f.kind == "correction" and f.label is not None:
        return [(f.label, True)] + ([(d.action, False)] if f.label != d.action else [])
    return []


def thumbs_from_batch(batch: DecisionBatch) -> ThumbsExamples:
    """The KTO examples of ``batch``'s feedback (see the module docstring)."""
    return examples_from_feedback(batch, ThumbsExamples, _thumbs)


class KTO(LoRATrainerLearner):
    """Raise the desirable answers and lower the undesirable ones with KTO (TRL ``KTOTrainer``, LoRA).

    Examples
    --------
    >>> policy = GeneratorPolicy.random(seed=0)                           # doctest: +SKIP
    >>> fitted = KTO(KTOConfig(max_steps=2)).fit(thumbs_from_batch(batch), policy=policy)  # doctest: +SKIP
    """

    name: ClassVar[str] = "kto"
    config_class: ClassVar[type[LearnerConfig]] = KTOConfig
    data_class: ClassVar[type[ChatExamples]] = ThumbsExamples
    trl: ClassVar[TRLTrainer] = TRLTrainer(
        "kto", "KTOTrainer", "KTOConfig", passed=("beta", "desirable_weight", "undesirable_weight")
    )


__all__ = ["KTO", "KTOConfig", "ThumbsExamples", "thumbs_from_batch"]
