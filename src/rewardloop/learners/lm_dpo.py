"""Direct preference optimisation of a generator: TRL ``DPOTrainer`` with LoRA (peft).

The pairs come from the loop's feedback on generator (and classifier) decisions:

- ``preference`` feedback: ``preferred`` over ``rejected``, each the text of an answer or the id of a
  decision in the batch (standing for that decision's answer);
- ``correction`` feedback: the corrected answer over the decision's own, when they differ.

The prompt is the decision's logged context as it was served (a classifier decision's: the classify
instruction naming its labels). The loss is DPO's (Rafailov et al. 2023, eq. 7)::

    L = -log σ(β [log π(y_w|x) / π_ref(y_w|x) - log π(y_l|x) / π_ref(y_l|x)])

with π_ref the starting policy (the model with its LoRA adapters disabled). The adapters are merged
into the weights after training, as for SFT.

Rater authority is recorded per pair (``weights``); TRL's ``DPOTrainer`` takes no per-example loss
weights, so every pair counts once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from rewardloop.learners._trl import LoRATrainerLearner, TRLTrainer
from rewardloop.learners.base import LearnerConfig
from rewardloop.learners.sft import (
    ChatExamples,
    FeedbackExamples,
    ReferenceTrainerConfig,
    assistant,
    examples_from_feedback,
)
from rewardloop.types import Decision, DecisionBatch, Feedback


@dataclass
class GeneratorDPOConfig(ReferenceTrainerConfig):
    """DPO with LoRA on a generator (:class:`~rewardloop.learners.sft.ReferenceTrainerConfig`'s fields)."""


@dataclass(frozen=True)
class PreferenceExamples(ChatExamples):
    """Preference pairs on prompts: ``completions`` (the chosen answer) over ``rejected``.

    The fields of :class:`~rewardloop.learners.sft.ChatExamples` (``completions`` holds the chosen
    answers; ``weights`` the authority of the feedback that gave the pair) and ``rejected``.
    """

    rejected: list[str] = field(default_factory=list)
    extra_columns: ClassVar[tuple[str, ...]] = ("rejected",)
    empty_reason: ClassVar[str] = "no preference pairs (no preference or correction feedback in the window)"

    def answer_fields(self, i: int) -> dict[str, Any]:
        """Pair ``i``'s answers as TRL's preference rows hold them: ``chosen``, ``rejected``."""
        return {"chosen": assistant(self.completions[i]), "rejected": assistant(self.rejected[i])}

    @classmethod
    def from_batch(cls, batch: DecisionBatch) -> PreferenceExamples:
        """The pairs of ``batch`` (:func:`preference_examples_from_batch`)."""
        return preference_examples_from_batch(batch)


EQUAL = "preference between two equal answers"


def _pairs(answers: dict[str, str]) -> Callable[[Decision, Feedback], FeedbackExamples]:
    """The (chosen, rejected) pair that feedback ``f`` on ``d`` gives; ``answers``: each decision's."""

    def pair(d: Decision, f: Feedback) -> FeedbackExamples:
        if f.kind == "preference" and f.preferred is not None and f.rejected is not None:
            chosen, rejected = answers.get(f.preferred, f.preferred), answers.get(f.rejected, f.rejected)
            return EQUAL if chosen == rejected else [(chosen, rejected)]
        if f.kind == "correction" and f.label is not None and f.label != d.action:
            return [(f.label, d.action)]
        return []

    return pair


def preference_examples_from_batch(batch: DecisionBatch) -> PreferenceExamples:
    """The preference pairs of ``batch``'s feedback (see the module docstring), one per feedback row.

    A preference whose two sides name the same answer (two decisions that answered alike) gives no
    pair and is counted in ``skipped``.
    """
    return examples_from_feedback(batch, PreferenceExamples, _pairs({d.id: d.action for d in batch}))


class GeneratorDPO(LoRATrainerLearner):
    """Prefer the chosen answers over the rejected ones with DPO (TRL ``DPOTrainer``, LoRA, merged).

    Examples
    --------
    >>> policy = GeneratorPolicy.random(seed=0)                                     # doctest: +SKIP
    >>> data = preference_examples_from_batch(batch)                                # doctest: +SKIP
    >>> fitted = GeneratorDPO(GeneratorDPOConfig(max_steps=2)).fit(data, policy=policy)  # doctest: +SKIP
    """

    name: ClassVar[str] = "dpo"
    config_class: ClassVar[type[LearnerConfig]] = GeneratorDPOConfig
    data_class: ClassVar[type[ChatExamples]] = PreferenceExamples
    trl: ClassVar[TRLTrainer] = TRLTrainer("dpo", "DPOTrainer", "DPOConfig", passed=("beta",))


__all__ = [
    "GeneratorDPO",
    "GeneratorDPOConfig",
    "PreferenceExamples",
    "preference_examples_from_batch",
]
