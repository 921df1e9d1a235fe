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

from rewardloop.learners.base import POSITIVE, DataSpec, LearnerConfig, hyperparameter
from rewardloop.learners.sft import (
    ChatExamples,
    LoRATrainerConfig,
    LoRATrainerLearner,
    columns,
    prompt_of,
    prompted_decisions,
)
from rewardloop.policies.generator import GeneratorPolicy
from rewardloop.types import Decision, DecisionBatch, Feedback

MIDDLE = "rating at the middle of its scale"


@dataclass
class KTOConfig(LoRATrainerConfig):
    """KTO with LoRA on a generator (lr as for DPO: below SFT's 1e-3; not tuned on SmolLM2)."""

    lr: float = hyperparameter(1e-4, "learning rate of the LoRA weights", POSITIVE)
    beta: float = hyperparameter(
        0.1, "KTO β: the KL penalty's strength (higher: stay nearer π_ref)", POSITIVE
    )
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

    def rows(self, system: str) -> list[dict[str, Any]]:
        """TRL's conversational unpaired rows: ``prompt``, ``completion``, ``label``."""
        return [
            {
                "prompt": self.messages(i, system),
                "completion": [{"role": "assistant", "content": answer}],
                "label": good,
            }
            for i, (answer, good) in enumerate(zip(self.completions, self.desirable, strict=True))
        ]


def _thumbs(d: Decision, f: Feedback) -> list[tuple[str, bool]] | None:
    """The (answer, desirable) examples feedback ``f`` on ``d`` gives; None: a rating at the middle."""
    if f.kind in ("rating", "implicit") and f.value is not None and f.scale is not None:
        middle = (f.scale[0] + f.scale[1]) / 2
        return None if f.value == middle else [(d.action, f.value > middle)]
    if f.kind == "correction" and f.label is not None:
        return [(f.label, True)] + ([(d.action, False)] if f.label != d.action else [])
    return []


def thumbs_from_batch(batch: DecisionBatch) -> ThumbsExamples:
    """The KTO examples of ``batch``'s feedback (see the module docstring)."""
    rows: list[tuple[Any, ...]] = []
    skipped: dict[str, int] = {}
    for d, feedback in prompted_decisions(batch, skipped):
        for f in feedback:
            examples = _thumbs(d, f)
            if examples is None:
                skipped[MIDDLE] = skipped.get(MIDDLE, 0) + 1
                continue
            rows.extend((*prompt_of(d), answer, f.authority, d.id, good) for answer, good in examples)
    systems, texts, metas, answers, weights, ids, desirable = columns(rows, 7)
    return ThumbsExamples(systems, texts, metas, answers, weights, ids, skipped, desirable)


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

    @staticmethod
    def data_from_batch(batch: DecisionBatch, spec: DataSpec | None = None, /) -> ThumbsExamples:
        """The examples of ``batch`` (:func:`thumbs_from_batch`); ``spec`` is not read."""
        return thumbs_from_batch(batch)

    def fit(self, data: ThumbsExamples, *, policy: GeneratorPolicy | None = None) -> GeneratorPolicy:
        """Train LoRA adapters with KTO on ``data`` from ``policy``; return the merged policy."""
        from trl.trainer.kto_config import KTOConfig as TRLKTOConfig
        from trl.trainer.kto_trainer import KTOTrainer

        cfg = self.config
        args = {
            "beta": cfg.beta,
            "desirable_weight": cfg.desirable_weight,
            "undesirable_weight": cfg.undesirable_weight,
        }
        return self._train(data, policy, (KTOTrainer, TRLKTOConfig, args))


__all__ = ["KTO", "KTOConfig", "ThumbsExamples", "thumbs_from_batch"]
