"""Small machinery the RL learners share (Stable-Baselines3's ``common/``, kept thin): checking the
logged data against the policy, copying the policy so that ``fit`` never mutates its input,
seeded minibatches and seeded module construction. The math lives in ``_math.py``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from rewardloop.learners.base import BanditData, BanditLearner, Checkpointer, ProgressCallback, require_policy
from rewardloop.policies.classifier import ClassifierPolicy, make_head
from rewardloop.types.history import MetricsRecorder


class LearnerDataError(ValueError):
    """The training data does not fit the learner or the policy; the message names the field and row."""


def begin_fit(
    learner: BanditLearner[Any],
    data: BanditData,
    policy: ClassifierPolicy | None,
    progress: ProgressCallback | None,
) -> tuple[ClassifierPolicy, ProgressCallback | None]:
    """The start of every bandit learner's ``fit``: check the config, require the policy to improve
    and check the data against it; returns the policy and the progress callback (``fit``'s, else the
    learner's)."""
    learner.config.validate()
    checked = require_policy(policy, learner.name)
    check_bandit_data(data, checked)
    return checked, progress if progress is not None else learner.progress


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


def copy_policy(policy: ClassifierPolicy) -> ClassifierPolicy:
    """A new policy with a deep copy of ``policy``'s head (same labels, temperature, encoder, name)."""
    return ClassifierPolicy(
        policy.labels,
        head=copy.deepcopy(policy.head),
        hidden=policy.hidden,
        temperature=policy.temperature,
        encoder=policy._encoder,
        name=policy.name,
        version=policy.version,
        in_dim=policy.in_dim,
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
    optimizer: torch.optim.Optimizer, loss: torch.Tensor, params: Iterable[nn.Parameter], max_norm: float
) -> float:
    """One gradient step on ``loss`` (zero, back-propagate, clip to ``max_norm``, step); returns the
    gradient's total norm before clipping."""
    optimizer.zero_grad()
    loss.backward()  # type: ignore[no-untyped-call]
    norm = clip_grad(params, max_norm)
    optimizer.step()
    return norm


def end_step(
    recorder: MetricsRecorder,
    step: int,
    metrics: Mapping[str, float],
    progress: ProgressCallback | None,
    total: int,
    checkpointer: Checkpointer,
    save: Callable[[Path], Any],
) -> None:
    """After optimisation step ``step``: record its metrics, report progress, checkpoint if due."""
    recorder.record_many(metrics)
    recorder.dump(step)
    if progress is not None:
        progress(step, total, metrics)
    checkpointer.maybe_save(step, save)
