"""The estimators (OBP's names and definitions); each writes its per-round term out in the docstring."""

from __future__ import annotations

from typing import ClassVar, Unpack

import numpy as np

from rewardloop.evaluation.ope._common import FloatArray, OPEInputError
from rewardloop.evaluation.ope.bootstrap import PolicyValueInterval, bootstrap_interval
from rewardloop.evaluation.ope.inputs import BanditFeedback, BanditLogs, check_bandit_feedback


class BaseOffPolicyEstimator:
    """Shared machinery: validate, compute per-round terms, average or bootstrap them.

    Subclasses define ``name`` and :meth:`_round_rewards` (the per-round terms on validated inputs).
    """

    name: ClassVar[str] = "base"
    needs_reward_model: ClassVar[bool] = False

    def _round_rewards(self, bf: BanditFeedback) -> FloatArray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _check(self, **logs: Unpack[BanditLogs]) -> BanditFeedback:
        bf = check_bandit_feedback(**logs)
        if self.needs_reward_model and bf.estimated_rewards_by_reg_model is None:
            raise OPEInputError(f"estimated_rewards_by_reg_model: required by {self.name}")
        return bf

    def estimate_round_rewards(self, **logs: Unpack[BanditLogs]) -> FloatArray:
        """The per-round terms whose mean is the estimate, shape (n_rounds,)."""
        return self._round_rewards(self._check(**logs))

    def estimate_policy_value(self, **logs: Unpack[BanditLogs]) -> float:
        """The estimated value of the evaluation policy ``action_dist`` (the mean of the round terms)."""
        return float(self.estimate_round_rewards(**logs).mean())

    def estimate_interval(
        self,
        *,
        alpha: float = 0.05,
        n_bootstrap_samples: int = 10000,
        random_state: int | None = None,
        **logs: Unpack[BanditLogs],
    ) -> PolicyValueInterval:
        """Estimate and its ``1 − alpha`` bootstrap interval (percentiles of resampled round means).

        For SNIPW OBP resamples its already-normalised round terms; so do we, to stay identical.
        """
        terms = self.estimate_round_rewards(**logs)
        mean, lower, upper = bootstrap_interval(
            terms, alpha=alpha, n_bootstrap_samples=n_bootstrap_samples, random_state=random_state
        )
        return PolicyValueInterval(
            self.name, float(terms.mean()), mean, lower, upper, alpha, n_bootstrap_samples
        )

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({params})"


class InverseProbabilityWeighting(BaseOffPolicyEstimator):
    r"""Inverse probability weighting (IPW, also IPS).

    .. math:: \hat V_{IPW}(\pi_e) = \frac1n \sum_t w_t r_t, \quad w_t = \pi_e(a_t|x_t) / \pi_b(a_t|x_t)

    Unbiased when the logged propensities are right and ``π_b`` covers ``π_e``; its variance grows with
    the weights. Horvitz & Thompson (1952); Strehl et al. (2010) "Learning from Logged Implicit
    Exploration Data"; Dudík et al. (2014) "Doubly Robust Policy Evaluation and Optimization".

    Examples
    --------
    >>> import numpy as np
    >>> ipw = InverseProbabilityWeighting()
    >>> ipw.estimate_policy_value(reward=[1.0, 0.0], action=[0, 1], pscore=[0.5, 0.5],
    ...                           action_dist=np.array([[1.0, 0.0], [1.0, 0.0]]))
    1.0
    """

    name = "ipw"

    def _round_rewards(self, bf: BanditFeedback) -> FloatArray:
        return bf.reward * bf.importance_weight  # (n,)


class SelfNormalizedInverseProbabilityWeighting(BaseOffPolicyEstimator):
    r"""Self-normalised IPW (SNIPW, also SNIPS): IPW divided by the mean importance weight.

    .. math:: \hat V_{SNIPW}(\pi_e) = \frac{\sum_t w_t r_t}{\sum_t w_t}

    Biased but consistent, bounded by the reward range, lower variance than IPW. Swaminathan & Joachims
    (2015) "The Self-Normalized Estimator for Counterfactual Learning".

    Examples
    --------
    >>> SelfNormalizedInverseProbabilityWeighting().estimate_policy_value(
    ...     reward=[1.0, 0.0, 1.0], action=[0, 0, 1], pscore=[0.5, 0.5, 0.5],
    ...     action_dist=[[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    0.5
    """

    name = "snipw"

    def _round_rewards(self, bf: BanditFeedback) -> FloatArray:
        w = bf.importance_weight  # (n,)
        mean_w = w.mean()
        if mean_w == 0.0:
            raise OPEInputError(
                "action_dist: the evaluation policy gives probability 0 to every logged action; "
                "self-normalised IPW is undefined (no overlap with the logs)"
            )
        return np.asarray(bf.reward * w / mean_w, dtype=np.float64)


#: Short alias used in the issue and in papers.
SNIPS = SelfNormalizedInverseProbabilityWeighting


