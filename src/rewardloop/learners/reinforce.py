"""Single-step REINFORCE with a moving-average baseline, learning from logged decisions.

Williams (1992), "Simple statistical gradient-following algorithms for connectionist reinforcement
learning". Each logged decision is a one-step episode: context x (an embedding), action a (a label)
drawn by the logging policy μ with propensity μ(a|x) (``pscore``), reward r. The gradient of the
policy's value V(π) = E_π[r] estimated from μ's logs is

    ∇V(π) ≈ mean_i  w_i · (r_i − b) · ∇ log π(a_i | x_i),      w_i = min(π(a_i|x_i) / μ(a_i|x_i), w_max)

— the importance weight w corrects for the data being drawn by μ rather than by π (Precup et al.
2000); it is **clipped** at ``max_importance_weight`` (truncated importance sampling, Ionides 2008),
trading a little bias for bounded variance. The baseline b is an exponential moving average of the
self-normalised weighted batch reward Σ w·r / Σ w (an estimate of π's value), with decay
``baseline_decay``; subtracting it leaves the gradient unbiased and lowers its variance. An entropy
bonus keeps the policy from collapsing early; gradient norms are clipped at ``max_grad_norm``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch

from rewardloop.learners._common import (
    as_tensors,
    check_bandit_data,
    clip_grad,
    copy_policy,
    minibatches,
    seeded,
)
from rewardloop.learners._math import advantages, ema_update, entropy, importance_weights, log_probs
from rewardloop.learners.base import (
    BanditData,
    BanditLearner,
    LearnerConfig,
    LearnerConfigError,
    ProgressCallback,
    require_policy,
)
from rewardloop.policies.classifier import ClassifierPolicy
from rewardloop.types.history import MetricsRecorder


@dataclass
class ReinforceConfig(LearnerConfig):
    """REINFORCE hyperparameters (and the shared ones of :class:`LearnerConfig`)."""

    lr: float = field(default=5e-3, metadata={"help": "Adam learning rate"})
    epochs: int = field(default=5, metadata={"help": "passes over the logged decisions"})
    baseline_decay: float = field(
        default=0.9,
        metadata={"help": "EMA decay of the reward baseline b (0: the last batch's reward only)"},
    )
    entropy_coef: float = field(
        default=0.01, metadata={"help": "weight of the entropy bonus (keeps some exploration)"}
    )
    max_grad_norm: float = field(
        default=1.0, metadata={"help": "clip the gradient's total norm to this (0: no clipping)"}
    )
    importance_weighting: bool = field(
        default=True,
        metadata={"help": "weight each row by π(a|x)/pscore (off-policy correction for logged data)"},
    )
    max_importance_weight: float = field(
        default=10.0, metadata={"help": "clip importance weights at this value (bounds the variance)"}
    )

    def validate(self) -> None:
        super().validate()
        if not 0.0 <= self.baseline_decay < 1.0:
            raise LearnerConfigError(f"baseline_decay: must be in [0, 1), got {self.baseline_decay}")
        if self.entropy_coef < 0:
            raise LearnerConfigError(f"entropy_coef: must be >= 0, got {self.entropy_coef}")
        if self.max_grad_norm < 0:
            raise LearnerConfigError(f"max_grad_norm: must be >= 0 (0: off), got {self.max_grad_norm}")
        if not self.max_importance_weight >= 1.0:
            raise LearnerConfigError(f"max_importance_weight: must be >= 1, got {self.max_importance_weight}")


def reinforce_loss(
    logits: torch.Tensor,
    actions: torch.Tensor,
    reward: torch.Tensor,
    pscore: torch.Tensor,
    baseline: float,
    entropy_coef: float,
    max_importance_weight: float = 10.0,
    importance_weighting: bool = True,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The REINFORCE-with-baseline loss of one minibatch, and its metrics.

    loss = −mean(w · (r − b) · log π(a|x)) − entropy_coef · mean(H(π(·|x)))

    Parameters
    ----------
    logits : tensor of shape (B, K)
    actions : tensor of shape (B,)
        Logged action indices.
    reward, pscore : tensors of shape (B,)
        Reward and the logging policy's propensity of the logged action.
    baseline : float
        b, subtracted from the reward.
    """
    logp = log_probs(logits, actions)  # (B,)
    if importance_weighting:
        w = importance_weights(logp, pscore, max_importance_weight)  # (B,), no gradient
    else:
        w = torch.ones_like(logp)
    adv = advantages(reward, baseline)  # (B,)
    policy_loss = -(w * adv * logp).mean()
    ent = entropy(logits).mean()
    loss = policy_loss - entropy_coef * ent
    metrics = {
        "loss": float(loss.detach()),
        "policy_loss": float(policy_loss.detach()),
        "entropy": float(ent.detach()),
        "mean_weight": float(w.mean()),
        "reward": float(reward.mean()),
    }
    return loss, metrics


