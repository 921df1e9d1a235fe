"""LinUCB with disjoint linear models (Li et al. 2010, WWW, Algorithm 1).

Each arm's score is an upper confidence bound on its reward::

    p_k = θ_kᵀx + α √(xᵀ A_k⁻¹ x)

and the arm with the highest score is played. The choice is deterministic given the state, so the
action distribution is one-hot (uniform over exactly tied arms, ties broken at random): logs of a pure
LinUCB policy carry propensity 1 and support no off-policy evaluation of other policies on their own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from rewardloop.learners.bandits import _kernels
from rewardloop.learners.bandits._choice import argmax_ties, draw_tie
from rewardloop.learners.bandits._params import Bound, hyperparameter
from rewardloop.learners.bandits._ridge import RidgeRouter, _not_finite
from rewardloop.policies.router import FloatArray


@dataclass(eq=False, kw_only=True)
class LinUCB(RidgeRouter):
    """Disjoint LinUCB router with per-arm priors, Sherman–Morrison updates and a batched score.

    Parameters
    ----------
    arms : sequence of str
        The arms to route between.
    dim : int
        Length of the context vectors.
    alpha : float, default 1.0
        Width of the confidence bonus α (0 is greedy on the ridge estimate).
    l2 : float, default 1.0
        Ridge penalty λ.
    fit_intercept : bool, default True
        Append a constant 1 to each context (priors sit on it).
    priors : mapping of arm -> (mean, strength), optional
        Prior mean reward and strength in pseudo-observations per arm.
    default_prior : (mean, strength), default (0.0, 0.0)
    reward_range : (low, high), default (0.0, 1.0)
    random_state : int or None
        Seed for breaking exact ties.

    Attributes
    ----------
    arms_ : list of str
        The active arms, in the order of ``action_dist``.
    A_inv_ : ndarray of shape (n_actions, D, D)
        Per-arm inverse ridge matrices (D = dim + 1 with the intercept).
    theta_ : ndarray of shape (n_actions, D)
        Per-arm ridge coefficients (``b_ = A θ``, the response sums, is derived from them).
    n_pulls_ : ndarray of shape (n_actions,)

    Examples
    --------
    >>> router = LinUCB(["naive_rag", "agentic_rag"], dim=2, alpha=0.5,
    ...                 priors={"agentic_rag": (0.8, 5)}, random_state=0)
    >>> d = router.act([1.0, 0.0])
    >>> d.arm, d.pscore
    ('agentic_rag', 1.0)
    >>> router.learn([1.0, 0.0], d.arm, reward=1.0)
    >>> [row.arm for row in router.leaderboard()]
    ['agentic_rag', 'naive_rag']
    """

    algorithm = "linucb"
    checks_scores = True

    alpha: float = hyperparameter(
        1.0, "width of the confidence bonus α (0: greedy on the ridge estimate)", Bound(0.0)
    )

    def _act_context(self, x: Any) -> FloatArray:
        # the kernel takes x unaugmented and refuses a non-finite one from its scores
        return self._raw_context(x) if _kernels.ucb_choice is not None else self._check_context(x, False)

    def _decide(self, xa: FloatArray) -> tuple[int, FloatArray, FloatArray]:
        kernel = _kernels.ucb_choice
        if (
            kernel is not None
        ):  # the same scores as below (with var clipped at 0), argmax and dist in one call
            ucb, dist, i, n_top = kernel(self.A_inv_, self.theta_, xa, float(self.alpha))
            if n_top > 1:  # exact ties: the kernel spread dist over them; draw the one played
                i = draw_tie(ucb, self.rng_, i)
            elif i < 0:
                raise _not_finite()
            return i, dist, ucb
        xa = self._augment(xa)
        mean, var = self._mean_var(xa)  # (K,), (K,); var is a fresh array, reused in place below
        np.sqrt(var, out=var)  # NaN only for a non-finite x, or var rounded to -1e-17 (handled below)
        var *= self.alpha
        ucb = np.add(mean, var, out=var)  # θᵀx + α√(xᵀA⁻¹x), Li et al. 2010, eq. 5
        i = int(ucb.argmax())  # argmax returns the first NaN, so a NaN anywhere shows up here
        if not math.isfinite(ucb[i]):
            if not np.isfinite(xa).all():  # NaN/inf in the context reaches the scores
                raise _not_finite()
            mean, var = self._mean_var(xa)
            ucb = mean + self.alpha * np.sqrt(np.maximum(var, 0.0))
            i = int(ucb.argmax())
        i, dist = argmax_ties(ucb, self.rng_, i)
        return i, dist, ucb
