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

import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from rewardloop.learners._common import lora_modules, peft_lora
from rewardloop.learners.base import (
    AT_LEAST_ONE,
    POSITIVE,
    UNIT_BELOW_ONE,
    Bound,
    DataSpec,
    LearnerConfig,
    LearnerConfigError,
    ProgressCallback,
    checked_config,
    hyperparameter,
)
from rewardloop.policies.generator import GeneratorPolicy, chat_messages, classifier_system
from rewardloop.store.files import known_label
from rewardloop.types import Decision, DecisionBatch, Feedback

Messages = list[dict[str, str]]


@dataclass
class LoRATrainerConfig(LearnerConfig):
    """The fields every TRL trainer of a generator here shares (SFT, DPO): steps, batches, LoRA.

    Defaults from the issue's SFT trial on SmolLM2 (lr 1e-3 learnt; 2e-4 barely moved)."""

    lr: float = hyperparameter(1e-3, "learning rate of the LoRA weights", POSITIVE)
    epochs: int = hyperparameter(1, "passes over the chat examples", AT_LEAST_ONE)
    batch_size: int = hyperparameter(16, "examples per optimisation step", AT_LEAST_ONE)
    max_steps: int = hyperparameter(-1, "stop after this many steps (-1: the epochs decide)")
    lora_r: int = hyperparameter(16, "LoRA rank", AT_LEAST_ONE)
    lora_alpha: int = hyperparameter(32, "LoRA scaling α (the update is scaled by α/r)", AT_LEAST_ONE)
    lora_dropout: float = hyperparameter(0.0, "dropout on the LoRA input", UNIT_BELOW_ONE)
    target_modules: str = hyperparameter(
        "q_proj,k_proj,v_proj,o_proj", "comma-separated module names given adapters"
    )
    max_length: int = hyperparameter(512, "longest prompt + answer in tokens (longer: cut)", Bound(8.0))
    warmup_ratio: float = hyperparameter(0.0, "share of steps with a linear warm-up", UNIT_BELOW_ONE)

    def validate(self) -> None:
        super().validate()
        if not lora_modules(self.target_modules):
            raise LearnerConfigError("target_modules: name at least one module")
        if self.max_steps == 0 or self.max_steps < -1:
            raise LearnerConfigError(f"max_steps: must be -1 or >= 1, got {self.max_steps}")


@dataclass
class SFTConfig(LoRATrainerConfig):
    """SFT with LoRA (:class:`LoRATrainerConfig`'s fields, nothing more)."""


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

    def rows(self, system: str) -> list[dict[str, Messages]]:
        """The rows the trainer takes: :meth:`conversations`."""
        return self.conversations(system)

    def conversations(self, system: str) -> list[dict[str, Messages]]:
        """TRL's conversational prompt/completion rows."""
        return [
            {"prompt": self.messages(i, system), "completion": [{"role": "assistant", "content": answer}]}
            for i, answer in enumerate(self.completions)
        ]


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


def trainer_history(log_history: Sequence[Mapping[str, Any]], prefix: str) -> list[dict[str, float]]:
    """TRL's ``state.log_history`` as namespaced ``history_`` rows (``train/loss``, ``train/lr``...)."""
    rename = {
        "loss": "loss",
        "learning_rate": "lr",
        "grad_norm": "grad_norm",
        "mean_token_accuracy": "token_accuracy",
        "rewards/margins": "reward_margin",  # DPO: β · (chosen - rejected log-ratio), batch mean
        "rewards/accuracies": "reward_accuracy",  # DPO: share of pairs with a positive margin
    }
    rows: list[dict[str, float]] = []
    for entry in log_history:
        row = {f"{prefix}/{rename[k]}": float(v) for k, v in entry.items() if k in rename}
        if row:
            row[f"{prefix}/step"] = float(entry.get("step", len(rows) + 1))
            rows.append(row)
    return rows


def lora_config(cfg: Any) -> Any:
    """The peft LoRA config (a causal LM's) of a learner config with ``lora_r``, ``lora_alpha``... fields."""
    return peft_lora(cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout, cfg.target_modules, "CAUSAL_LM")


def trl_args(cfg: Any, output_dir: str) -> dict[str, Any]:
    """The TrainingArguments fields every TRL trainer here shares: CPU, seeded, no saving or reporting."""
    return {
        "output_dir": output_dir,
        "learning_rate": cfg.lr,
        "num_train_epochs": cfg.epochs,
        "max_steps": cfg.max_steps,
        "per_device_train_batch_size": cfg.batch_size,
        "warmup_steps": cfg.warmup_ratio,  # a float in [0, 1) is a share of the steps
        "seed": cfg.seed,
        "data_seed": cfg.seed,
        "logging_steps": 1,
        "save_strategy": "no",
        "report_to": "none",
        "use_cpu": True,
        "disable_tqdm": True,
        "dataloader_num_workers": 0,
        "bf16": False,  # TRL turns bf16 on where it can; on a CPU it is several times slower than fp32
        "fp16": False,
    }