class Reinforce(BanditLearner):
    """Off-policy single-step REINFORCE with an EMA baseline, for a :class:`ClassifierPolicy`.

    Parameters
    ----------
    config : ReinforceConfig, optional
    progress : callable, optional
        Called as ``progress(step, total_steps, metrics)`` after each step; one given to ``fit`` wins.

    Attributes
    ----------
    policy_ : ClassifierPolicy
        The fitted policy (also returned by :meth:`fit`).
    baseline_ : float
        The baseline b at the end of training.
    history_ : list of dict
        Metrics of each optimisation step.

    Examples
    --------
    >>> import numpy as np
    >>> from rewardloop.learners.base import BanditData
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(32, 4)).astype("float32")
    >>> action = rng.integers(0, 2, 32)
    >>> data = BanditData(X, action, (action == (X[:, 0] > 0)).astype(float), np.full(32, 0.5), ["a", "b"])
    >>> policy = ClassifierPolicy(["a", "b"], in_dim=4)
    >>> fitted = Reinforce(ReinforceConfig(epochs=2)).fit(data, policy)
    >>> fitted is not policy
    True
    """

    name: ClassVar[str] = "reinforce"
    config_class: ClassVar[type[LearnerConfig]] = ReinforceConfig

    def __init__(
        self, config: ReinforceConfig | None = None, progress: ProgressCallback | None = None
    ) -> None:
        self.config = config if config is not None else ReinforceConfig()
        self.progress = progress

    def fit(
        self,
        data: BanditData,
        policy: ClassifierPolicy | None = None,
        progress: ProgressCallback | None = None,
    ) -> ClassifierPolicy:
        """Learn from logged decisions; return a new fitted policy (``policy`` is not changed)."""
        cfg = self.config
        cfg.validate()
        policy = require_policy(policy, self.name)
        progress = progress if progress is not None else self.progress
        check_bandit_data(data, policy)
        fitted = copy_policy(policy)
        head = fitted.head
        X, actions, reward, pscore = as_tensors(data)  # (n, d), (n,), (n,), (n,)
        checkpointer = cfg.checkpointer()
        generator = torch.Generator().manual_seed(cfg.seed)
        n_batches = -(-len(data) // cfg.batch_size)
        total = cfg.epochs * n_batches
        # Start b at the logging policy's mean reward: an unbiased first guess of the policy's value.
        baseline = float(reward.mean())
        recorder = MetricsRecorder()
        step = 0
        with seeded(cfg.seed):
            optimizer = torch.optim.Adam(head.parameters(), lr=cfg.lr)
            head.train()
            for epoch in range(cfg.epochs):
                for idx in minibatches(len(data), cfg.batch_size, generator):
                    logits = head(X[idx]) / fitted.temperature  # (B, K)
                    loss, metrics = reinforce_loss(
                        logits,
                        actions[idx],
                        reward[idx],
                        pscore[idx],
                        baseline,
                        cfg.entropy_coef,
                        cfg.max_importance_weight,
                        cfg.importance_weighting,
                    )
                    optimizer.zero_grad()
                    loss.backward()  # type: ignore[no-untyped-call]
                    metrics["grad_norm"] = clip_grad(head.parameters(), cfg.max_grad_norm)
                    optimizer.step()
                    # b tracks π's value: the self-normalised importance-weighted batch reward.
                    with torch.no_grad():
                        w = (
                            importance_weights(
                                log_probs(logits, actions[idx]), pscore[idx], cfg.max_importance_weight
                            )
                            if cfg.importance_weighting
                            else torch.ones(len(idx))
                        )
                        batch_value = float((w * reward[idx]).sum() / w.sum())
                    baseline = ema_update(baseline, batch_value, cfg.baseline_decay)
                    step += 1
                    metrics.update(baseline=baseline, epoch=epoch)
                    recorder.record_many(metrics)
                    recorder.dump(step)
                    if progress is not None:
                        progress(step, total, metrics)
                    checkpointer.maybe_save(step, fitted.save)
        head.eval()
        self.policy_ = fitted
        self.baseline_ = baseline
        self.history_ = recorder.history
        return fitted
