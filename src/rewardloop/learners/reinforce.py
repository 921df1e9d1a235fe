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

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from rewardloop.learners._common import (
    BanditMinibatchLearner,
    BatchLoss,
    as_metrics,
    as_tensors,
)
from rewardloop.learners._math import (
    advantages,
    ema_update,
    importance_weights,
    log_probs,
    policy_gradient_terms,
)
from rewardloop.learners.base import (
    UNIT_BELOW_ONE,
    BanditData,
    LearnerConfig,
    PolicyGradientConfig,
    hyperparameter,
)
from rewardloop.policies.classifier import ClassifierPolicy


@dataclass
class ReinforceConfig(PolicyGradientConfig):
    """REINFORCE hyperparameters (and the shared ones of :class:`PolicyGradientConfig`)."""

    baseline_decay: float = hyperparameter(
        0.9, "EMA decay of the reward baseline b (0: the last batch's reward only)", UNIT_BELOW_ONE
    )


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
    actions, reward, pscore : tensors of shape (B,)
        The logged action a (an index), its reward r and its propensity μ(a|x) under the logging policy.
    baseline : float
        b, subtracted from the reward.
    """
    adv = advantages(reward, baseline)  # (B,)
    policy_loss, ent, w = policy_gradient_terms(
        logits, actions, adv, pscore, max_importance_weight, importance_weighting
    )
    loss = policy_loss - entropy_coef * ent
    metrics = as_metrics(
        loss=loss, policy_loss=policy_loss, entropy=ent, mean_weight=w.mean(), reward=reward.mean()
    )
    return loss, metrics


class Reinforce(BanditMinibatchLearner[ReinforceConfig]):
    """Off-policy single-step REINFORCE with an EMA baseline, for a :class:`ClassifierPolicy`.

    Attributes
    ----------
    baseline_ : float
        The baseline b at the end of training.

    Examples
    --------
    >>> from rewardloop.learners.base import BanditData
    >>> data = BanditData.simulated(32, n_features=4, labels=["a", "b"])
    >>> policy = ClassifierPolicy(["a", "b"], in_dim=4)
    >>> fitted = Reinforce(ReinforceConfig(epochs=2)).fit(data, policy)
    >>> fitted is not policy
    True
    """

    name: ClassVar[str] = "reinforce"
    config_class: ClassVar[type[LearnerConfig]] = ReinforceConfig

    def _objective(self, data: BanditData, fitted: ClassifierPolicy) -> tuple[BatchLoss, list[nn.Module]]:
        cfg = self.config
        head = fitted.head
        X, actions, reward, pscore = as_tensors(data)  # (n, d), (n,), (n,), (n,)
        # Start b at the logging policy's mean reward: an unbiased first guess of the policy's value.
        self.baseline_ = float(reward.mean())

        def batch_loss(idx: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
            logits = head(X[idx]) / fitted.temperature  # (B, K)
            loss, metrics = reinforce_loss(
                logits,
                actions[idx],
                reward[idx],
                pscore[idx],
                self.baseline_,
                cfg.entropy_coef,
                cfg.max_importance_weight,
                cfg.importance_weighting,
            )
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
            self.baseline_ = ema_update(self.baseline_, batch_value, cfg.baseline_decay)
            metrics["baseline"] = self.baseline_
            return loss, metrics

        return batch_loss, [head]
