"""The TRL plumbing the generator learners share (SFT, DPO, KTO): one way to build a TRL trainer from a
learner config, train LoRA adapters on a copy of a generator with it, read its history and merge.

Each learner names its TRL trainer (:class:`TRLTrainer`), its config and the examples it takes; the
rest is here, in :class:`LoRATrainerLearner` and :func:`train_lora`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from rewardloop.learners._common import lora_modules, peft_lora
from rewardloop.learners.base import (
    AT_LEAST_ONE,
    UNIT_BELOW_ONE,
    LearnerConfig,
    LearnerConfigError,
    checked_config,
    hyperparameter,
)
from rewardloop.policies.generator import GeneratorPolicy

if TYPE_CHECKING:  # annotations only
    from rewardloop.learners.base import DataSpec, ProgressCallback
    from rewardloop.learners.sft import ChatExamples, LoRATrainerConfig
    from rewardloop.types import DecisionBatch


@dataclass
class LoRAAdapterConfig(LearnerConfig):
    """The LoRA adapters (peft) a generator learner trains: rank, scaling, dropout, adapted modules."""

    lora_r: int = hyperparameter(16, "LoRA rank", AT_LEAST_ONE)
    lora_alpha: int = hyperparameter(32, "LoRA scaling α (the update is scaled by α/r)", AT_LEAST_ONE)
    lora_dropout: float = hyperparameter(0.0, "dropout on the LoRA input", UNIT_BELOW_ONE)
    target_modules: str = hyperparameter("q_proj,k_proj,v_proj,o_proj", "modules given adapters (a,b,...)")

    def validate(self) -> None:
        super().validate()
        if not lora_modules(self.target_modules):
            raise LearnerConfigError("target_modules: name at least one module")


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


@dataclass(frozen=True)
class TRLTrainer:
    """The TRL trainer a generator learner runs: ``trl.trainer.<module>_trainer.<trainer>`` with its
    ``trl.trainer.<module>_config.<config>`` arguments, ``fixed`` ones and the learner config's
    fields named in ``passed`` (by the same name)."""

    module: str
    trainer: str
    config: str
    fixed: Mapping[str, Any] = field(default_factory=dict)
    passed: tuple[str, ...] = ()

    def classes(self) -> tuple[Any, Any]:
        """(the trainer class, its arguments class), imported now (TRL is heavy to import)."""
        import importlib

        trainer = importlib.import_module(f"trl.trainer.{self.module}_trainer")
        args = importlib.import_module(f"trl.trainer.{self.module}_config")
        return getattr(trainer, self.trainer), getattr(args, self.config)

    def args(self, cfg: Any, output_dir: str) -> dict[str, Any]:
        """The arguments-class fields: :func:`trl_args`, ``max_length``, ``fixed`` and ``passed``."""
        own = {name: getattr(cfg, name) for name in self.passed}
        return {**trl_args(cfg, output_dir), "max_length": cfg.max_length, **self.fixed, **own}


def train_lora(
    method: str,
    trl: TRLTrainer,
    rows: list[dict[str, Any]],
    policy: GeneratorPolicy,
    cfg: LoRATrainerConfig,
    progress: ProgressCallback | None,
) -> tuple[GeneratorPolicy, list[dict[str, float]], float]:
    """Train LoRA adapters on a copy of ``policy``'s model with the TRL trainer ``trl`` on ``rows``;
    merge them.

    Returns the fitted policy (version ``<parent>+<method>``), the namespaced history and the
    seconds it took. With peft, TRL's preference trainers use the model with its adapters disabled as
    the frozen reference: no second copy of the model is held.
    """
    import tempfile

    from datasets import Dataset

    start = time.perf_counter()
    trainer_cls, args_cls = trl.classes()
    with tempfile.TemporaryDirectory(prefix="rewardloop-trl-") as tmp:
        trainer = trainer_cls(
            model=_trainable_copy(policy.model),
            args=args_cls(**trl.args(cfg, tmp)),
            train_dataset=Dataset.from_list(rows),
            processing_class=policy.tokenizer,
            peft_config=lora_config(cfg),
            callbacks=[ProgressBridge(progress)] if progress else None,
        )
        trainer.train()
    history = trainer_history(trainer.state.log_history, "train")
    return merged_policy(policy, trainer.model, method), history, time.perf_counter() - start


class LoRATrainerLearner:
    """The generator learners (SFT, DPO, KTO): each names its config, the examples it takes and the TRL
    trainer it runs (:class:`TRLTrainer`); ``fit`` trains LoRA adapters on a copy of the given
    generator through that trainer (:func:`train_lora`) and merges them. They read texts themselves.

    After ``fit``: ``history_``, ``seconds_`` and ``n_examples_``.
    """

    name: ClassVar[str]
    config_class: ClassVar[type[LearnerConfig]]
    data_class: ClassVar[type[ChatExamples]]  # what ``fit`` takes (exactly: the subclasses differ)
    trl: ClassVar[TRLTrainer]
    needs_rewards: ClassVar[bool] = False
    needs_policy: ClassVar[bool] = True
    reads_texts: ClassVar[bool] = True

    def __init__(self, config: LearnerConfig | None = None, progress: ProgressCallback | None = None) -> None:
        self.config: Any = checked_config(config, self.config_class)  # an instance of config_class
        self.progress = progress
        self.history_: list[dict[str, float]] = []

    @classmethod
    def data_from_batch(cls, batch: DecisionBatch, spec: DataSpec | None = None, /) -> ChatExamples:
        """The examples of ``batch`` (the data class's ``from_batch``); ``spec`` is not read."""
        return cls.data_class.from_batch(batch)

    def fit(self, data: ChatExamples, *, policy: GeneratorPolicy | None = None) -> GeneratorPolicy:
        """Train LoRA adapters on ``data`` (an instance of exactly :attr:`data_class`) from ``policy``'s
        weights; return the merged policy, version ``<parent>+<name>`` (``policy`` is not changed)."""
        if policy is None:
            raise LearnerConfigError(f"policy: {self.name} improves a generator; give training.init_from")
        if type(data) is not self.data_class:
            raise LearnerConfigError(
                f"data: {self.name.upper()} takes {self.data_class.__name__}, got {type(data).__name__}"
            )
        if len(data) == 0:
            raise ValueError(f"{self.name.upper()}: {data.empty_reason}")
        rows = data.rows(policy.system)
        fitted, self.history_, self.seconds_ = train_lora(
            self.name, self.trl, rows, policy, self.config, self.progress
        )
        self.n_examples_ = len(data)
        return fitted


def _trainable_copy(model: Any) -> Any:
    """A deep copy of ``model`` to train, so the starting policy is never changed."""
    import copy

    return copy.deepcopy(model).train()


__all__ = [
    "LoRAAdapterConfig",
    "LoRATrainerLearner",
    "TRLTrainer",
    "lora_config",
    "train_lora",
    "trainer_history",
    "trl_args",
]
