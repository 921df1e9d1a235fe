"""Off-policy evaluation: the value of a candidate policy, estimated from logs of another.

The estimators follow the definitions (and the vocabulary) of Open Bandit Pipeline (Saito et al. 2021,
"Open Bandit Dataset and Pipeline", NeurIPS Datasets & Benchmarks), so that on identical inputs they
return identical numbers:

=================================================== =========  ==========================================
estimator                                           ``name``   per-round term, averaged over the rounds
=================================================== =========  ==========================================
:class:`InverseProbabilityWeighting`                ipw        ``w r``
:class:`SelfNormalizedInverseProbabilityWeighting`  snipw      ``w r / mean(w)``
:class:`DirectMethod`                               dm         ``Σ_a π_e(a|x) q̂(x, a)``
:class:`DoublyRobust`                               dr         ``Σ_a π_e(a|x) q̂(x, a) + w (r − q̂(x, a_t))``
:class:`SwitchDoublyRobust`                         switch-dr  as dr, correction only where ``w ≤ τ``
:class:`DoublyRobustWithShrinkage`                  dr-os      as dr, with ``w`` → ``λ w / (w² + λ)``
=================================================== =========  ==========================================

with the importance weight ``w = π_e(a_t|x_t) / π_b(a_t|x_t) = action_dist[t, a_t, k_t] / pscore[t]``.

Inputs (OBP names and shapes):

- ``reward``: array of shape (n_rounds,), the observed reward ``r_t``;
- ``action``: int array of shape (n_rounds,), the logged action ``a_t`` in ``[0, n_actions)``;
- ``pscore``: array of shape (n_rounds,), the logging policy's probability ``π_b(a_t|x_t)`` in (0, 1];
- ``action_dist``: array of shape (n_rounds, n_actions) or (n_rounds, n_actions, len_list), the evaluation
  policy's distribution ``π_e(·|x_t)`` (per slot ``k`` for recommendation lists);
- ``position``: int array of shape (n_rounds,), the slot ``k_t`` each round was logged at (default 0);
- ``estimated_rewards_by_reg_model``: same shape as ``action_dist``, a reward model ``q̂(x_t, a, k)``.

Every estimator also gives a bootstrap confidence interval (:meth:`estimate_interval`), computed as OBP
does (percentiles of the means of ``n_bootstrap_samples`` resamples drawn with a legacy
``numpy.random.RandomState``; the same ``random_state`` gives the same interval), and
:func:`ope_diagnostics` says whether the logs can support the estimate at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: A propensity this close to 1 counts as "no exploration" in the diagnostics.
DETERMINISTIC_PSCORE = 1.0 - 1e-9


class OPEInputError(ValueError):
    """Inputs to an estimator are inconsistent; the message names the argument."""


# ----------------------------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class BanditFeedback:
    """Validated logged bandit feedback plus an evaluation policy, as the estimators read it.

    ``action_dist`` and ``estimated_rewards_by_reg_model`` are always 3-D here:
    (n_rounds, n_actions, len_list).
    """

    reward: FloatArray  # (n,)
    action: IntArray  # (n,)
    pscore: FloatArray  # (n,)
    action_dist: FloatArray  # (n, K, L)
    position: IntArray  # (n,)
    estimated_rewards_by_reg_model: FloatArray | None  # (n, K, L)
    action_dist_sums: FloatArray | None = None  # (n, L): Σ_a action_dist, kept from validation

    @property
    def n_rounds(self) -> int:
        return int(self.reward.shape[0])

    @property
    def n_actions(self) -> int:
        return int(self.action_dist.shape[1])

    # The derived arrays are cached: several estimators on one BanditFeedback share them.

    def _factual(self, x: FloatArray) -> FloatArray:
        """``x[t, a_t, position[t]]`` for every round, shape (n_rounds,)."""
        rounds = np.arange(self.n_rounds)
        if x.shape[2] == 1:
            return x[:, :, 0][rounds, self.action]  # a 2-D gather is cheaper than the 3-D one
        return x[rounds, self.action, self.position]

    def _at_position(self, x: FloatArray) -> FloatArray:
        """``x[t, :, position[t]]`` for every round, shape (n_rounds, n_actions)."""
        if x.shape[2] == 1:
            return x[:, :, 0]  # a view: no gather needed with a single slot
        return x[np.arange(self.n_rounds), :, self.position]

    @cached_property
    def pi_e_at_position(self) -> FloatArray:
        """``π_e(·|x_t)`` at each round's slot, shape (n_rounds, n_actions)."""
        return self._at_position(self.action_dist)

    @cached_property
    def importance_weight(self) -> FloatArray:
        """``w_t = π_e(a_t|x_t) / π_b(a_t|x_t)``, shape (n_rounds,)."""
        return self._factual(self.action_dist) / self.pscore

    def _q_hat(self) -> FloatArray:
        if self.estimated_rewards_by_reg_model is None:
            raise OPEInputError("estimated_rewards_by_reg_model: required by model-based estimators")
        return self.estimated_rewards_by_reg_model

    def _finite(self, values: FloatArray) -> FloatArray:
        if not np.isfinite(values).all():
            t = int(np.flatnonzero(~np.isfinite(values))[0])
            raise OPEInputError(f"estimated_rewards_by_reg_model: round {t} has a non-finite value")
        return values

    @cached_property
    def q_hat_factual(self) -> FloatArray:
        """``q̂(x_t, a_t)``, shape (n_rounds,)."""
        return self._finite(self._factual(self._q_hat()))

    @cached_property
    def q_hat_policy(self) -> FloatArray:
        """``q̂(x_t, π_e) = Σ_a π_e(a|x_t) q̂(x_t, a) / Σ_a π_e(a|x_t)`` at each round's slot, shape (n,).

        This is OBP's ``np.average(q_hat, weights=pi_e, axis=1)``; the division is by ≈ 1.
        """
        pi_e = self.pi_e_at_position  # (n, K)
        q_hat = self._at_position(self._q_hat())  # (n, K)
        if self.action_dist_sums is not None:  # Σ_a π_e(a|x_t) at each round's slot, already computed
            norm = self.action_dist_sums[np.arange(self.n_rounds), self.position]
        else:
            norm = pi_e.sum(axis=1)
        return self._finite(np.asarray(np.einsum("nk,nk->n", q_hat, pi_e) / norm, dtype=np.float64))


