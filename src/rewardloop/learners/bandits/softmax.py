"""Softmax (Boltzmann) exploration over per-arm ridge estimates (Sutton & Barto 2018, §2.8;
Cesa-Bianchi et al. 2017, "Boltzmann Exploration Done Right", NeurIPS).

The arm is drawn from ``π(k | x) = exp(θ_kᵀx / τ) / Σ_j exp(θ_jᵀx / τ)``; that is the exact action
distribution, so propensities need no estimate.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from rewardloop.learners.bandits._base import PriorSpec
from rewardloop.learners.bandits._ridge import RidgeRouter
from rewardloop.policies.router import FloatArray, RouterInputError


class Softmax(RidgeRouter):
    """Softmax-exploration router on ridge estimates, with per-arm priors and exact propensities.

    Parameters
    ----------
    arms : sequence of str
    dim : int
    temperature : float, default 0.1
        τ: lower is greedier. In units of reward.
    l2, fit_intercept, priors, default_prior, reward_range, random_state
        As in :class:`~rewardloop.learners.bandits.LinUCB`.

    Examples
    --------
    >>> router = Softmax(["a", "b"], dim=1, temperature=1.0, random_state=0)
    >>> router.act([1.0]).action_dist.tolist()
    [0.5, 0.5]
    """

    algorithm = "softmax"

    def __init__(
        self,
        arms: Any,
        dim: int,
        *,
        temperature: float = 0.1,
        l2: float = 1.0,
        fit_intercept: bool = True,
        priors: Mapping[str, PriorSpec] | None = None,
        default_prior: tuple[float, float] = (0.0, 0.0),
        reward_range: tuple[float, float] = (0.0, 1.0),
        random_state: int | None = None,
    ) -> None:
        super().__init__(
            arms,
            dim,
            l2=l2,
            fit_intercept=fit_intercept,
            priors=priors,
            default_prior=default_prior,
            reward_range=reward_range,
            random_state=random_state,
        )
        self.temperature = temperature

    def get_params(self) -> dict[str, Any]:
        return {**super().get_params(), "temperature": self.temperature}

    def _validate_params(self) -> None:
        super()._validate_params()
        if not (np.isfinite(self.temperature) and self.temperature > 0):
            raise RouterInputError("temperature", f"must be > 0, got {self.temperature}")

    def _decide(self, xa: FloatArray) -> tuple[int, FloatArray, FloatArray]:
        est = self.theta_ @ xa  # (K,)
        z = np.exp((est - est.max()) / self.temperature)  # (K,), stable
        dist = z / z.sum()
        cdf = np.cumsum(dist)
        i = min(int(np.searchsorted(cdf, self.rng_.random() * cdf[-1], side="right")), len(dist) - 1)
        return i, dist, est
