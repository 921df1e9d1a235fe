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

from dataclasses import dataclass, field
from typing import Any, ClassVar

from rewardloop.learners.base import POSITIVE, DataSpec, LearnerConfig, hyperparameter
from rewardloop.learners.sft import (
    ChatExamples,
    LoRATrainerConfig,
    LoRATrainerLearner,
    Messages,
    columns,
    prompt_of,
    prompted_decisions,
)
from rewardloop.policies.generator import GeneratorPolicy
from rewardloop.types import Decision, DecisionBatch, Feedback


@dataclass
class GeneratorDPOConfig(LoRATrainerConfig):
    """DPO with LoRA on a generator. lr below SFT's 1e-3: DPO's margin grows fast (not tuned on SmolLM2)."""

    lr: float = hyperparameter(1e-4, "learning rate of the LoRA weights", POSITIVE)
    beta: float = hyperparameter(
        0.1, "DPO β: the KL penalty's strength (higher: stay nearer π_ref)", POSITIVE
    )


@dataclass(frozen=True)
class PreferenceExamples(ChatExamples):
    """Preference pairs on prompts: ``completions`` (the chosen answer) over ``rejected``.

    The fields of :class:`~rewardloop.learners.sft.ChatExamples` (``completions`` holds the chosen
    answers; ``weights`` the authority of the feedback that gave the pair) and ``rejected``.
    """

    rejected: list[str] = field(default_factory=list)
    extra_columns: ClassVar[tuple[str, ...]] = ("rejected",)
    empty_reason: ClassVar[str] = "no preference pairs (no preference or correction feedback in the window)"

    def rows(self, system: str) -> list[dict[str, Messages]]:
        """TRL's conversational preference rows: ``prompt``, ``chosen``, ``rejected``."""
        return [
            {
                "prompt": self.messages(i, system),
                "chosen": [{"role": "assistant", "content": chosen}],
                "rejected": [{"role": "assistant", "content": rejected}],
            }
            for i, (chosen, rejected) in enumerate(zip(self.completions, self.rejected, strict=True))
        ]


def _pair(d: Decision, f: Feedback, answers: dict[str, str]) -> tuple[str, str] | None:
    """(chosen, rejected) answers that feedback ``f`` on ``d`` gives, or None."""
    if f.kind == "preference" and f.preferred is not None and f.rejected is not None:
        return answers.get(f.preferred, f.preferred), answers.get(f.rejected, f.rejected)
    if f.kind == "correction" and f.label is not None and f.label != d.action:
        return f.label, d.action
    return None


def preference_examples_from_batch(batch: DecisionBatch) -> PreferenceExamples:
    """The preference pairs of ``batch``'s feedback (see the module docstring), one per feedback row.

    A preference whose two sides name the same answer (two decisions that answered alike) gives no
    pair and is counted in ``skipped``.
    """
    answers = {d.id: d.action for d in batch}
    rows: list[tuple[Any, ...]] = []
    skipped: dict[str, int] = {}
    for d, feedback in prompted_decisions(batch, skipped):
        for f in feedback:
            pair = _pair(d, f, answers)
            if pair is None:
                continue
            if pair[0] == pair[1]:
                reason = "preference between two equal answers"
                skipped[reason] = skipped.get(reason, 0) + 1
                continue
            rows.append((*prompt_of(d), pair[0], f.authority, d.id, pair[1]))
    systems, texts, metas, chosen, weights, ids, rejected = columns(rows, 7)
    return PreferenceExamples(systems, texts, metas, chosen, weights, ids, skipped, rejected)


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

    @staticmethod
    def data_from_batch(batch: DecisionBatch, spec: DataSpec | None = None, /) -> PreferenceExamples:
        """The pairs of ``batch`` (:func:`preference_examples_from_batch`); ``spec`` is not read."""
        return preference_examples_from_batch(batch)

    def fit(self, data: PreferenceExamples, *, policy: GeneratorPolicy | None = None) -> GeneratorPolicy:
        """Train LoRA adapters with DPO on ``data`` from ``policy``; return the merged policy."""
        from trl.trainer.dpo_config import DPOConfig
        from trl.trainer.dpo_trainer import DPOTrainer

        return self._train(data, policy, (DPOTrainer, DPOConfig, {"beta": self.config.beta}))


__all__ = [
    "GeneratorDPO",
    "GeneratorDPOConfig",
    "PreferenceExamples",
    "preference_examples_from_batch",
]
