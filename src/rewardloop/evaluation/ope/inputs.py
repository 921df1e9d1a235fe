"""The inputs every estimator takes (OBP names and shapes), validated once into a BanditFeedback."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any, Required, TypedDict

import numpy as np

from rewardloop.evaluation.ope._common import FloatArray, IntArray, OPEInputError


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


def as_1d(name: str, value: Any, dtype: type, n: int | None) -> np.ndarray:
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


class BanditLogs(TypedDict, total=False):
    """The logged bandit feedback every estimator takes, by OBP's names (:func:`check_bandit_feedback`)."""

    reward: Required[Any]  # (n_rounds,)
    action: Required[Any]  # (n_rounds,)
    pscore: Required[Any]  # (n_rounds,)
    action_dist: Required[Any]  # (n_rounds, n_actions[, len_list])
    position: Any  # (n_rounds,), optional
    estimated_rewards_by_reg_model: Any  # like action_dist, optional


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
    reward_ = as_1d("reward", reward, np.float64, n)
    action_ = as_1d("action", action, np.int64, n)
    pscore_ = as_1d("pscore", pscore, np.float64, n)
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
        position_ = as_1d("position", position, np.int64, n)
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
