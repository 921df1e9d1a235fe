"""Small machinery the learners share (Stable-Baselines3's ``common/``, kept thin): the base class of
the learners that improve a policy (check the data against the policy, then train), copying the
policy so that ``fit`` never mutates its input, seeded module construction, and the one minibatch
loop every gradient learner runs (:class:`MinibatchSGD`: shuffle, step, record, report,
checkpoint). The math lives in ``_math.py``.
"""

from __future__ import annotations

import copy
import typing
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence, Sized
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np
import torch
from torch import nn

from rewardloop.learners.base import (
    BanditData,
    C,
    DataSpec,
    GradientClipConfig,
    LearnerConfig,
    ProgressCallback,
    bandit_data_from_batch,
    require_policy,
)
from rewardloop.policies.classifier import Backend, ClassifierPolicy, make_head
from rewardloop.types import DecisionBatch
from rewardloop.types.history import MetricsRecorder

#: What a :class:`PolicyLearner` trains on (BanditData, PreferencePairs) and returns (a
#: ClassifierPolicy; DQN: its AbstainGate).
D = TypeVar("D")
P = TypeVar("P")

#: The data of a :class:`MinibatchLearner` (rows: ``len``) and its config (with ``max_grad_norm``).
SD = TypeVar("SD", bound=Sized)
GC = TypeVar("GC", bound=GradientClipConfig)

#: ``batch_loss(idx) -> (loss, metrics)``: the loss of the minibatch of rows ``idx`` and its metrics.
BatchLoss = Callable[[torch.Tensor], tuple[torch.Tensor, dict[str, float]]]


class LearnerDataError(ValueError):
    """The training data does not fit the learner or the policy; the message names the field and row."""


class PolicyLearner(ABC, typing.Generic[C, D, P]):
    """What the learners that improve a trained classifier share (the RL learners, DPO): SB3's thin
    base. :meth:`fit` checks the config, requires the policy to improve and checks the data against
    it; then the learner's :meth:`_fit` trains.

    Parameters
    ----------
    config : the learner's config class, optional
        None: its defaults.
    progress : callable, optional
        Called as ``progress(step, total_steps, metrics)`` after each step; one given to ``fit`` wins.

    Attributes
    ----------
    policy_ : ClassifierPolicy
        The fitted policy, also returned by :meth:`fit` (DQN: ``gate_``, its :class:`AbstainGate`).
    history_ : list of dict
        Metrics of each optimisation step, namespaced (``train/loss``, ``time/epoch``...).
    """

    name: ClassVar[str]
    config_class: ClassVar[type[LearnerConfig]]
    needs_policy: ClassVar[bool] = True
    reads_texts: ClassVar[bool] = False

    def __init__(self, config: C | None = None, progress: ProgressCallback | None = None) -> None:
        self.config: C = config if config is not None else typing.cast(C, self.config_class())
        self.progress = progress

    def fit(
        self,
        data: D,
        policy: ClassifierPolicy | None = None,
        progress: ProgressCallback | None = None,
    ) -> P:
        """Learn from ``data``; return the fitted policy (``policy`` is not changed)."""
        self.config.validate()
        checked: ClassifierPolicy = require_policy(policy, self.name)
        self._check_data(data, checked)
        return self._fit(data, checked, progress if progress is not None else self.progress)

    @abstractmethod
    def _check_data(self, data: D, policy: ClassifierPolicy) -> None:
        """Refuse data the learner cannot use with ``policy``, naming the field."""

    @abstractmethod
    def _fit(self, data: D, policy: ClassifierPolicy, progress: ProgressCallback | None) -> P:
        """Train on checked ``data``, starting from ``policy``; set the fitted attributes."""


class BanditLearner(PolicyLearner[C, BanditData, P]):
    """The RL learners: they improve a trained classifier from the compiled rewards of its logged
    decisions (:class:`BanditData`), embedded by the policy's encoder."""

    needs_rewards: ClassVar[bool] = True

    @staticmethod
    def data_from_batch(batch: DecisionBatch, spec: DataSpec, /) -> Any:
        return bandit_data_from_batch(batch, spec)

    def _check_data(self, data: BanditData, policy: ClassifierPolicy) -> None:
        check_bandit_data(data, policy)


