"""Supervised fine-tuning of a generator on the loop's chat examples: TRL ``SFTTrainer`` with LoRA (peft).

The examples are what the store's ``openai`` chat export holds — decisions whose right answer the
feedback tells (:func:`rewardloop.store.files.known_label`: a reviewer's correction, a positive rating
or implicit signal on the logged answer, a golden example) — for classifier decisions (the generative
classifier: the answer is the label's name) and for generator decisions (the answer is the corrected or
approved text). The loss is on the answer's tokens only (TRL's completion-only loss on
prompt/completion examples). After training the LoRA adapters are merged into the weights, so the
fitted :class:`~rewardloop.policies.generator.GeneratorPolicy` needs neither peft nor the adapters.

Rater authority: kept per example in :attr:`ChatExamples.weights`, but TRL's ``SFTTrainer`` has no
per-example loss weights, so it does not reach the loss (every example counts once).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from rewardloop.learners._trl import LoRAAdapterConfig, LoRATrainerLearner, TRLTrainer
from rewardloop.learners.base import (
    AT_LEAST_ONE,
    POSITIVE,
    UNIT_BELOW_ONE,
    Bound,
    LearnerConfigError,
    hyperparameter,
)
from rewardloop.policies.generator import chat_messages, classifier_system
from rewardloop.store.files import known_label
from rewardloop.types import Decision, DecisionBatch, Feedback

if TYPE_CHECKING:  # annotations only
    from rewardloop.learners.base import LearnerConfig

Messages = list[dict[str, str]]


@dataclass
class LoRATrainerConfig(LoRAAdapterConfig):
    """The fields every TRL trainer of a generator here shares (SFT, DPO, KTO): the adapters, steps, batches.

    Defaults from the issue's SFT trial on SmolLM2 (lr 1e-3 learnt; 2e-4 barely moved)."""

    lr: float = hyperparameter(1e-3, "learning rate of the LoRA weights", POSITIVE)
    epochs: int = hyperparameter(1, "passes over the chat examples", AT_LEAST_ONE)
    batch_size: int = hyperparameter(16, "examples per optimisation step", AT_LEAST_ONE)
    max_steps: int = hyperparameter(-1, "stop after this many steps (-1: the epochs decide)")
    max_length: int = hyperparameter(512, "longest prompt + answer in tokens (longer: cut)", Bound(8.0))
    warmup_ratio: float = hyperparameter(0.0, "share of steps with a linear warm-up", UNIT_BELOW_ONE)

    def validate(self) -> None:
        super().validate()
        if self.max_steps == 0 or self.max_steps < -1:
            raise LearnerConfigError(f"max_steps: must be -1 or >= 1, got {self.max_steps}")


@dataclass
class SFTConfig(LoRATrainerConfig):
    """SFT with LoRA (:class:`LoRATrainerConfig`'s fields, nothing more)."""


@dataclass
class ReferenceTrainerConfig(LoRATrainerConfig):
    """The fields of the trainers that keep the policy near a frozen reference π_ref (DPO, KTO).

    lr below SFT's 1e-3: their implicit reward margin grows fast (not tuned on SmolLM2)."""

    lr: float = hyperparameter(1e-4, "learning rate of the LoRA weights", POSITIVE)
    beta: float = hyperparameter(0.1, "β: the KL penalty's strength (higher: stay nearer π_ref)", POSITIVE)


@dataclass(frozen=True)
class ChatExamples:
    """Chat fine-tuning examples: a context and the answer to learn.

    Attributes
    ----------
    systems : list of (str or None)
        The system message of each example; None: the trained policy's own (generator decisions).
        Classifier examples carry the classify instruction naming the labels.
    texts : list of str
        The user's request.
    metadata : list of mapping
        The logged context's metadata (``passages`` reach the prompt as for serving).
    completions : list of str
        The answer to learn.
    weights : list of float
        The authority of the feedback that named the answer (recorded; SFTTrainer does not weight).
    decision_ids : list of str
    skipped : dict of str to int
        Decisions with feedback that gave no example, by reason (recorded with the TrainingRun).
    """

    systems: list[str | None]
    texts: list[str]
    metadata: list[Mapping[str, Any]]
    completions: list[str]
    weights: list[float]
    decision_ids: list[str]
    skipped: dict[str, int] = field(default_factory=dict)

    #: The per-example fields of a subclass (``rejected``, ``desirable``), checked for length too.
    extra_columns: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self) -> None:
        names = ("systems", "texts", "metadata", "completions", "weights", *self.extra_columns)
        lengths = {len(getattr(self, f)) for f in names}
        if lengths != {len(self.decision_ids)}:
            raise ValueError(f"{type(self).__name__}: the fields differ in length")

    def __len__(self) -> int:
        return len(self.texts)

    @classmethod
    def from_pairs(
        cls, texts: Sequence[str], labels: Sequence[str], label_set: Sequence[str]
    ) -> ChatExamples:
        """The generative classifier's examples for labelled texts (golden examples, a seed set)."""
        n = len(texts)
        system = classifier_system(label_set)
        ids = [f"pair-{i}" for i in range(n)]
        return cls([system] * n, list(texts), [{}] * n, list(labels), [1.0] * n, ids)

    def messages(self, i: int, system: str) -> Messages:
        """Example ``i``'s prompt as served (``system`` when it has none of its own)."""
        return chat_messages(self.systems[i] or system, self.texts[i], self.metadata[i])

    #: The error's reason when there is no example.
    empty_reason: ClassVar[str] = "no chat examples (no decision has a correction, approval or golden answer)"

    def rows(self, system: str) -> list[dict[str, Any]]:
        """TRL's conversational rows: ``prompt`` (as served) and :meth:`answer_fields`."""
        return [{"prompt": self.messages(i, system), **self.answer_fields(i)} for i in range(len(self))]

    def answer_fields(self, i: int) -> dict[str, Any]:
        """Example ``i``'s answer as a prompt/completion row holds it: ``completion``."""
        return {"completion": assistant(self.completions[i])}

    @classmethod
    def from_batch(cls, batch: DecisionBatch) -> ChatExamples:
        """The examples of ``batch`` (:func:`chat_examples_from_batch`)."""
        return chat_examples_from_batch(batch)


