"""Linear Thompson sampling (Agrawal & Goyal 2013, "Thompson Sampling for Contextual Bandits with
Linear Payoffs", ICML, Algorithm 1) on disjoint per-arm ridge posteriors.

Each arm's coefficients have the posterior ``N(θ_k, v² A_k⁻¹)``; a decision draws one sample per arm
and plays the arm whose sampled reward ``θ̃_kᵀx`` is highest. Because arms are independent, the
sampled reward of arm ``k`` is exactly ``N(θ_kᵀx, v² xᵀA_k⁻¹x)``: a decision needs K scalar normal
draws, not K d-dimensional ones.

Propensity. The probability that arm ``k`` wins, ``P(k = argmax_j s_j)`` for independent normal
``s_j ~ N(μ_j, σ_j²)``, is the one-dimensional integral

    p_k = ∫ φ(z) Π_{j≠k} Φ((μ_k + σ_k z − μ_j) / σ_j) dz

computed by :func:`win_probabilities` (composite Simpson on z ∈ [−10, 10], the nodes doubled until two
passes agree to ``pscore_rtol`` relative, 1e-12 absolute). It is a deterministic function of the
posterior, not a Monte-Carlo estimate: no bias for rare arms (a Monte-Carlo estimate that counts the
draw actually used has E[p̂ | chosen] = (n·p + 1)/(n + 1), 0.0069 for p = 0.003 and 256 draws, which
halves IPW), and an arm that can win has a propensity > 0, never the exact zero that OPE diagnostics
read as "no support".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import log_ndtr

from rewardloop.learners.bandits._choice import one_hot
from rewardloop.learners.bandits._params import Bound, hyperparameter
from rewardloop.learners.bandits._ridge import RidgeRouter
from rewardloop.policies.router import FloatArray


@dataclass(eq=False, kw_only=True)
class LinearThompson(RidgeRouter):
    """Linear Thompson sampling router with per-arm priors and Monte-Carlo propensities.

    Parameters
    ----------
    v : float, default 0.25
        Posterior scale ``v`` (Agrawal & Goyal's exploration parameter): samples are drawn from
        ``N(θ, v² A⁻¹)``. Larger explores more.
    n_draws : int, default 256
        Quadrature intervals of the propensity's first pass (doubled until ``pscore_rtol`` holds); 0
        reports a one-hot distribution on the chosen arm, i.e. no propensity: do not log such decisions
        for off-policy evaluation.
    pscore_rtol : float, default 1e-4
        Relative error bound of each arm's propensity (:func:`win_probabilities`).
    arms, dim, l2, fit_intercept, priors, default_prior, reward_range, random_state
        As in :class:`~rewardloop.learners.bandits.LinUCB`.

    Examples
    --------
    >>> router = LinearThompson(["a", "b"], dim=2, random_state=0)
    >>> d = router.act([0.5, 0.5])
    >>> round(float(d.action_dist.sum()), 6), d.pscore > 0
    (1.0, True)
    """

    algorithm = "lin_thompson"

    v: float = hyperparameter(
        0.25, "posterior scale v: draws from N(θ, v² A⁻¹); larger explores more", Bound(0.0, closed="neither")
    )
    n_draws: int = hyperparameter(
        256,
        "quadrature intervals of the propensity's first pass (0: one-hot, no propensity)",
        Bound(0.0, integer=True),
    )
    pscore_rtol: float = hyperparameter(
        1e-4, "relative error bound of each arm's propensity", Bound(0.0, 1.0, closed="neither")
    )

    def _decide(self, xa: FloatArray) -> tuple[int, FloatArray, FloatArray]:
        mean, var = self._mean_var(xa)  # (K,), (K,)
        sd = self.v * np.sqrt(np.maximum(var, 0.0))  # (K,) sd of θ̃_kᵀx
        k = len(mean)
        sample = mean + sd * self.rng_.standard_normal(k)  # (K,) the draw that decides
        i = int(sample.argmax())
        if self.n_draws == 0:
            return i, one_hot(i, k), sample
        dist, _ = win_probabilities(mean, sd, self.pscore_rtol, self.n_draws)
        return i, dist, sample


#: Half-width of the quadrature's z range: beyond ±10 standard deviations lies less than 1e-22 mass.
_Z = 10.0
#: The most Simpson intervals a propensity is refined to (2^16: a posterior sd ratio of ~10^3 resolved).
_MAX_INTERVALS = 1 << 16


def win_probabilities(
    mean: FloatArray, sd: FloatArray, rtol: float = 1e-4, intervals: int = 256
) -> tuple[FloatArray, bool]:
    """``P(k = argmax_j s_j)`` for independent ``s_j ~ N(mean_j, sd_j²)``, and whether ``rtol`` held.

    ``p_k = ∫ φ(z) Π_{j≠k} Φ((μ_k + σ_k z − μ_j) / σ_j) dz`` by composite Simpson on [−10, 10] with
    ``intervals`` intervals, doubled until two passes agree to ``rtol · p_k + 1e-12`` for every arm
    (at most 2^16 intervals; the flag is False if that was not enough). Returned normalised, shape (K,).

    >>> p, ok = win_probabilities(np.array([0.0, 1.0]), np.array([1.0, 1.0]))
    >>> round(float(p[1]), 6), ok  # Φ(1 / √2)
    (0.76025, True)
    """
    k = len(mean)
    if k == 1:
        return np.ones(1), True
    sd = np.maximum(sd, 1e-12 * (1.0 + np.abs(mean)))  # a point mass, as a very narrow normal

    def integrand(z: FloatArray) -> FloatArray:  # (K, len(z))
        s = mean[:, None] + sd[:, None] * z[None, :]  # arm k's score at node z
        log_cdf = log_ndtr((s[:, None, :] - mean[None, :, None]) / sd[None, :, None])  # (K, K, len(z))
        log_cdf[np.arange(k), np.arange(k)] = 0.0  # j = k: no factor
        out: FloatArray = np.exp(log_cdf.sum(axis=1) - 0.5 * z * z) / np.sqrt(2 * np.pi)
        return out

    n = max(2, intervals + intervals % 2)  # Simpson needs an even number of intervals
    f = integrand(np.linspace(-_Z, _Z, n + 1))  # (K, n + 1)
    prev: FloatArray | None = None
    while True:
        w = np.ones(n + 1)
        w[1:-1:2], w[2:-1:2] = 4.0, 2.0
        p = f @ w * (2 * _Z / n) / 3.0  # (K,)
        if prev is not None and np.all(np.abs(p - prev) <= rtol * p + 1e-12):
            return p / p.sum(), True
        if n >= _MAX_INTERVALS:
            return p / p.sum(), False
        # Halve the step: the old nodes are kept, only the midpoints are new.
        mid = integrand(np.linspace(-_Z, _Z, n + 1)[:-1] + _Z / n)  # (K, n)
        both = np.empty((k, 2 * n + 1))
        both[:, 0::2], both[:, 1::2] = f, mid
        prev, f, n = p, both, 2 * n