class MinibatchLearner(PolicyLearner[GC, SD, ClassifierPolicy]):
    """The learners whose training is one minibatch loss on a copy of the policy, minimised by
    :class:`MinibatchSGD` under the config's seed with the gradient clipped at ``max_grad_norm``
    (REINFORCE, A2C, CRM, DPO). A learner gives its loss (:meth:`_objective`) and, if not Adam at
    ``lr``, its optimiser (:meth:`_optimizer`)."""

    #: ``history_`` key of the gradient's norm before clipping.
    grad_norm_key: ClassVar[str] = "grad_norm"

    def _fit(self, data: SD, policy: ClassifierPolicy, progress: ProgressCallback | None) -> ClassifierPolicy:
        cfg = self.config
        fitted = copy_policy(policy)
        with seeded(cfg.seed):
            batch_loss, modules = self._objective(data, fitted)
            params = [p for module in modules for p in module.parameters()]
            sgd = MinibatchSGD(
                cfg,
                len(data),
                self._optimizer(params),
                params,
                cfg.max_grad_norm,
                progress,
                fitted.save,
                grad_norm_key=self.grad_norm_key,
            )
            sgd.run(batch_loss, modules)
        self.policy_ = fitted
        self.history_ = sgd.history
        return fitted

    @abstractmethod
    def _objective(self, data: SD, fitted: ClassifierPolicy) -> tuple[BatchLoss, list[nn.Module]]:
        """(the minibatch loss of ``fitted`` on ``data``, the modules it trains: ``fitted.head`` and
        any the learner adds, built here under the seed, such as a critic)."""

    def _optimizer(self, params: list[nn.Parameter]) -> torch.optim.Optimizer:
        return torch.optim.Adam(params, lr=self.config.lr)


class BanditMinibatchLearner(BanditLearner[GC, ClassifierPolicy], MinibatchLearner[GC, BanditData]):
    """A :class:`MinibatchLearner` on logged bandit feedback (REINFORCE, A2C, CRM)."""


def check_bandit_data(data: BanditData, policy: ClassifierPolicy) -> None:
    """Refuse logged data a learner cannot use, naming the field (and the first bad row)."""
    n = len(data)
    if n == 0:
        raise LearnerDataError("data: no logged decisions with a reward to learn from")
    if list(data.labels) != list(policy.labels):
        raise LearnerDataError(
            f"labels: the data's labels {list(data.labels)[:5]}... differ from the policy's "
            f"{list(policy.labels)[:5]}... (same labels in the same order are needed)"
        )
    if data.X.ndim != 2 or data.X.shape[0] != n:
        raise LearnerDataError(f"X: expected shape ({n}, n_features), got {data.X.shape}")
    if data.X.shape[1] != policy.in_dim:
        raise LearnerDataError(f"X: {data.X.shape[1]} features, but the policy's head takes {policy.in_dim}")
    for name in ("reward", "pscore"):
        arr = getattr(data, name)
        if arr.shape != (n,):
            raise LearnerDataError(f"{name}: expected shape ({n},), got {arr.shape}")
    bad = np.flatnonzero((data.action < 0) | (data.action >= policy.n_labels))
    if bad.size:
        raise LearnerDataError(
            f"action: row {bad[0]} has action {data.action[bad[0]]}, outside [0, {policy.n_labels})"
        )
    bad = np.flatnonzero(~np.isfinite(data.reward))
    if bad.size:
        raise LearnerDataError(f"reward: row {bad[0]} is not finite ({data.reward[bad[0]]})")
    bad = np.flatnonzero(~((data.pscore > 0) & (data.pscore <= 1)))
    if bad.size:
        raise LearnerDataError(f"pscore: row {bad[0]} is {data.pscore[bad[0]]}, must be in (0, 1]")
    if not np.isfinite(data.X).all():
        row = int(np.flatnonzero(~np.isfinite(data.X).all(axis=1))[0])
        raise LearnerDataError(f"X: row {row} has a non-finite value")