def assistant(answer: str) -> Messages:
    """``answer`` as TRL's conversational completion: one assistant message."""
    return [{"role": "assistant", "content": answer}]


def _authority(d: Decision, feedback: list[Feedback], answer: str) -> float:
    """The highest authority among the feedback that names ``answer`` (a correction or an approval)."""
    weights = [
        f.authority
        for f in feedback
        if (f.kind == "correction" and f.label == answer)
        or (f.kind in ("rating", "implicit") and d.action == answer)
    ]
    return max(weights, default=1.0)


Row = tuple[str | None, str, Mapping[str, Any], str, float, str]


def prompted_decisions(
    batch: DecisionBatch, skipped: dict[str, int]
) -> Iterator[tuple[Decision, list[Feedback]]]:
    """The classifier and generator decisions of ``batch`` with their feedback; those with feedback but
    no text are counted in ``skipped`` (a chat example needs the request)."""
    for d in batch:
        if d.kind not in ("classifier", "generator"):
            continue
        feedback = batch.feedback.get(d.id, [])
        if d.text:
            yield d, feedback
        elif feedback:
            skipped["decision has no text"] = skipped.get("decision has no text", 0) + 1


def prompt_of(d: Decision) -> tuple[str | None, str, Mapping[str, Any]]:
    """A decision's prompt as served: (system or None for the policy's own, text, metadata).

    A classifier decision gets the classify instruction naming its labels (the ``openai`` export's)."""
    if d.kind == "classifier":
        return classifier_system(d.actions), d.text or "", {}
    return None, d.text or "", d.metadata


def columns(rows: Sequence[tuple[Any, ...]], width: int) -> list[list[Any]]:
    """``rows`` as ``width`` lists, one per field (empty lists when there are no rows)."""
    return [list(c) for c in zip(*rows, strict=True)] if rows else [[] for _ in range(width)]


#: What one feedback row on a decision gives: (answer, the data class's extra column) examples, or
#: the reason it gives none (counted in ``skipped``).
FeedbackExamples = list[tuple[str, Any]] | str
E = TypeVar("E", bound="ChatExamples")


def examples_from_feedback(
    batch: DecisionBatch, data_class: type[E], examples: Callable[[Decision, Feedback], FeedbackExamples]
) -> E:
    """One ``data_class`` (with one extra column) of ``batch``: for each feedback row of each prompted
    decision, ``examples(decision, feedback)`` on the decision's prompt as served, with the feedback's
    authority as the weight. The preference and thumbs learners' examples."""
    rows: list[tuple[Any, ...]] = []
    skipped: dict[str, int] = {}
    for d, feedback in prompted_decisions(batch, skipped):
        for f in feedback:
            got = examples(d, f)
            if isinstance(got, str):
                skipped[got] = skipped.get(got, 0) + 1
                continue
            rows.extend((*prompt_of(d), answer, f.authority, d.id, extra) for answer, extra in got)
    *fields, extra = columns(rows, 7)
    return data_class(*fields, skipped, extra)  # type: ignore[arg-type, call-arg]


def chat_examples_from_batch(batch: DecisionBatch) -> ChatExamples:
    """The examples of the ``openai`` export (classifier decisions), plus generator decisions.

    A classifier example is the export's row (:func:`rewardloop.store.files.openai_rows`); a generator
    example is the logged context (passages too) answered by the corrected or approved text.
    """
    rows: list[Row] = []
    skipped: dict[str, int] = {}
    for d, feedback in prompted_decisions(batch, skipped):
        answer = known_label(d, feedback)
        if answer is not None:
            rows.append((*prompt_of(d), answer, _authority(d, feedback, answer), d.id))
    systems, texts, metas, answers, weights, ids = columns(rows, 6)
    return ChatExamples(systems, texts, metas, answers, weights, ids, skipped)


class SFTLearner(LoRATrainerLearner):
    """Fine-tune a generator on chat examples with LoRA (TRL ``SFTTrainer``, completion-only loss).

    Examples
    --------
    >>> policy = GeneratorPolicy.random(seed=0)                                      # doctest: +SKIP
    >>> data = ChatExamples.from_pairs(["turn on the fan"], ["HassTurnOn"], ["HassTurnOn", "HassTurnOff"])
    >>> fitted = SFTLearner(SFTConfig(max_steps=2)).fit(data, policy=policy)       # doctest: +SKIP
    """

    name: ClassVar[str] = "sft"
    config_class: ClassVar[type[LearnerConfig]] = SFTConfig
    data_class: ClassVar[type[ChatExamples]] = ChatExamples
    trl: ClassVar[TRLTrainer] = TRLTrainer(
        "sft", "SFTTrainer", "SFTConfig", {"completion_only_loss": True, "packing": False}
    )


__all__ = [
    "ChatExamples",
    "LoRAAdapterConfig",
    "LoRATrainerConfig",
    "ReferenceTrainerConfig",
    "SFTConfig",
    "SFTLearner",
    "assistant",
    "chat_examples_from_batch",
    "examples_from_feedback",
]
