"""Softmax (Boltzmann) exploration over per-arm ridge estimates (Sutton & Barto 2018, §2.8;
Cesa-Bianchi et al. 2017, "Boltzmann Exploration Done Right", NeurIPS).

The arm is drawn from ``π(k | x) = exp(θ_kᵀx / τ) / Σ_j exp(θ_jᵀx / τ)``; that is the exact action
distribution, so propensities need no estimate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rewardloop.learners.bandits._params import Bound, hyperparameter
from rewardloop.learners.bandits._ridge import RidgeRouter
from rewardloop.policies.router import FloatArray


@dataclass(eq=False, kw_only=True)
class Softmax(RidgeRouter):
    """Softmax-exploration router on ridge estimates, with per-arm priors and exact propensities.

    Parameters
    ----------
    temperature : float, default 0.1
        τ: lower is greedier. In units of reward.
    arms, dim, l2, fit_intercept, priors, default_prior, reward_range, random_state
        As in :class:`~rewardloop.learners.bandits.LinUCB`.

    Examples
    --------
    >>> router = Softmax(["a", "b"], dim=1, temperature=1.0, random_state=0)
    >>> router.act([1.0]).action_dist.tolist()
    [0.5, 0.5]
    """

    algorithm = "softmax"

    temperature: float = hyperparameter(
        0.1, "τ of softmax(θᵀx / τ): lower is greedier; in units of reward", Bound(0.0, closed="neither")
    )

    def _decide(self, xa: FloatArray) -> tuple[int, FloatArray, FloatArray]:
        est = self.theta_ @ xa  # (K,)
        z = np.exp((est - est.max()) / self.temperature)  # (K,), stable
        dist = z / z.sum()
        cdf = np.cumsum(dist)
        i = min(int(np.searchsorted(cdf, self.rng_.random() * cdf[-1], side="right")), len(dist) - 1)
        return i, dist, est
