"""Pure math shared by the learners: log-probabilities, entropy, importance weights, advantages and
the moving-average baseline. No state, no optimisers, no I/O: each function maps tensors to tensors.

Shapes: B rows (a minibatch), K labels (actions).
"""

from __future__ import annotations

import torch
from torch.nn import functional as F


def log_probs(logits: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """log π(a_i | x_i) of shape (B,) from logits (B, K) and action indices (B,)."""
    logp_all = F.log_softmax(logits, dim=-1)  # (B, K)
    return logp_all.gather(1, actions.long().unsqueeze(1)).squeeze(1)  # (B,)


def entropy(logits: torch.Tensor) -> torch.Tensor:
    """Entropy H(π(· | x_i)) of shape (B,) of the softmax of logits (B, K), in nats."""
    logp_all = F.log_softmax(logits, dim=-1)  # (B, K)
    return -(logp_all.exp() * logp_all).sum(dim=-1)  # (B,)


def importance_weights(logp: torch.Tensor, pscore: torch.Tensor, max_weight: float) -> torch.Tensor:
    """Clipped importance weights min(π(a|x) / μ(a|x), max_weight), shape (B,), without gradient.

    ``logp`` is log π(a|x) under the policy being trained, ``pscore`` μ(a|x), the logged
    propensity of the logging policy. Clipping trades a little bias for bounded variance
    (Ionides 2008, "Truncated importance sampling"; Bottou et al. 2013).
    """
    ratio = torch.exp(logp.detach() - torch.log(pscore))  # (B,)
    return ratio.clamp(max=max_weight)


def policy_gradient_terms(
    logits: torch.Tensor,
    actions: torch.Tensor,
    adv: torch.Tensor,
    pscore: torch.Tensor,
    max_weight: float,
    importance_weighting: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The off-policy policy-gradient terms of a minibatch: (−mean(w · A · log π(a|x)), mean entropy,
    w of shape (B,)).

    w is the clipped importance weight of :func:`importance_weights` (no gradient), or 1 without
    ``importance_weighting``; ``adv`` (B,) the advantages A, ``logits`` (B, K), ``actions`` (B,).
    """
    logp = log_probs(logits, actions)  # (B,)
    w = importance_weights(logp, pscore, max_weight) if importance_weighting else torch.ones_like(logp)
    policy_loss = -(w * adv * logp).mean()
    return policy_loss, entropy(logits).mean(), w


def advantages(reward: torch.Tensor, baseline: torch.Tensor | float) -> torch.Tensor:
    """A = r − b, shape (B,).

    In single-step episodes the generalised advantage estimate (Schulman et al. 2016) with any γ
    and λ reduces to this: δ_0 = r + γ·V(s_1)·(1 − done) − V(s_0) with done = 1, so A = r − V(s).
    """
    return reward - baseline


def gae(
    reward: torch.Tensor,
    value: torch.Tensor,
    next_value: torch.Tensor,
    done: torch.Tensor,
    gamma: float,
    lam: float,
) -> torch.Tensor:
    """Generalised advantage estimates along one trajectory (Schulman et al. 2016, eq. 16), shape (T,).

    δ_t = r_t + γ · V(s_{t+1}) · (1 − done_t) − V(s_t);  A_t = δ_t + γλ · (1 − done_t) · A_{t+1}.
    Every logged decision here is its own episode (done_t = 1), so A_t = r_t − V(s_t) whatever γ, λ.
    """
    not_done = 1.0 - done.float()  # (T,)
    delta = reward + gamma * next_value * not_done - value  # (T,)
    adv = torch.zeros_like(delta)
    running = torch.zeros((), dtype=delta.dtype)
    for t in range(delta.shape[0] - 1, -1, -1):
        running = delta[t] + gamma * lam * not_done[t] * running
        adv[t] = running
    return adv


def ema_update(baseline: float, value: float, decay: float) -> float:
    """Exponential moving average: decay · baseline + (1 − decay) · value."""
    return decay * baseline + (1.0 - decay) * value
