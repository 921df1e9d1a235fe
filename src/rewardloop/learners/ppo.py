"""Proximal Policy Optimization on logged single-step decisions.

Schulman et al. (2017), "Proximal Policy Optimization Algorithms". Training runs ``epochs`` outer
iterations; each starts by freezing a copy of the current policy, π_old, and then makes
``update_epochs`` passes of minibatches maximising

    ratio_i = π(a_i|x_i) / π_old(a_i|x_i)
    ρ_i     = min(π_old(a_i|x_i) / μ(a_i|x_i), c)                                  (truncated IS)
    L^CLIP  = mean_i ρ_i · min(ratio_i · A_i, clip(ratio_i, 1 − ε, 1 + ε) · A_i)   (eq. 7)

The ratio is against the policy at the start of the update, as in PPO, so every row starts inside
the clip range (ratio = 1) and the clip bounds how far one iteration moves π. The decisions were
logged by μ (``pscore``), not by π_old: the truncated importance weight ρ (``max_importance_weight``
c; Ionides 2008, and V-trace's ρ̄ in IMPALA, Espeholt et al. 2018) corrects for that, without
gradient. (Taking the ratio against μ itself, as this learner once did, puts many rows outside the
clip range from the first step — 47% under ε-greedy logging — and those rows never move.)

Advantages. Every decision is its own episode (done = 1), so the generalised advantage estimate
(Schulman et al. 2016) with any discount γ and trace λ reduces to a one-step TD error with no
bootstrap: A = r + γ·V(s')·(1 − done) − V(s) = r − V(s). ``gamma`` and ``gae_lambda`` are accepted
(and passed through :func:`rewardloop.learners._math.gae`) so that multi-step configs validate,
but they cannot change the result here. V(s) is a value head on the same embeddings trained jointly
by squared error on the reward (``vf_coef``); the advantages of an iteration use its values at the
start of that iteration (the "old" values, as in CleanRL), normalised per minibatch.

Metrics per step: ``approx_kl`` (KL(π_old‖π), Schulman's k3 estimator), ``clip_fraction`` (the share
of rows whose ratio left [1 − ε, 1 + ε]) and ``is_weight`` (the mean ρ). Training stops early when an
iteration's mean KL exceeds ``target_kl`` (if set).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch.nn import functional as F

from rewardloop.learners._common import (
    BanditLearner,
    BatchLoss,
    MinibatchSGD,
    as_metrics,
    as_tensors,
    copy_policy,
    make_value_head,
    seeded,
)
from rewardloop.learners._math import entropy, gae, importance_weights, log_probs
from rewardloop.learners.base import (
    AT_LEAST_ONE,
    NON_NEGATIVE,
    POSITIVE,
    UNIT,
    BanditData,
    GradientClipConfig,
    LearnerConfig,
    ProgressCallback,
    ValueHeadConfig,
    hyperparameter,
)
from rewardloop.policies.classifier import ClassifierPolicy


@dataclass
class PPOConfig(GradientClipConfig, ValueHeadConfig):
    """PPO hyperparameters (and the shared ones of :class:`GradientClipConfig`, :class:`ValueHeadConfig`)."""

    lr: float = hyperparameter(5e-3, "Adam learning rate (policy and value heads)", POSITIVE)
    epochs: int = hyperparameter(
        4, "outer iterations; each freezes π_old and makes update_epochs passes", AT_LEAST_ONE
    )
    update_epochs: int = hyperparameter(
        1, "passes over the logged decisions per outer iteration (per π_old)", AT_LEAST_ONE
    )
    clip_eps: float = hyperparameter(0.2, "PPO clip range ε of the ratio π/π_old", POSITIVE)
    max_importance_weight: float = hyperparameter(
        1.0, "c of the truncated importance weight min(π_old/μ, c) (1: V-trace's ρ̄)", POSITIVE
    )
    vf_coef: float = hyperparameter(0.5, "weight of the value head's squared error", NON_NEGATIVE)
    entropy_coef: float = hyperparameter(0.01, "weight of the entropy bonus", NON_NEGATIVE)
    max_grad_norm: float = hyperparameter(
        0.5, "clip the gradient's total norm to this (0: no clipping)", NON_NEGATIVE
    )
    normalize_advantages: bool = hyperparameter(True, "standardise advantages within each minibatch")
    target_kl: float = hyperparameter(
        0.0, "stop after an epoch whose mean approx. KL exceeds this (0: off)", NON_NEGATIVE
    )
    gamma: float = hyperparameter(1.0, "discount γ; no effect on single-step decisions (A = r − V(s))", UNIT)
    gae_lambda: float = hyperparameter(0.95, "GAE λ; no effect on single-step decisions (A = r − V(s))", UNIT)


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
    is_weight: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """PPO's loss on one minibatch: −L^CLIP + vf_coef · mean((V − R)²) − entropy_coef · mean(H).

    Parameters
    ----------
    logits : tensor of shape (B, K)
    values : tensor of shape (B,)
        V(s) from the value head.
    actions : tensor of shape (B,)
    old_logp : tensor of shape (B,)
        log π_old(a|x), the policy at the start of the update.
    adv, returns : tensors of shape (B,)
        Advantages (already normalised if wanted) and the value targets R (here the reward).
    is_weight : tensor of shape (B,), optional
        ρ = min(π_old/μ, c), the truncated importance weight of each row (default 1).
    """
    logp = log_probs(logits, actions)  # (B,)
    log_ratio = logp - old_logp
    ratio = log_ratio.exp()  # (B,)
    surrogate = torch.minimum(ratio * adv, ratio.clamp(1.0 - clip_eps, 1.0 + clip_eps) * adv)  # (B,)
    rho = torch.ones_like(surrogate) if is_weight is None else is_weight.detach()
    policy_loss = -(rho * surrogate).mean()  # eq. 7 with the off-policy weight, negated to minimise
    value_loss = F.mse_loss(values, returns)
    ent = entropy(logits).mean()
    loss = policy_loss + vf_coef * value_loss - entropy_coef * ent
    with torch.no_grad():
        approx_kl = ((ratio - 1.0) - log_ratio).mean()  # k3 estimator of KL(π_old ‖ π)
        clip_frac = ((ratio - 1.0).abs() > clip_eps).float().mean()
    metrics = as_metrics(
        loss=loss,
        policy_loss=policy_loss,
        value_loss=value_loss,
        entropy=ent,
        approx_kl=approx_kl,
        clip_fraction=clip_frac,
        is_weight=rho.mean(),
    )
    return loss, metrics


class PPO(BanditLearner[PPOConfig, ClassifierPolicy]):
    """PPO with a frozen π_old per iteration and truncated importance weights to μ, for a classifier.

    Attributes
    ----------
    value_head_ : torch.nn.Module
        V(s): embeddings (B, d) → (B, 1).
    history_ : list of dict
        Metrics of each optimisation step (``approx_kl``, ``clip_fraction``, ``is_weight``, losses).
    stopped_early_ : bool
        Whether ``target_kl`` ended training early.

    Examples
    --------
    >>> from rewardloop.learners.base import BanditData
    >>> data = BanditData.simulated(32, n_features=4, labels=["a", "b"])
    >>> fitted = PPO(PPOConfig(epochs=2)).fit(data, ClassifierPolicy(["a", "b"], in_dim=4))
    >>> fitted.labels
    ['a', 'b']
    """

    name: ClassVar[str] = "ppo"
    config_class: ClassVar[type[LearnerConfig]] = PPOConfig

    def _fit(
        self, data: BanditData, policy: ClassifierPolicy, progress: ProgressCallback | None
    ) -> ClassifierPolicy:
        cfg = self.config
        fitted = copy_policy(policy)
        tensors = as_tensors(data)  # X (n, d), actions, reward, pscore (n,)
        self.stopped_early_ = False
        with seeded(cfg.seed):
            value_head = make_value_head(policy.in_dim, cfg.value_hidden, float(tensors[2].mean()))
            params = [*fitted.head.parameters(), *value_head.parameters()]
            optimizer = torch.optim.Adam(params, lr=cfg.lr)
            passes = cfg.epochs * cfg.update_epochs
            sgd = MinibatchSGD(
                cfg, len(data), optimizer, params, cfg.max_grad_norm, progress, fitted.save, passes=passes
            )
            for iteration in range(cfg.epochs):
                batch_loss, iteration_kl = self._iteration_loss(fitted, value_head, tensors)
                for _ in range(cfg.update_epochs):
                    sgd.epoch(iteration, batch_loss)
                if cfg.target_kl > 0 and sum(iteration_kl) / len(iteration_kl) > cfg.target_kl:
                    self.stopped_early_ = True
                    break
        fitted.head.eval()
        value_head.eval()
        self.policy_ = fitted
        self.value_head_ = value_head
        self.history_ = sgd.history
        return fitted

    def _iteration_loss(
        self,
        fitted: ClassifierPolicy,
        value_head: torch.nn.Module,
        tensors: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
    ) -> tuple[BatchLoss, list[float]]:
        """One outer iteration's minibatch loss, against π_old frozen now, and the list its steps'
        approximate KLs are appended to. Leaves both heads in training mode."""
        cfg = self.config
        head = fitted.head
        X, actions, reward, pscore = tensors
        head.eval()
        value_head.eval()
        with torch.no_grad():
            # π_old: the policy at the start of this iteration, frozen (its log-probs, once).
            old_logp = log_probs(head(X) / fitted.temperature, actions)  # (n,)
            rho = importance_weights(old_logp, pscore, cfg.max_importance_weight)  # (n,)
            old_values = value_head(X).squeeze(1)  # (n,)
        head.train()
        value_head.train()
        # GAE over one-step episodes (done = 1): A = r − V(s) whatever γ and λ (see the module docstring).
        done = torch.ones_like(reward)
        adv_all = gae(reward, old_values, torch.zeros_like(reward), done, cfg.gamma, cfg.gae_lambda)
        returns_all = adv_all + old_values  # = reward
        iteration_kl: list[float] = []

        def batch_loss(idx: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
            adv = adv_all[idx]
            if cfg.normalize_advantages and len(idx) > 1:
                adv = (adv - adv.mean()) / (adv.std() + 1e-8)
            loss, metrics = ppo_loss(
                head(X[idx]) / fitted.temperature,  # (B, K)
                value_head(X[idx]).squeeze(1),  # (B,)
                actions[idx],
                old_logp[idx],
                adv,
                returns_all[idx],
                cfg.clip_eps,
                cfg.vf_coef,
                cfg.entropy_coef,
                rho[idx],
            )
            iteration_kl.append(metrics["approx_kl"])
            return loss, metrics

        return batch_loss, iteration_kl