def policy_like(
    policy: ClassifierPolicy,
    head: nn.Module,
    hidden: int,
    temperature: float = 1.0,
    encoder: Any = None,
    backend: Backend | None = None,
) -> ClassifierPolicy:
    """A new policy with ``policy``'s labels, name, version and input width, and ``head``; its encoder
    and backend unless given."""
    return ClassifierPolicy(
        policy.labels,
        head=head,
        hidden=hidden,
        temperature=temperature,
        encoder=policy._encoder if encoder is None else encoder,
        name=policy.name,
        version=policy.version,
        in_dim=policy.in_dim,
        backend=policy.backend if backend is None else backend,
    )


def copy_policy(policy: ClassifierPolicy) -> ClassifierPolicy:
    """A new policy with a deep copy of ``policy``'s head (same labels, temperature, encoder, backend)."""
    return policy_like(policy, copy.deepcopy(policy.head), policy.hidden, policy.temperature)


def start_head(
    policy: ClassifierPolicy, warm: bool, hidden: int, dropout: float = 0.0
) -> tuple[nn.Module, int]:
    """(head, hidden width) a label learner trains: a copy of ``policy``'s head when ``warm`` (the
    caller's policy is never trained in place), else a fresh head of width ``hidden``."""
    if warm:
        return copy.deepcopy(policy.head), policy.hidden
    return make_head(policy.in_dim, policy.n_labels, hidden, dropout), hidden


def lora_modules(target_modules: str) -> list[str]:
    """The module names of a comma-separated ``target_modules`` field (blanks dropped)."""
    return [m.strip() for m in target_modules.split(",") if m.strip()]


def peft_lora(r: int, alpha: int, dropout: float, target_modules: str, task_type: str | None = None) -> Any:
    """peft's ``LoraConfig``: rank ``r``, scaling ``alpha``/r, ``dropout`` on the adapters' input, on
    each module of ``target_modules`` (comma-separated); ``task_type`` for a causal LM's."""
    from peft import LoraConfig

    return LoraConfig(
        r=r,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=lora_modules(target_modules),
        task_type=task_type,
    )


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run a block under ``torch.manual_seed(seed)`` without disturbing the caller's global RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def minibatches(n: int, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    """A seeded shuffle of ``range(n)`` cut into index tensors of at most ``batch_size``."""
    order = torch.randperm(n, generator=generator)
    return list(torch.split(order, batch_size))


def as_tensors(data: BanditData) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(X (n, d) float32, action (n,) int64, reward (n,) float32, pscore (n,) float32)."""
    return (
        torch.as_tensor(np.asarray(data.X, dtype=np.float32)),
        torch.as_tensor(np.asarray(data.action, dtype=np.int64)),
        torch.as_tensor(np.asarray(data.reward, dtype=np.float32)),
        torch.as_tensor(np.asarray(data.pscore, dtype=np.float32)),
    )


def as_metrics(**values: torch.Tensor | float) -> dict[str, float]:
    """Scalar tensors (or floats) as a step's metrics: ``{name: float(value)}``, without gradient."""
    return {
        name: float(v.detach()) if isinstance(v, torch.Tensor) else float(v) for name, v in values.items()
    }


def clip_grad(params: Iterable[nn.Parameter], max_norm: float) -> float:
    """Clip the total gradient norm to ``max_norm`` (0: no clipping); return the norm before clipping."""
    return float(nn.utils.clip_grad_norm_(list(params), max_norm if max_norm > 0 else float("inf")))


def make_value_head(in_dim: int, hidden: int, init_value: float) -> nn.Module:
    """A value head V: (B, in_dim) → (B, 1) whose output bias starts at ``init_value``.

    Starting the critic at the mean logged reward rather than at noise makes the first advantages
    r − V(x) meaningful from the first step.
    """
    head = make_head(in_dim, 1, hidden)
    last = [m for m in head.modules() if isinstance(m, nn.Linear)][-1]  # the output layer
    with torch.no_grad():
        last.bias.fill_(init_value)
    return head


def optimizer_step(
    optimizer: torch.optim.Optimizer,
    loss: torch.Tensor,
    params: Iterable[nn.Parameter],
    max_norm: float | None,
) -> float | None:
    """One gradient step on ``loss`` (zero, back-propagate, clip to ``max_norm``, step); returns the
    gradient's total norm before clipping (None, and no clipping, when ``max_norm`` is None)."""
    optimizer.zero_grad()
    loss.backward()  # type: ignore[no-untyped-call]
    norm = None if max_norm is None else clip_grad(params, max_norm)
    optimizer.step()
    return norm