class ProgressBridge:
    """A transformers ``TrainerCallback`` that calls a :data:`ProgressCallback` after each step."""

    def __new__(cls, progress: ProgressCallback) -> Any:
        from transformers import TrainerCallback

        class _Bridge(TrainerCallback):
            def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
                metrics = {k: float(v) for k, v in (logs or {}).items() if isinstance(v, int | float)}
                progress(int(state.global_step), int(state.max_steps), metrics)

        return _Bridge()


def merged_policy(policy: GeneratorPolicy, model: Any, version_suffix: str) -> GeneratorPolicy:
    """``policy`` with the trained peft ``model``'s adapters merged into plain weights."""
    merged = model.merge_and_unload() if hasattr(model, "merge_and_unload") else model
    return GeneratorPolicy(
        merged.eval(),
        policy.tokenizer,
        **{**policy.options(), "version": f"{policy.version}+{version_suffix}"},
    )


def train_lora(
    method: str,
    trainer_cls: Any,
    args_cls: Any,
    args: Mapping[str, Any],
    rows: list[dict[str, Any]],
    policy: GeneratorPolicy,
    cfg: LoRATrainerConfig,
    progress: ProgressCallback | None,
) -> tuple[GeneratorPolicy, list[dict[str, float]], float]:
    """Train LoRA adapters on a copy of ``policy``'s model with a TRL trainer on ``rows``; merge them.

    Returns the fitted policy (version ``<parent>+<method>``), the namespaced history and the
    seconds it took. With peft, TRL's preference trainers use the model with its adapters disabled as
    the frozen reference: no second copy of the model is held.
    """
    import tempfile

    from datasets import Dataset

    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="rewardloop-trl-") as tmp:
        trainer = trainer_cls(
            model=_trainable_copy(policy.model),
            args=args_cls(**trl_args(cfg, tmp), max_length=cfg.max_length, **args),
            train_dataset=Dataset.from_list(rows),
            processing_class=policy.tokenizer,
            peft_config=lora_config(cfg),
            callbacks=[ProgressBridge(progress)] if progress else None,
        )
        trainer.train()
    history = trainer_history(trainer.state.log_history, "train")
    return merged_policy(policy, trainer.model, method), history, time.perf_counter() - start


class LoRATrainerLearner:
    """What the generator learners share: built from their config, they train LoRA adapters on a copy
    of the given generator through a TRL trainer (:func:`train_lora`) and read texts themselves.

    After ``fit``: ``history_``, ``seconds_`` and ``n_examples_``.
    """

    name: ClassVar[str]
    config_class: ClassVar[type[LearnerConfig]]
    data_class: ClassVar[type[ChatExamples]]  # what ``fit`` takes (exactly: the subclasses differ)
    needs_rewards: ClassVar[bool] = False
    needs_policy: ClassVar[bool] = True
    reads_texts: ClassVar[bool] = True

    def __init__(self, config: LearnerConfig | None = None, progress: ProgressCallback | None = None) -> None:
        self.config: Any = checked_config(config, self.config_class)  # an instance of config_class
        self.progress = progress
        self.history_: list[dict[str, float]] = []

    def _train(
        self, data: ChatExamples, policy: GeneratorPolicy | None, trainer: tuple[Any, Any, dict[str, Any]]
    ) -> GeneratorPolicy:
        """Check ``policy`` and ``data``, then :func:`train_lora` with ``trainer`` = (class, args class,
        its own args) on ``data.rows(policy.system)``."""
        if policy is None:
            raise LearnerConfigError(f"policy: {self.name} improves a generator; give training.init_from")
        if type(data) is not self.data_class:
            raise LearnerConfigError(
                f"data: {self.name.upper()} takes {self.data_class.__name__}, got {type(data).__name__}"
            )
        if len(data) == 0:
            raise ValueError(f"{self.name.upper()}: {data.empty_reason}")
        trainer_cls, args_cls, args = trainer
        fitted, self.history_, self.seconds_ = train_lora(
            self.name,
            trainer_cls,
            args_cls,
            args,
            data.rows(policy.system),
            policy,
            self.config,
            self.progress,
        )
        self.n_examples_ = len(data)
        return fitted


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

    @staticmethod
    def data_from_batch(batch: DecisionBatch, spec: DataSpec | None = None, /) -> ChatExamples:
        """The chat examples of ``batch`` (:func:`chat_examples_from_batch`); ``spec`` is not read."""
        return chat_examples_from_batch(batch)

    def fit(self, data: ChatExamples, *, policy: GeneratorPolicy | None = None) -> GeneratorPolicy:
        """Train LoRA adapters on ``data`` from ``policy``'s weights; return the merged, fine-tuned policy."""
        from trl.trainer.sft_config import SFTConfig as TRLSFTConfig
        from trl.trainer.sft_trainer import SFTTrainer

        return self._train(
            data, policy, (SFTTrainer, TRLSFTConfig, {"completion_only_loss": True, "packing": False})
        )


def _trainable_copy(model: Any) -> Any:
    """A deep copy of ``model`` to train, so the starting policy is never changed."""
    import copy

    return copy.deepcopy(model).train()


__all__ = [
    "ChatExamples",
    "LoRATrainerConfig",
    "LoRATrainerLearner",
    "SFTConfig",
    "SFTLearner",
    "chat_examples_from_batch",
    "lora_config",
    "train_lora",
    "trl_args",
]
