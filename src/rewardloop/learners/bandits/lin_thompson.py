"""Linear Thompson sampling (Agrawal & Goyal 2013, "Thompson Sampling for Contextual Bandits with
Linear Payoffs", ICML, Algorithm 1) on disjoint per-arm ridge posteriors.

Each arm's coefficients have the posterior ``N(θ_k, v² A_k⁻¹)``; a decision draws one sample per arm
and plays the arm whose sampled reward ``θ̃_kᵀx`` is highest. Because arms are independent, the
sampled reward of arm ``k`` is exactly ``N(θ_kᵀx, v² xᵀA_k⁻¹x)``: a decision needs K scalar normal
draws, not K d-dimensional ones.

Propensity. The probability that arm ``k`` wins, ``P(k = argmax_j s_j)`` for independent normal
``s_j``, has no closed form. It is estimated by Monte-Carlo: ``n_draws`` further independent draws of
the K scores, plus the draw actually used, give ``p̂_k = (wins_k + [k chosen]) / (n_draws + 1)``
(:func:`~rewardloop.learners.bandits._base.monte_carlo_dist`). The estimate is unbiased, its standard
error is at most ``0.5 / √(n_draws + 1)`` (0.031 at the default 256 draws), and the chosen arm's
propensity is never below ``1 / (n_draws + 1)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from rewardloop.learners.bandits._base import PriorSpec, monte_carlo_dist
from rewardloop.learners.bandits._ridge import RidgeRouter
from rewardloop.policies.router import FloatArray, RouterInputError


class LinearThompson(RidgeRouter):
    """Linear Thompson sampling router with per-arm priors and Monte-Carlo propensities.

    Parameters
    ----------
    arms : sequence of str
    dim : int
        Length of the context vectors.
    v : float, default 0.25
        Posterior scale ``v`` (Agrawal & Goyal's exploration parameter): samples are drawn from
        ``N(θ, v² A⁻¹)``. Larger explores more.
    n_draws : int, default 256
        Monte-Carlo draws for the action distribution (0 reports a one-hot distribution on the chosen
        arm, i.e. no propensity estimate: do not log such decisions for off-policy evaluation).
    l2, fit_intercept, priors, default_prior, reward_range, random_state
        As in :class:`~rewardloop.learners.bandits.LinUCB`.

    Examples
    --------
    >>> router = LinearThompson(["a", "b"], dim=2, random_state=0)
    >>> d = router.act([0.5, 0.5])
    >>> round(float(d.action_dist.sum()), 6), d.pscore > 0
    (1.0, True)
    """

    algorithm = "lin_thompson"

    def __init__(
        self,
        arms: Any,
        dim: int,
        *,
        v: float = 0.25,
        n_draws: int = 256,
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
        self.v = v
        self.n_draws = n_draws

    def get_params(self) -> dict[str, Any]:
        return {**super().get_params(), "v": self.v, "n_draws": self.n_draws}

    def _validate_params(self) -> None:
        super()._validate_params()
        if not (np.isfinite(self.v) and self.v > 0):
            raise RouterInputError("v", f"must be > 0, got {self.v}")
        if not (isinstance(self.n_draws, int) and self.n_draws >= 0):
            raise RouterInputError("n_draws", f"must be an integer >= 0, got {self.n_draws!r}")

    def _decide(self, xa: FloatArray) -> tuple[int, FloatArray, FloatArray]:
        mean, var = self._mean_var(xa)  # (K,), (K,)
        sd = self.v * np.sqrt(np.maximum(var, 0.0))  # (K,) sd of θ̃_kᵀx
        k = len(mean)
        sample = mean + sd * self.rng_.standard_normal(k)  # (K,) the draw that decides
        i = int(sample.argmax())
        if self.n_draws == 0:
            dist = np.zeros(k)
            dist[i] = 1.0
            return i, dist, sample
        redraws = mean + sd * self.rng_.standard_normal((self.n_draws, k))  # (n_draws, K)
        return i, monte_carlo_dist(redraws.argmax(axis=1), i, k), sample