def _as_1d(name: str, value: Any, dtype: type, n: int | None) -> np.ndarray:
    try:
        arr = np.asarray(value)
    except Exception as err:  # pragma: no cover - numpy accepts nearly anything
        raise OPEInputError(f"{name}: not an array ({err})") from None
    if arr.ndim != 1:
        raise OPEInputError(f"{name}: expected shape (n_rounds,), got {arr.shape}")
    if n is not None and arr.shape[0] != n:
        raise OPEInputError(f"{name}: has {arr.shape[0]} rounds, expected n_rounds={n}")
    if dtype is np.int64:
        integral = np.issubdtype(arr.dtype, np.integer) or (
            np.issubdtype(arr.dtype, np.floating) and bool(np.all(arr == np.round(arr)))
        )
        if arr.size and not integral:
            raise OPEInputError(f"{name}: must hold integers, got dtype {arr.dtype}")
        return arr.astype(np.int64, copy=False)
    arr = arr.astype(np.float64, copy=False)
    if not np.all(np.isfinite(arr)):
        bad = int(np.flatnonzero(~np.isfinite(arr))[0])
        raise OPEInputError(f"{name}: round {bad} is not finite ({arr[bad]})")
    return arr


def check_bandit_feedback(
    *,
    reward: Any,
    action: Any,
    pscore: Any,
    action_dist: Any,
    position: Any = None,
    estimated_rewards_by_reg_model: Any = None,
) -> BanditFeedback:
    """Validate OPE inputs; an :class:`OPEInputError` names the first bad argument (and round).

    Accepts ``action_dist`` of shape (n_rounds, n_actions) and lifts it to (n_rounds, n_actions, 1).
    """
    dist = np.asarray(action_dist, dtype=np.float64)
    if dist.ndim == 2:
        dist = dist[:, :, None]
    if dist.ndim != 3:
        raise OPEInputError(
            f"action_dist: expected shape (n_rounds, n_actions[, len_list]), got {np.shape(action_dist)}"
        )
    n, n_actions, len_list = dist.shape
    if n == 0:
        raise OPEInputError("action_dist: no rounds to evaluate (n_rounds=0)")
    # Two passes over the (n, K, L) array: a NaN or inf makes its row sum non-finite, which fails the
    # "sums to 1" test (written so that NaN fails it); the min catches negative entries.
    # (n, L); einsum, because ndarray.sum over the middle axis is ~10x slower when L is small.
    sums = np.einsum("nk->n", dist[:, :, 0])[:, None] if len_list == 1 else np.einsum("nkl->nl", dist)
    off = ~(np.abs(sums - 1.0) <= 1e-8 + 1e-5)  # np.allclose's tolerance, as OBP checks it
    if dist.min() < 0:
        raise OPEInputError("action_dist: probabilities must be >= 0")
    if off.any():
        t = int(np.argwhere(off)[0][0])
        raise OPEInputError(f"action_dist: round {t} does not sum to 1 over actions (sums to {sums[t]})")
    reward_ = _as_1d("reward", reward, np.float64, n)
    action_ = _as_1d("action", action, np.int64, n)
    pscore_ = _as_1d("pscore", pscore, np.float64, n)
    if action_.min() < 0 or action_.max() >= n_actions:
        t = int(np.flatnonzero((action_ < 0) | (action_ >= n_actions))[0])
        raise OPEInputError(f"action: round {t} has action {action_[t]}, outside [0, n_actions={n_actions})")
    if pscore_.min() <= 0 or pscore_.max() > 1 + 1e-12:
        t = int(np.flatnonzero((pscore_ <= 0) | (pscore_ > 1 + 1e-12))[0])
        raise OPEInputError(f"pscore: round {t} has propensity {pscore_[t]}, outside (0, 1]")
    if position is None:
        if len_list > 1:
            raise OPEInputError(f"position: required when action_dist has len_list={len_list} > 1")
        position_ = np.zeros(n, dtype=np.int64)
    else:
        position_ = _as_1d("position", position, np.int64, n)
        if position_.min() < 0 or position_.max() >= len_list:
            t = int(np.flatnonzero((position_ < 0) | (position_ >= len_list))[0])
            raise OPEInputError(f"position: round {t} has position {position_[t]}, outside [0, {len_list})")
    q_hat = None
    if estimated_rewards_by_reg_model is not None:
        q_hat = np.asarray(estimated_rewards_by_reg_model, dtype=np.float64)
        if q_hat.ndim == 2:
            q_hat = q_hat[:, :, None]
        if q_hat.shape != dist.shape:
            raise OPEInputError(
                f"estimated_rewards_by_reg_model: shape {np.shape(estimated_rewards_by_reg_model)} "
                f"differs from action_dist's {np.shape(action_dist)}"
            )
        # Finiteness is checked where the values are used (q_hat_policy, q_hat_factual): a NaN or inf
        # propagates through the weighted sums, and this saves a pass over an (n, K, L) array.
    return BanditFeedback(reward_, action_, pscore_, dist, position_, q_hat, sums)