class TrainingSteps:
    """The bookkeeping of one ``fit``'s optimisation steps: count them, record their metrics into
    ``history`` (namespaced, :class:`MetricsRecorder`), report ``progress(step, total, metrics)`` and
    checkpoint with ``save`` every ``save_frequency`` steps (the config's, keeping ``keep_last_n``).
    """

    def __init__(
        self,
        config: LearnerConfig,
        total: int,
        progress: ProgressCallback | None,
        save: Callable[[Path], Any],
    ) -> None:
        self.total = total
        self.progress = progress
        self.save = save
        self.checkpointer = config.checkpointer()
        self.recorder = MetricsRecorder()
        self.step = 0

    @property
    def history(self) -> list[dict[str, float]]:
        return self.recorder.history

    def end(self, metrics: dict[str, float], epoch: int) -> None:
        """After a step: record its metrics (and ``time/epoch``), report progress, checkpoint if due."""
        self.step += 1
        self.recorder.record_many(metrics, epoch=epoch)
        self.recorder.dump(self.step)
        if self.progress is not None:
            self.progress(self.step, self.total, metrics)
        self.checkpointer.maybe_save(self.step, self.save)


class MinibatchSGD(TrainingSteps):
    """The minibatch loop of every gradient learner: passes over ``n`` rows in seeded shuffled
    minibatches of ``batch_size`` (the config's ``seed``), one optimiser step per minibatch.

    Parameters
    ----------
    config : LearnerConfig
        Its ``epochs`` (passes of :meth:`run`), ``batch_size``, ``seed`` and checkpoint fields.
    n : int
        Rows to train on.
    optimizer : torch.optim.Optimizer
    params : sequence of parameters
        Those whose gradient norm is clipped and recorded.
    max_grad_norm : float or None
        Clip the gradient's total norm to this (0: no clipping; the norm is still recorded, as
        ``grad_norm_key``); None: no clipping and no norm.
    progress, save
        As :class:`TrainingSteps`.
    passes : int, optional
        Passes in all, for the progress total (default ``config.epochs``).
    """

    def __init__(
        self,
        config: LearnerConfig,
        n: int,
        optimizer: torch.optim.Optimizer,
        params: Sequence[nn.Parameter],
        max_grad_norm: float | None,
        progress: ProgressCallback | None,
        save: Callable[[Path], Any],
        passes: int | None = None,
        grad_norm_key: str = "grad_norm",
    ) -> None:
        n_passes = config.epochs if passes is None else passes
        super().__init__(config, n_passes * -(-n // config.batch_size), progress, save)
        self.n = n
        self.epochs = config.epochs
        self.batch_size = config.batch_size
        self.generator = torch.Generator().manual_seed(config.seed)
        self.optimizer = optimizer
        self.params = list(params)
        self.max_grad_norm = max_grad_norm
        self.grad_norm_key = grad_norm_key

    def epoch(self, epoch: int, batch_loss: BatchLoss) -> float:
        """One pass: a gradient step on ``batch_loss(idx)`` for each minibatch ``idx``; returns the
        pass's mean loss over rows."""
        total_loss = 0.0
        for idx in minibatches(self.n, self.batch_size, self.generator):
            loss, metrics = batch_loss(idx)
            norm = optimizer_step(self.optimizer, loss, self.params, self.max_grad_norm)
            if norm is not None:
                metrics[self.grad_norm_key] = norm
            self.end(metrics, epoch)
            total_loss += float(loss.detach()) * len(idx)
        return total_loss / self.n

    def run(self, batch_loss: BatchLoss, modules: Sequence[nn.Module]) -> list[float]:
        """``epochs`` passes with ``modules`` in training mode (in eval mode after); the mean loss of
        each pass."""
        for module in modules:
            module.train()
        losses = [self.epoch(epoch, batch_loss) for epoch in range(self.epochs)]
        for module in modules:
            module.eval()
        return losses