class DirectMethod(BaseOffPolicyEstimator):
    r"""Direct method (DM): the reward model's value of the evaluation policy.

    .. math:: \hat V_{DM}(\pi_e) = \frac1n \sum_t \sum_a \pi_e(a|x_t)\, \hat q(x_t, a)

    No importance weights, so low variance, but biased as much as ``q̂`` is wrong. Beygelzimer & Langford
    (2009) "The Offset Tree for Learning with Partial Labels"; Dudík et al. (2014).

    Examples
    --------
    >>> DirectMethod().estimate_policy_value(
    ...     reward=[1.0], action=[0], pscore=[0.5], action_dist=[[0.25, 0.75]],
    ...     estimated_rewards_by_reg_model=[[1.0, 0.0]])
    0.25
    """

    name = "dm"
    needs_reward_model = True

    def _round_rewards(self, bf: BanditFeedback) -> FloatArray:
        return bf.q_hat_policy


class DoublyRobust(BaseOffPolicyEstimator):
    r"""Doubly robust (DR): DM plus an importance-weighted correction of the reward model's error.

    .. math:: \hat V_{DR}(\pi_e) = \frac1n \sum_t \Big[\hat q(x_t, \pi_e) + w_t\,(r_t - \hat q(x_t, a_t))\Big]

    Unbiased if either the propensities or ``q̂`` are right. Dudík, Erhan, Langford & Li (2014)
    "Doubly Robust Policy Evaluation and Optimization", Statistical Science 29(4).

    Examples
    --------
    >>> DoublyRobust().estimate_policy_value(
    ...     reward=[1.0], action=[0], pscore=[0.5], action_dist=[[0.5, 0.5]],
    ...     estimated_rewards_by_reg_model=[[0.5, 0.0]])
    0.75
    """

    name = "dr"
    needs_reward_model = True

    def _correction_weight(self, w: FloatArray) -> FloatArray:
        return w

    def _round_rewards(self, bf: BanditFeedback) -> FloatArray:
        w = self._correction_weight(bf.importance_weight)  # (n,)
        return bf.q_hat_policy + w * (bf.reward - bf.q_hat_factual)


class SwitchDoublyRobust(DoublyRobust):
    r"""Switch-DR: DR's correction only on rounds whose importance weight is at most ``tau``.

    .. math::
        \hat V = \frac1n \sum_t \Big[\hat q(x_t, \pi_e)
                 + w_t (r_t - \hat q(x_t, a_t))\, 1\{w_t \le \tau\}\Big]

    Rounds with huge weights (actions the logging policy rarely takes but the candidate favours) fall back
    to the reward model, trading a little bias for much less variance. ``tau=inf`` is DR. Wang, Agarwal &
    Dudík (2017) "Optimal and Adaptive Off-policy Evaluation in Contextual Bandits", ICML.

    Parameters
    ----------
    tau : float, default=inf
        Switching threshold on the importance weight, >= 0.

    Examples
    --------
    >>> SwitchDoublyRobust(tau=1.0).estimate_policy_value(
    ...     reward=[1.0], action=[0], pscore=[0.5], action_dist=[[1.0, 0.0]],
    ...     estimated_rewards_by_reg_model=[[0.5, 0.0]])
    0.5
    """

    name = "switch-dr"

    def __init__(self, tau: float = float("inf")) -> None:
        if not tau >= 0:
            raise OPEInputError(f"tau: must be >= 0, got {tau}")
        self.tau = tau

    def _correction_weight(self, w: FloatArray) -> FloatArray:
        return w * (w <= self.tau)


class DoublyRobustWithShrinkage(DoublyRobust):
    r"""DR with optimistic shrinkage (DRos): DR with the weight shrunk to ``λ w / (w² + λ)``.

    The map minimises a bound on the MSE; ``λ → ∞`` gives DR, ``λ = 0`` gives DM. Su, Dimakopoulou,
    Krishnamurthy & Dudík (2020) "Doubly Robust Off-policy Evaluation with Shrinkage", ICML.

    Parameters
    ----------
    lambda_ : float, default=inf
        Shrinkage strength, >= 0.

    Examples
    --------
    With ``w = 2`` the shrunk weight runs from DM's 0 (``λ = 0``) through 1 (``λ = 4``) to DR's 2:

    >>> logs = dict(reward=[1.0], action=[0], pscore=[0.5], action_dist=[[1.0, 0.0]],
    ...             estimated_rewards_by_reg_model=[[0.5, 0.0]])
    >>> [DoublyRobustWithShrinkage(lam).estimate_policy_value(**logs) for lam in (0.0, 4.0, float("inf"))]
    [0.5, 1.0, 1.5]
    """

    name = "dr-os"

    def __init__(self, lambda_: float = float("inf")) -> None:
        if not lambda_ >= 0:
            raise OPEInputError(f"lambda_: must be >= 0, got {lambda_}")
        self.lambda_ = lambda_

    def _correction_weight(self, w: FloatArray) -> FloatArray:
        if np.isinf(self.lambda_):
            return w
        if self.lambda_ == 0:  # the limit λ → 0 is 0 for every w, also w = 0 (where the map is 0/0): DM
            return np.zeros_like(w)
        return (self.lambda_ * w) / (w**2 + self.lambda_)
