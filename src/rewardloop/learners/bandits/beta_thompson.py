"""Context-free Beta–Bernoulli Thompson sampling (Thompson 1933; Chapelle & Li 2011, "An Empirical
Evaluation of Thompson Sampling", NeurIPS, Algorithm 2).

Rewards are mapped to [0, 1] through the declared range, ``u = (r − low) / (high − low)``, and each arm
keeps ``Beta(α_k, β_k)``::

    α_k = 1 + s_k m_k + Σ w u        β_k = 1 + s_k (1 − m_k) + Σ w (1 − u)

from the uniform ``Beta(1, 1)``, the prior ``(m_k, s_k)`` (mean mapped to [0, 1], strength in
pseudo-observations) and the weighted rewards. Fractional rewards enter as fractional successes, the
posterior of the "Bernoulli trick" of Agrawal & Goyal 2012 in expectation.

Propensity: Monte-Carlo, as for linear Thompson sampling — ``n_draws`` re-draws of the K Beta samples
plus the draw actually used (see :func:`~rewardloop.learners.bandits._choice.monte_carlo_dist`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from rewardloop.learners.bandits._base import BanditRouter, IntArray
from rewardloop.learners.bandits._choice import monte_carlo_dist, one_hot
from rewardloop.learners.bandits._params import Bound, hyperparameter
from rewardloop.policies.router import FloatArray


@dataclass(eq=False, kw_only=True)
class BetaThompson(BanditRouter):
    """Context-free Beta–Bernoulli Thompson sampling router.

    Parameters
    ----------
    n_draws : int, default 256
        Monte-Carlo draws for the action distribution.
    arms, priors, default_prior, reward_range, random_state
        As in :class:`~rewardloop.learners.bandits.LinUCB`; a prior ``(m, s)`` adds ``s·m`` successes
        and ``s·(1 − m)`` failures (``m`` mapped to [0, 1] by the reward range).

    Attributes
    ----------
    alpha_, beta_ : ndarray of shape (n_actions,)
        Posterior Beta parameters.

    Examples
    --------
    >>> router = BetaThompson(["a", "b"], priors={"b": (0.9, 20)}, random_state=0)
    >>> router.act().arm
    'b'
    >>> router.learn(None, "a", 1.0)
    >>> router.alpha_.tolist()
    [2.0, 19.0]
    """

    algorithm = "beta_thompson"
    needs_context = False

    n_draws: int = hyperparameter(
        256, "Monte-Carlo draws for the action distribution (0: one-hot)", Bound(0.0, integer=True)
    )

    def _unit(self, r: Any) -> Any:
        lo, hi = self._range
        return (r - lo) / (hi - lo)

    def _empty_state(self) -> None:
        self.alpha_: FloatArray = np.zeros(0)
        self.beta_: FloatArray = np.zeros(0)

    def _add_arm_state(self, mean: float, strength: float) -> None:
        m = self._unit(mean)
        self.alpha_ = np.append(self.alpha_, 1.0 + strength * m)
        self.beta_ = np.append(self.beta_, 1.0 + strength * (1.0 - m))

    def _delete_arm_state(self, i: int) -> None:
        self.alpha_ = np.delete(self.alpha_, i)
        self.beta_ = np.delete(self.beta_, i)

    def _state_arrays(self) -> dict[str, FloatArray]:
        return {"alpha": self.alpha_, "beta": self.beta_}

    def _set_state_arrays(self, arrays: Mapping[str, FloatArray]) -> None:
        self.alpha_ = np.array(arrays["alpha"], dtype=np.float64)
        self.beta_ = np.array(arrays["beta"], dtype=np.float64)

    def _decide(self, xa: None) -> tuple[int, FloatArray, FloatArray]:
        k = len(self.alpha_)
        sample = self.rng_.beta(self.alpha_, self.beta_)  # (K,)
        i = int(sample.argmax())
        if self.n_draws == 0:
            return i, one_hot(i, k), sample
        redraws = self.rng_.beta(self.alpha_, self.beta_, size=(self.n_draws, k))  # (n_draws, K)
        return i, monte_carlo_dist(redraws.argmax(axis=1), i, k), sample

    def _update(self, xa: None, i: int, r: float, w: float) -> None:
        u = self._unit(r)
        self.alpha_[i] += w * u
        self.beta_[i] += w * (1.0 - u)

    def _batch_statistics(
        self, Xa: None, idx: IntArray, r: FloatArray, w: FloatArray
    ) -> dict[str, FloatArray]:
        k = len(self.alpha_)
        u = self._unit(r)
        return {
            "success": np.bincount(idx, weights=w * u, minlength=k).astype(np.float64),  # (K,) Σ w u
            "failure": np.bincount(idx, weights=w * (1.0 - u), minlength=k).astype(np.float64),  # Σ w (1 − u)
        }

    def _apply_statistics(self, stats: Mapping[str, FloatArray]) -> None:
        self.alpha_ += stats["success"]
        self.beta_ += stats["failure"]

    def posterior_mean(self) -> FloatArray:
        """Posterior mean of each arm's reward, in reward units, shape (n_actions,)."""
        self._ensure()
        lo, hi = self._range
        return lo + (hi - lo) * self.alpha_ / (self.alpha_ + self.beta_)