# ----------------------------------------------------------------------------------------------- bootstrap


@dataclass(frozen=True)
class PolicyValueInterval:
    """A policy value estimate with its bootstrap confidence interval.

    ``value`` is the estimate on the full logs; ``mean`` the mean of the bootstrap replicates (what OBP
    reports as ``"mean"``); ``lower``/``upper`` the ``alpha/2`` and ``1 − alpha/2`` percentiles.

    Examples
    --------
    >>> iv = InverseProbabilityWeighting().estimate_interval(
    ...     reward=[1.0, 0.0, 1.0, 0.0], action=[0, 0, 1, 1], pscore=[0.5] * 4,
    ...     action_dist=[[1.0, 0.0]] * 4, n_bootstrap_samples=200, random_state=0)
    >>> iv.value, iv.lower <= iv.value <= iv.upper  # w = (2, 2, 0, 0): (2·1 + 2·0) / 4
    (0.5, True)
    """

    estimator: str
    value: float
    mean: float
    lower: float
    upper: float
    alpha: float
    n_bootstrap_samples: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_obp_dict(self) -> dict[str, float]:
        """The dict OBP's ``estimate_interval`` returns, with its key names."""
        pct = 100 * (1.0 - self.alpha)
        return {"mean": self.mean, f"{pct}% CI (lower)": self.lower, f"{pct}% CI (upper)": self.upper}


