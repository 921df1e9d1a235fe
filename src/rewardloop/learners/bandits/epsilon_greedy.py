"""ε-greedy over per-arm ridge estimates (Sutton & Barto 2018, §2.2; contextual form as in
Langford & Zhang 2007's epoch-greedy without epochs).

With probability ``1 − ε`` play the arm with the highest estimate ``θ_kᵀx`` (ties at random), else an
arm uniformly at random. The action distribution is exact::

    π(k | x) = ε / K + (1 − ε) · [k among the T tied best] / T
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rewardloop.learners.bandits._params import Bound, hyperparameter
from rewardloop.learners.bandits._ridge import RidgeRouter
from rewardloop.policies.router import FloatArray


@dataclass(eq=False, kw_only=True)
class EpsilonGreedy(RidgeRouter):
    """ε-greedy router on ridge estimates, with per-arm priors and exact propensities.

    Parameters
    ----------
    epsilon : float, default 0.1
        Share of decisions explored uniformly at random.
    arms, dim, l2, fit_intercept, priors, default_prior, reward_range, random_state
        As in :class:`~rewardloop.learners.bandits.LinUCB`.

    Examples
    --------
    >>> router = EpsilonGreedy(["a", "b"], dim=1, epsilon=0.2, priors={"b": (1.0, 4)}, random_state=0)
    >>> router.act([0.0]).action_dist.round(3).tolist()
    [0.1, 0.9]
    """

    algorithm = "epsilon_greedy"

    epsilon: float = hyperparameter(
        0.1, "share of decisions explored uniformly at random", Bound(0.0, 1.0, closed="both")
    )

    def _decide(self, xa: FloatArray) -> tuple[int, FloatArray, FloatArray]:
        est = self.theta_ @ xa  # (K,)
        k = len(est)
        best = np.flatnonzero(est == est.max())  # tied best arms
        dist = np.full(k, self.epsilon / k)
        dist[best] += (1.0 - self.epsilon) / len(best)
        u = self.rng_.random()
        if u < self.epsilon:
            i = min(int(u / self.epsilon * k), k - 1)  # uniform: reuse u, rescaled
        else:
            i = int(best[self.rng_.integers(len(best))]) if len(best) > 1 else int(best[0])
        return i, dist, est
