"""Proximal Policy Optimization on logged single-step decisions.

Schulman et al. (2017), "Proximal Policy Optimization Algorithms". The "old" policy of PPO's ratio
is the **logging** policy μ whose propensities were stored with each decision, so

    ratio_i = π(a_i|x_i) / μ(a_i|x_i) = exp(log π(a_i|x_i) − log pscore_i)
    L^CLIP  = mean_i min(ratio_i · A_i, clip(ratio_i, 1 − ε, 1 + ε) · A_i)          (eq. 7)

is maximised over several epochs of minibatches; the clip keeps π close to μ where the logged
data says anything about π, which is exactly the trust region an off-policy learner needs. The
ratio is PPO's importance weight, clipped by construction.

Advantages. Every decision is its own episode (done = 1), so the generalised advantage estimate
(Schulman et al. 2016) with any discount γ and trace λ reduces to a one-step TD error with no
bootstrap: A = r + γ·V(s')·(1 − done) − V(s) = r − V(s). ``gamma`` and ``gae_lambda`` are accepted
(and passed through :func:`rewardloop.learners._math.gae`) so that multi-step configs validate,
but they cannot change the result here. V(s) is a value head on the same embeddings trained jointly
by squared error on the reward (``vf_coef``); the advantages of an epoch use its values at the start
of that epoch (the "old" values, as in CleanRL), normalised per minibatch.

Metrics per step: ``approx_kl`` (KL(μ‖π), Schulman's k3 estimator) and ``clip_fraction`` (the share of
rows whose ratio left [1 − ε, 1 + ε]). Training stops early when an epoch's mean KL exceeds
``target_kl`` (if set).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch.nn import functional as F

from rewardloop.learners._common import (
    as_tensors,
    check_bandit_data,
    clip_grad,
    copy_policy,
    make_value_head,
    minibatches,
    seeded,
)
from rewardloop.learners._math import entropy, gae, log_probs
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
class PPOConfig(LearnerConfig):
    """PPO hyperparameters (and the shared ones of :class:`LearnerConfig`)."""

    lr: float = field(default=5e-3, metadata={"help": "Adam learning rate (policy and value heads)"})
    epochs: int = field(default=4, metadata={"help": "update epochs over the logged decisions"})
    clip_eps: float = field(default=0.2, metadata={"help": "PPO clip range ε of the ratio π/μ"})
    vf_coef: float = field(default=0.5, metadata={"help": "weight of the value head's squared error"})
    entropy_coef: float = field(default=0.01, metadata={"help": "weight of the entropy bonus"})
    max_grad_norm: float = field(
        default=0.5, metadata={"help": "clip the gradient's total norm to this (0: no clipping)"}
    )
    normalize_advantages: bool = field(
        default=True, metadata={"help": "standardise advantages within each minibatch"}
    )
    target_kl: float = field(
        default=0.0, metadata={"help": "stop after an epoch whose mean approx. KL exceeds this (0: off)"}
    )
    gamma: float = field(
        default=1.0,
        metadata={"help": "discount γ; no effect on single-step decisions (A = r − V(s))"},
    )
    gae_lambda: float = field(
        default=0.95,
        metadata={"help": "GAE λ; no effect on single-step decisions (A = r − V(s))"},
    )
    value_hidden: int = field(default=0, metadata={"help": "hidden width of the value head (0: linear)"})

    def validate(self) -> None:
        super().validate()
        if not self.clip_eps > 0:
            raise LearnerConfigError(f"clip_eps: must be > 0, got {self.clip_eps}")
        for key in ("vf_coef", "entropy_coef", "max_grad_norm", "target_kl", "value_hidden"):
            if getattr(self, key) < 0:
                raise LearnerConfigError(f"{key}: must be >= 0, got {getattr(self, key)}")
        for key in ("gamma", "gae_lambda"):
            if not 0.0 <= getattr(self, key) <= 1.0:
                raise LearnerConfigError(f"{key}: must be in [0, 1], got {getattr(self, key)}")


def ppo_loss(
    logits: torch.Tensor,
    values: torch.Tensor,
    actions: torch.Tensor,
    old_logp: torch.Tensor,
    adv: torch.Tensor,
    returns: torch.Tensor,
    clip_eps: float,
    vf_coef: float = 0.5,
    entropy_coef: float = 0.0,
) -> tuple[torch.Tensor, dict[str, float]]:
    """PPO's loss on one minibatch: −L^CLIP + vf_coef · mean((V − R)²) − entropy_coef · mean(H).

    Parameters
    ----------
    logits : tensor of shape (B, K)
    values : tensor of shape (B,)
        V(s) from the value head.
    actions : tensor of shape (B,)
    old_logp : tensor of shape (B,)
        log μ(a|x) of the logging policy (log pscore).
    adv, returns : tensors of shape (B,)
        Advantages (already normalised if wanted) and the value targets R (here the reward).
    """
    logp = log_probs(logits, actions)  # (B,)
    log_ratio = logp - old_logp
    ratio = log_ratio.exp()  # (B,)
    surrogate = torch.minimum(ratio * adv, ratio.clamp(1.0 - clip_eps, 1.0 + clip_eps) * adv)
    policy_loss = -surrogate.mean()  # eq. 7, negated to minimise
    value_loss = F.mse_loss(values, returns)
    ent = entropy(logits).mean()
    loss = policy_loss + vf_coef * value_loss - entropy_coef * ent
    with torch.no_grad():
        approx_kl = ((ratio - 1.0) - log_ratio).mean()  # k3 estimator of KL(μ ‖ π)
        clip_frac = ((ratio - 1.0).abs() > clip_eps).float().mean()
    metrics = {
        "loss": float(loss.detach()),
        "policy_loss": float(policy_loss.detach()),
        "value_loss": float(value_loss.detach()),
        "entropy": float(ent.detach()),
        "approx_kl": float(approx_kl),
        "clip_fraction": float(clip_frac),
    }
    return loss, metrics


class PPO(BanditLearner):
    """PPO with the logging policy as the old policy, for a :class:`ClassifierPolicy`.

    Parameters
    ----------
    config : PPOConfig, optional
    progress : callable, optional
        Called as ``progress(step, total_steps, metrics)`` after each step; one given to ``fit`` wins.

    Attributes
    ----------
    policy_ : ClassifierPolicy
        The fitted policy (also returned by :meth:`fit`).
    value_head_ : torch.nn.Module
        V(s): embeddings (B, d) → (B, 1).
    history_ : list of dict
        Metrics of each optimisation step (``approx_kl``, ``clip_fraction``, losses).
    stopped_early_ : bool
        Whether ``target_kl`` ended training early.

    Examples
    --------
    >>> import numpy as np
    >>> from rewardloop.learners.base import BanditData
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(32, 4)).astype("float32")
    >>> action = rng.integers(0, 2, 32)
    >>> data = BanditData(X, action, (action == (X[:, 0] > 0)).astype(float), np.full(32, 0.5), ["a", "b"])
    >>> fitted = PPO(PPOConfig(epochs=2)).fit(data, ClassifierPolicy(["a", "b"], in_dim=4))
    >>> fitted.labels
    ['a', 'b']
    """

    name: ClassVar[str] = "ppo"
    config_class: ClassVar[type[LearnerConfig]] = PPOConfig

    def __init__(self, config: PPOConfig | None = None, progress: ProgressCallback | None = None) -> None:
        self.config = config if config is not None else PPOConfig()
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
        old_logp = torch.log(pscore)  # log μ(a|x): the logging policy is PPO's old policy
        done = torch.ones_like(reward)  # each decision is a one-step episode
        checkpointer = cfg.checkpointer()
        generator = torch.Generator().manual_seed(cfg.seed)
        n_batches = -(-len(data) // cfg.batch_size)
        total = cfg.epochs * n_batches
        recorder = MetricsRecorder()
        step = 0
        self.stopped_early_ = False
        with seeded(cfg.seed):
            value_head = make_value_head(policy.in_dim, cfg.value_hidden, float(reward.mean()))
            params = [*head.parameters(), *value_head.parameters()]
            optimizer = torch.optim.Adam(params, lr=cfg.lr)
            head.train()
            value_head.train()
            for epoch in range(cfg.epochs):
                with torch.no_grad():
                    old_values = value_head(X).squeeze(1)  # (n,)
                # GAE over one-step episodes: A = r − V(s) whatever γ and λ (see the module docstring).
                adv_all = gae(reward, old_values, torch.zeros_like(reward), done, cfg.gamma, cfg.gae_lambda)
                returns_all = adv_all + old_values  # = reward
                epoch_kl = []
                for idx in minibatches(len(data), cfg.batch_size, generator):
                    adv = adv_all[idx]
                    if cfg.normalize_advantages and len(idx) > 1:
                        adv = (adv - adv.mean()) / (adv.std() + 1e-8)
                    logits = head(X[idx]) / fitted.temperature  # (B, K)
                    values = value_head(X[idx]).squeeze(1)  # (B,)
                    loss, metrics = ppo_loss(
                        logits,
                        values,
                        actions[idx],
                        old_logp[idx],
                        adv,
                        returns_all[idx],
                        cfg.clip_eps,
                        cfg.vf_coef,
                        cfg.entropy_coef,
                    )
                    optimizer.zero_grad()
                    loss.backward()  # type: ignore[no-untyped-call]
                    metrics["grad_norm"] = clip_grad(params, cfg.max_grad_norm)
                    optimizer.step()
                    step += 1
                    metrics["epoch"] = epoch
                    epoch_kl.append(metrics["approx_kl"])
                    recorder.record_many(metrics)
                    recorder.dump(step)
                    if progress is not None:
                        progress(step, total, metrics)
                    checkpointer.maybe_save(step, fitted.save)
                if cfg.target_kl > 0 and sum(epoch_kl) / len(epoch_kl) > cfg.target_kl:
                    self.stopped_early_ = True
                    break
        head.eval()
        value_head.eval()
        self.policy_ = fitted
        self.value_head_ = value_head
        self.history_ = recorder.history
        return fitted