def bootstrap_means(
    samples: npt.ArrayLike, n_bootstrap_samples: int = 10000, random_state: int | None = None
) -> FloatArray:
    """Means of ``n_bootstrap_samples`` resamples (with replacement) of ``samples``.

    Draws exactly what OBP's loop of ``RandomState(random_state).choice(samples, size=n)`` calls draws
    (the legacy generator fills a (B, n) request in the same order), in chunks to bound memory.
    """
    x = np.asarray(samples, dtype=np.float64)
    n = x.shape[0]
    if n == 0:
        raise OPEInputError("samples: cannot bootstrap an empty array")
    if n_bootstrap_samples < 1:
        raise OPEInputError(f"n_bootstrap_samples: must be >= 1, got {n_bootstrap_samples}")
    rng = np.random.RandomState(random_state)
    out = np.empty(n_bootstrap_samples, dtype=np.float64)
    chunk = max(1, 4_000_000 // n)  # ≤ 4M indices (32 MB) at a time
    for start in range(0, n_bootstrap_samples, chunk):
        b = min(chunk, n_bootstrap_samples - start)
        idx = rng.randint(0, n, size=(b, n))  # what RandomState.choice(x, size=n) draws, b times
        out[start : start + b] = x[idx].mean(axis=1)
    return out


def bootstrap_interval(
    samples: npt.ArrayLike,
    *,
    alpha: float = 0.05,
    n_bootstrap_samples: int = 10000,
    random_state: int | None = None,
) -> tuple[float, float, float]:
    """(mean, lower, upper) of the nonparametric percentile bootstrap of the sample mean."""
    if not 0 < alpha < 1:
        raise OPEInputError(f"alpha: must be in (0, 1), got {alpha}")
    means = bootstrap_means(samples, n_bootstrap_samples, random_state)
    lower = float(np.percentile(means, 100 * (alpha / 2)))
    upper = float(np.percentile(means, 100 * (1.0 - alpha / 2)))
    return float(np.mean(means)), lower, upper


# ----------------------------------------------------------------------------------------------- estimators


class BaseOffPolicyEstimator:
    """Shared machinery: validate, compute per-round terms, average or bootstrap them.

    Subclasses define ``name`` and :meth:`_round_rewards` (the per-round terms on validated inputs).
    """

    name: ClassVar[str] = "base"
    needs_reward_model: ClassVar[bool] = False

    def _round_rewards(self, bf: BanditFeedback) -> FloatArray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _check(self, **inputs: Any) -> BanditFeedback:
        bf = check_bandit_feedback(**inputs)
        if self.needs_reward_model and bf.estimated_rewards_by_reg_model is None:
            raise OPEInputError(f"estimated_rewards_by_reg_model: required by {self.name}")
        return bf

    def estimate_round_rewards(
        self,
        *,
        reward: Any,
        action: Any,
        pscore: Any,
        action_dist: Any,
        position: Any = None,
        estimated_rewards_by_reg_model: Any = None,
    ) -> FloatArray:
        """The per-round terms whose mean is the estimate, shape (n_rounds,)."""
        bf = self._check(
            reward=reward,
            action=action,
            pscore=pscore,
            action_dist=action_dist,
            position=position,
            estimated_rewards_by_reg_model=estimated_rewards_by_reg_model,
        )
        return self._round_rewards(bf)

    def estimate_policy_value(
        self,
        *,
        reward: Any,
        action: Any,
        pscore: Any,
        action_dist: Any,
        position: Any = None,
        estimated_rewards_by_reg_model: Any = None,
    ) -> float:
        """The estimated value of the evaluation policy ``action_dist`` (the mean of the round terms)."""
        terms = self.estimate_round_rewards(
            reward=reward,
            action=action,
            pscore=pscore,
            action_dist=action_dist,
            position=position,
            estimated_rewards_by_reg_model=estimated_rewards_by_reg_model,
        )
        return float(terms.mean())

    def estimate_interval(
        self,
        *,
        reward: Any,
        action: Any,
        pscore: Any,
        action_dist: Any,
        position: Any = None,
        estimated_rewards_by_reg_model: Any = None,
        alpha: float = 0.05,
        n_bootstrap_samples: int = 10000,
        random_state: int | None = None,
    ) -> PolicyValueInterval:
        """Estimate and its ``1 − alpha`` bootstrap interval (percentiles of resampled round means).

        For SNIPW OBP resamples its already-normalised round terms; so do we, to stay identical.
        """
        terms = self.estimate_round_rewards(
            reward=reward,
            action=action,
            pscore=pscore,
            action_dist=action_dist,
            position=position,
            estimated_rewards_by_reg_model=estimated_rewards_by_reg_model,
        )
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
    >>> DoublyRobustWithShrinkage(lambda_=4.0).estimate_policy_value(
    ...     reward=[1.0], action=[0], pscore=[0.5], action_dist=[[1.0, 0.0]],
    ...     estimated_rewards_by_reg_model=[[0.5, 0.0]])
    1.0
    """

    name = "dr-os"

    def __init__(self, lambda_: float = float("inf")) -> None:
        if not lambda_ >= 0:
            raise OPEInputError(f"lambda_: must be >= 0, got {lambda_}")
        self.lambda_ = lambda_

    def _correction_weight(self, w: FloatArray) -> FloatArray:
        if np.isinf(self.lambda_):
            return w
        return (self.lambda_ * w) / (w**2 + self.lambda_)


# ----------------------------------------------------------------------------------------------- diagnostics


@dataclass(frozen=True)
class OPEDiagnostics:
    """Can these logs support an off-policy estimate of this policy?

    Attributes
    ----------
    ess : float
        Effective sample size of the importance weights, ``(Σ w)² / Σ w²`` (Kong 1992); compare with
        ``n_rounds``.
    deterministic_share : float
        Share of logged rounds with propensity 1: no exploration, nothing to learn about other actions.
    unsupported_mass : float or None
        Mean probability the evaluation policy puts on actions the logging policy could not take (needs
        ``behavior_action_dist``); None when unknown.
    unlogged_actions : list of int
        Actions the evaluation policy chooses (mass > 0) that never appear in the logs.
    warnings : list of str
        Plain-language warnings; empty when nothing looks wrong.

    Examples
    --------
    >>> d = ope_diagnostics(action=[0, 0, 0, 0], pscore=[1.0] * 4, action_dist=[[0.5, 0.5]] * 4)
    >>> d.deterministic_share, d.unlogged_actions
    (1.0, [1])
    """

    n_rounds: int
    ess: float
    ess_ratio: float
    mean_weight: float
    max_weight: float
    deterministic_share: float
    unsupported_mass: float | None
    unlogged_actions: list[int] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def effective_sample_size(weights: npt.ArrayLike) -> float:
    """``(Σ w)² / Σ w²``: how many equally weighted rounds the weighted sample is worth."""
    w = np.asarray(weights, dtype=np.float64)
    sq = float(np.sum(w * w))
    return float(np.sum(w)) ** 2 / sq if sq > 0 else 0.0


def ope_diagnostics(
    *,
    action: Any,
    pscore: Any,
    action_dist: Any,
    position: Any = None,
    behavior_action_dist: Any = None,
    min_ess_ratio: float = 0.01,
    max_deterministic_share: float = 0.5,
    weight_mean_tol: float = 0.25,
) -> OPEDiagnostics:
    """Effective sample size, propensity-1 share and support/overlap warnings.

    Parameters
    ----------
    behavior_action_dist : array of shape like ``action_dist``, optional
        The logging policy's full distribution (rewardloop logs it on every Decision). With it the
        support check is exact: the evaluation policy's mass on actions the logging policy could not take.
    min_ess_ratio, max_deterministic_share, weight_mean_tol : float
        Warning thresholds: ESS below ``min_ess_ratio · n``; more than ``max_deterministic_share`` of
        the logs with propensity 1; mean weight further than ``weight_mean_tol`` from 1 (its
        expectation under full support and correct propensities).
    """
    bf = check_bandit_feedback(
        reward=np.zeros(np.shape(pscore)[0] if np.ndim(pscore) else 0),
        action=action,
        pscore=pscore,
        action_dist=action_dist,
        position=position,
    )
    n = bf.n_rounds
    w = bf.importance_weight
    ess = effective_sample_size(w)
    det = float(np.mean(bf.pscore >= DETERMINISTIC_PSCORE))
    warnings: list[str] = []
    pi_e = bf.pi_e_at_position  # (n, K)
    unsupported: float | None = None
    if behavior_action_dist is not None:
        pi_b = np.asarray(behavior_action_dist, dtype=np.float64)
        if pi_b.ndim == 2:
            pi_b = pi_b[:, :, None]
        if pi_b.shape != bf.action_dist.shape:
            raise OPEInputError(
                f"behavior_action_dist: shape {np.shape(behavior_action_dist)} differs from action_dist's"
            )
        pi_b_k = bf._at_position(pi_b)  # (n, K)
        unsupported = float(np.mean(np.sum(pi_e * (pi_b_k <= 0), axis=1)))
        if unsupported > 0:
            warnings.append(
                f"no support: the candidate puts {unsupported:.1%} of its probability on actions the "
                "logging policy could not take; every estimator but DM is biased there"
            )
    logged = np.zeros(bf.n_actions, dtype=bool)
    logged[np.unique(bf.action)] = True
    chosen = pi_e.sum(axis=0) > 0  # (K,)
    unlogged = [int(a) for a in np.flatnonzero(chosen & ~logged)]
    if unlogged:
        mass = float(pi_e[:, ~logged].sum() / n)
        warnings.append(
            f"overlap: {len(unlogged)} action(s) the candidate chooses never appear in the logs "
            f"({mass:.1%} of its probability), e.g. {unlogged[:5]}"
        )
    if det > max_deterministic_share:
        warnings.append(
            f"no exploration: {det:.1%} of the logs have propensity 1; off-policy estimates only "
            "cover where the candidate agrees with the logging policy"
        )
    if ess < min_ess_ratio * n:
        warnings.append(
            f"low effective sample size: {ess:.1f} of {n} rounds ({ess / n:.2%}); intervals will be wide"
        )
    mean_w = float(w.mean())
    if abs(mean_w - 1.0) > weight_mean_tol:
        warnings.append(
            f"mean importance weight is {mean_w:.3f}, expected ≈ 1: propensities may be wrong or the "
            "candidate's actions poorly covered"
        )
    return OPEDiagnostics(
        n_rounds=n,
        ess=ess,
        ess_ratio=ess / n,
        mean_weight=mean_w,
        max_weight=float(w.max()),
        deterministic_share=det,
        unsupported_mass=unsupported,
        unlogged_actions=unlogged,
        warnings=warnings,
    )


# ----------------------------------------------------------------------------------------------- together


@dataclass(frozen=True)
class OPEReport:
    """Several estimators' values and intervals on the same logs, with the diagnostics."""

    estimates: dict[str, PolicyValueInterval]
    diagnostics: OPEDiagnostics

    def value(self, estimator: str) -> PolicyValueInterval:
        try:
            return self.estimates[estimator]
        except KeyError:
            raise KeyError(f"no estimate named {estimator!r} (have: {', '.join(self.estimates)})") from None

    def to_dict(self) -> dict[str, Any]:
        return {
            "estimates": {k: v.to_dict() for k, v in self.estimates.items()},
            "diagnostics": self.diagnostics.to_dict(),
        }


def default_estimators(with_reward_model: bool) -> list[BaseOffPolicyEstimator]:
    """IPW and SNIPW; plus DM and DR when a reward model is given."""
    ests: list[BaseOffPolicyEstimator] = [
        InverseProbabilityWeighting(),
        SelfNormalizedInverseProbabilityWeighting(),
    ]
    if with_reward_model:
        ests += [DirectMethod(), DoublyRobust()]
    return ests


def evaluate_off_policy(
    *,
    reward: Any,
    action: Any,
    pscore: Any,
    action_dist: Any,
    position: Any = None,
    estimated_rewards_by_reg_model: Any = None,
    behavior_action_dist: Any = None,
    estimators: Sequence[BaseOffPolicyEstimator] | None = None,
    alpha: float = 0.05,
    n_bootstrap_samples: int = 1000,
    random_state: int | None = 0,
) -> OPEReport:
    """Run several estimators (default: IPW, SNIPW, DM, DR) with bootstrap intervals, plus diagnostics.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> action = rng.integers(0, 2, 200); reward = (action == 0).astype(float)
    >>> report = evaluate_off_policy(reward=reward, action=action, pscore=np.full(200, 0.5),
    ...                              action_dist=np.tile([1.0, 0.0], (200, 1)), n_bootstrap_samples=200)
    >>> round(report.value("snipw").value, 6)
    1.0
    """
    inputs = {
        "reward": reward,
        "action": action,
        "pscore": pscore,
        "action_dist": action_dist,
        "position": position,
        "estimated_rewards_by_reg_model": estimated_rewards_by_reg_model,
    }
    bf = check_bandit_feedback(**inputs)  # validate once; fail before any work
    ests = (
        list(estimators)
        if estimators is not None
        else default_estimators(bf.estimated_rewards_by_reg_model is not None)
    )
    estimates = {}
    for est in ests:
        estimates[est.name] = est.estimate_interval(
            **inputs, alpha=alpha, n_bootstrap_samples=n_bootstrap_samples, random_state=random_state
        )
    diag = ope_diagnostics(
        action=bf.action,
        pscore=bf.pscore,
        action_dist=bf.action_dist,
        position=bf.position,
        behavior_action_dist=behavior_action_dist,
    )
    return OPEReport(estimates, diag)


def estimate_policy_values(
    *,
    reward: Any,
    action: Any,
    pscore: Any,
    action_dist: Any,
    position: Any = None,
    estimated_rewards_by_reg_model: Any = None,
    estimators: Sequence[BaseOffPolicyEstimator] | None = None,
) -> dict[str, float]:
    """Point estimates of several estimators, validating the inputs once (no bootstrap).

    The fast path for sweeps: the per-estimator terms share one validated :class:`BanditFeedback`.
    """
    bf = check_bandit_feedback(
        reward=reward,
        action=action,
        pscore=pscore,
        action_dist=action_dist,
        position=position,
        estimated_rewards_by_reg_model=estimated_rewards_by_reg_model,
    )
    ests = (
        list(estimators)
        if estimators is not None
        else default_estimators(bf.estimated_rewards_by_reg_model is not None)
    )
    out = {}
    for est in ests:
        if est.needs_reward_model and bf.estimated_rewards_by_reg_model is None:
            raise OPEInputError(f"estimated_rewards_by_reg_model: required by {est.name}")
        out[est.name] = float(est._round_rewards(bf).mean())
    return out


def tabular_reward_model(
    *,
    reward: Any,
    action: Any,
    n_actions: int,
    position: Any = None,
    len_list: int = 1,
    prior_strength: float = 10.0,
    n_folds: int = 2,
    random_state: int | None = 0,
) -> FloatArray:
    """A cross-fitted reward model ``q̂(a, k)``: per-(action, slot) mean reward, shrunk to the slot mean.

    ``q̂(a, k) = (Σ r + m · r̄_k) / (count + m)`` with ``m = prior_strength``, fit on the other folds of
    each round (cross-fitting, as DR's theory asks, so a round's own reward never predicts itself).
    Context-free: right for the Open Bandit Dataset's context-free policies and as a baseline elsewhere.

    Returns
    -------
    ndarray of shape (n_rounds, n_actions, len_list)
    """
    r = _as_1d("reward", reward, np.float64, None)
    n = r.shape[0]
    a = _as_1d("action", action, np.int64, n)
    k = np.zeros(n, dtype=np.int64) if position is None else _as_1d("position", position, np.int64, n)
    if n_folds < 2:
        raise OPEInputError(f"n_folds: must be >= 2 for cross-fitting, got {n_folds}")
    fold = np.random.default_rng(random_state).permutation(n) % n_folds
    out = np.empty((n, n_actions, len_list), dtype=np.float64)
    for f in range(n_folds):
        train = fold != f
        sums = np.zeros((n_actions, len_list))
        counts = np.zeros((n_actions, len_list))
        np.add.at(sums, (a[train], k[train]), r[train])
        np.add.at(counts, (a[train], k[train]), 1.0)
        slot_mean = sums.sum(axis=0) / np.maximum(counts.sum(axis=0), 1.0)  # (L,)
        denom = counts + prior_strength
        q = np.where(denom > 0, (sums + prior_strength * slot_mean) / np.maximum(denom, 1e-300), slot_mean)
        out[fold == f] = q
    return out


__all__ = [
    "SNIPS",
    "BanditFeedback",
    "BaseOffPolicyEstimator",
    "DirectMethod",
    "DoublyRobust",
    "DoublyRobustWithShrinkage",
    "InverseProbabilityWeighting",
    "LoggedFeedback",
    "OPEDiagnostics",
    "OPEInputError",
    "OPEReport",
    "PolicyValueInterval",
    "SelfNormalizedInverseProbabilityWeighting",
    "SwitchDoublyRobust",
    "bootstrap_interval",
    "bootstrap_means",
    "check_bandit_feedback",
    "default_estimators",
    "effective_sample_size",
    "estimate_policy_values",
    "evaluate_off_policy",
    "logged_feedback_from_decisions",
    "ope_diagnostics",
    "tabular_reward_model",
]


# ----------------------------------------------------------------------------------------------- store logs


@dataclass(frozen=True)
class LoggedFeedback:
    """Logged decisions as OPE arrays, aligned with ``actions`` (the shared candidate set).

    ``behavior_action_dist`` is the logging policy's full distribution, which rewardloop logs on every
    decision, so the support diagnostics are exact.
    """

    actions: tuple[str, ...]
    action: IntArray  # (n,)
    pscore: FloatArray  # (n,)
    reward: FloatArray  # (n,)
    behavior_action_dist: FloatArray  # (n, K)
    decision_ids: list[str]

    @property
    def n_rounds(self) -> int:
        return int(self.action.shape[0])


def logged_feedback_from_decisions(batch: Any) -> LoggedFeedback:
    """Turn a store ``DecisionBatch`` (with compiled rewards) into OPE arrays.

    Decisions without a reward are left out. Every decision must offer the same ``actions`` in the same
    order (a router's experts, a classifier's labels); otherwise an :class:`OPEInputError` names the first
    one that differs.
    """
    kept = [d for d in batch.decisions if d.id in batch.rewards]
    if not kept:
        raise OPEInputError("decisions: none has a compiled reward (compile rewards before OPE)")
    actions = kept[0].actions
    for d in kept:
        if d.actions != actions:
            raise OPEInputError(
                f"decisions: {d.id} offers actions {list(d.actions)[:5]}, not the same as {list(actions)[:5]}"
            )
    return LoggedFeedback(
        actions=actions,
        action=np.fromiter((d.action_index for d in kept), np.int64, len(kept)),
        pscore=np.fromiter((d.pscore for d in kept), np.float64, len(kept)),
        reward=np.fromiter((batch.rewards[d.id].value for d in kept), np.float64, len(kept)),
        behavior_action_dist=np.asarray([d.action_dist for d in kept], dtype=np.float64),
        decision_ids=[d.id for d in kept],
    )
