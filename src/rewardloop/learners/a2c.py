"""Advantage actor-critic (A2C) on logged single-step decisions.

Mnih et al. (2016), "Asynchronous Methods for Deep Reinforcement Learning" (A2C is its synchronous
variant). The actor is the classifier's head π(a|x); the critic is a value head V(x) on the same
embeddings, trained jointly. With one-step episodes the n-step return is the reward itself, so the
advantage is A = r − V(x) (γ and λ drop out, as in :mod:`rewardloop.learners.ppo`). One update per
minibatch, with the critic's current values (detached) as the baseline:

    loss = −mean(w · A · log π(a|x)) + vf_coef · mean((V(x) − r)²) − entropy_coef · mean(H(π(·|x)))

Because the decisions were drawn by a logging policy μ, each row carries the importance weight
w = min(π(a|x) / μ(a|x), ``max_importance_weight``) — **clipped** (truncated importance sampling,
Ionides 2008) — as in off-policy actor-critic (Degris et al. 2012). The critic regresses on the
logged rewards unweighted: any function of x is a valid baseline, and the unweighted fit has the
lower variance.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from rewardloop.learners._common import (
    BanditMinibatchLearner,
    BatchLoss,
    as_metrics,
    as_tensors,
    make_value_head,
)
from rewardloop.learners._math import advantages, policy_gradient_terms
from rewardloop.learners.base import (
    BanditData,
    LearnerConfig,
    PolicyGradientConfig,
    ValueHeadConfig,
)
from rewardloop.policies.classifier import ClassifierPolicy


@dataclass
class A2CConfig(PolicyGradientConfig, ValueHeadConfig):
    """A2C hyperparameters: those of :class:`PolicyGradientConfig` and the critic's of
    :class:`ValueHeadConfig`."""


def a2c_loss(
    logits: torch.Tensor,
    values: torch.Tensor,
    actions: torch.Tensor,
    reward: torch.Tensor,
    pscore: torch.Tensor,
    vf_coef: float = 0.5,
    entropy_coef: float = 0.0,
    max_importance_weight: float = 10.0,
    importance_weighting: bool = True,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The A2C loss of one minibatch, and its metrics.

    Parameters
    ----------
    logits : tensor of shape (B, K)
    values : tensor of shape (B,)
        The critic's V(x); its detached copy is the baseline.
    actions, reward, pscore : tensors of shape (B,)
    """
    adv = advantages(reward, values.detach())  # (B,) A = r − V(x)
    policy_loss, ent, w = policy_gradient_terms(
        logits, actions, adv, pscore, max_importance_weight, importance_weighting
    )
    value_loss = F.mse_loss(values, reward)
    loss = policy_loss + vf_coef * value_loss - entropy_coef * ent
    metrics = as_metrics(
        loss=loss,
        policy_loss=policy_loss,
        value_loss=value_loss,
        entropy=ent,
        mean_weight=w.mean(),
        reward=reward.mean(),
    )
    return loss, metrics


class A2C(BanditMinibatchLearner[A2CConfig]):
    """Off-policy advantage actor-critic with a value head, for a :class:`ClassifierPolicy`.

    Attributes
    ----------
    value_head_ : torch.nn.Module
        The fitted critic: embeddings (B, d) → V (B, 1).

    Examples
    --------
    >>> from rewardloop.learners.base import BanditData
    >>> data = BanditData.simulated(32, n_features=4, labels=["a", "b"])
    >>> learner = A2C(A2CConfig(epochs=2))
    >>> fitted = learner.fit(data, ClassifierPolicy(["a", "b"], in_dim=4))
    >>> learner.value_head_(torch.zeros(1, 4)).shape
    torch.Size([1, 1])
    """

    name: ClassVar[str] = "a2c"
    config_class: ClassVar[type[LearnerConfig]] = A2CConfig

    def _objective(self, data: BanditData, fitted: ClassifierPolicy) -> tuple[BatchLoss, list[nn.Module]]:
        cfg = self.config
        head = fitted.head
        X, actions, reward, pscore = as_tensors(data)  # (n, d), (n,), (n,), (n,)
        value_head = make_value_head(fitted.in_dim, cfg.value_hidden, float(reward.mean()))
        self.value_head_ = value_head

        def batch_loss(idx: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
            return a2c_loss(
                head(X[idx]) / fitted.temperature,  # (B, K)
                value_head(X[idx]).squeeze(1),  # (B,)
                actions[idx],
                reward[idx],
                pscore[idx],
                cfg.vf_coef,
                cfg.entropy_coef,
                cfg.max_importance_weight,
                cfg.importance_weighting,
            )

        return batch_loss, [head, value_head]
