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
    # with one slot: the row sums and gathers validation's blocked pass computed on the way
    row_pass: _RowPass | None = None

    @property
    def n_rounds(self) -> int:
        return int(self.reward.shape[0])

    @property
    def n_actions(self) -> int:
        return int(self.action_dist.shape[1])

    # The derived arrays are cached: several estimators on one BanditFeedback share them.

    def _factual(self, x: FloatArray) -> FloatArray:
        """``x[t, a_t, position[t]]`` for every round, shape (n_rounds,)."""
        n, n_actions, len_list = x.shape
        if x.flags.c_contiguous:  # one flat gather: ~5x cheaper than numpy's 3-D fancy indexing
            flat = np.arange(0, n * n_actions * len_list, n_actions * len_list)
            gathered: FloatArray = x.reshape(-1).take(flat + self.action * len_list + self.position)
            return gathered
        return x[np.arange(n), self.action, self.position]  # e.g. a broadcast view: no copy

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
        pi = self._factual(self.action_dist) if self.row_pass is None else self.row_pass.pi_factual
        return pi / self.pscore

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
        q_hat = self._q_hat()
        if self.row_pass is not None and self.row_pass.q_factual is not None:
            return self._finite(self.row_pass.q_factual)
        return self._finite(self._factual(q_hat))

    @cached_property
    def q_hat_policy(self) -> FloatArray:
        """``q̂(x_t, π_e) = Σ_a π_e(a|x_t) q̂(x_t, a) / Σ_a π_e(a|x_t)`` at each round's slot, shape (n,).

        This is OBP's ``np.average(q_hat, weights=pi_e, axis=1)``; the division is by ≈ 1.
        """
        q_hat = self._q_hat()
        if self.row_pass is not None and self.row_pass.q_sums is not None:  # from validation
            return self._finite(self.row_pass.q_sums / self.row_pass.sums)
        pi_e = self.pi_e_at_position  # (n, K)
        q_at = self._at_position(q_hat)  # (n, K)
        if self.action_dist_sums is not None:  # Σ_a π_e(a|x_t) at each round's slot, already computed
            norm = self.action_dist_sums[np.arange(self.n_rounds), self.position]
        else:
            norm = pi_e.sum(axis=1)
        return self._finite(np.asarray(np.einsum("nk,nk->n", q_at, pi_e) / norm, dtype=np.float64))


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


# Rows per block of the fused pass: two (rows, K) float64 blocks of 1 MB each stay in the 2-4 MB L2
# cache, so the second and third reads of a block do not go back to L3 or memory.
_BLOCK_FLOATS = 1 << 17


@dataclass(frozen=True)
class _RowPass:
    """What one pass over the rows of a one-slot (n, K) ``action_dist`` (and ``q̂``) yields."""

    sums: FloatArray  # (n,) Σ_a π(a|x_t)
    lowest: float  # min over every π(a|x_t)
    pi_factual: FloatArray  # (n,) π(a_t|x_t)
    q_sums: FloatArray | None  # (n,) Σ_a π(a|x_t) q̂(x_t, a)
    q_factual: FloatArray | None  # (n,) q̂(x_t, a_t)


def _row_pass(dist: FloatArray, q_hat: FloatArray | None, action: IntArray) -> _RowPass:
    """The validation sums, the minimum, the DM sums and the factual gathers, block by block of rows.

    Five reductions and gathers read each block of ``dist`` (and ``q̂``) while it is in the L2 cache,
    instead of five passes over arrays that only fit in L3. Each row's sums are computed exactly as
    one whole-array einsum computes them.
    """
    n, n_actions = dist.shape
    block = max(1, _BLOCK_FLOATS // max(n_actions, 1))
    sums, pi_factual = np.empty(n), np.empty(n)
    q_sums = q_factual = None
    if q_hat is not None:
        q_sums, q_factual = np.empty(n), np.empty(n)
    offsets = np.arange(0, min(block, n) * n_actions, n_actions)  # row starts within a flat block
    lowest = np.inf
    for start in range(0, n, block):
        rows = slice(start, start + block)
        d = dist[rows]
        flat = offsets[: d.shape[0]] + action[rows]
        if q_hat is not None and q_sums is not None and q_factual is not None:
            q = q_hat[rows]
            np.einsum("nk,nk->n", q, d, out=q_sums[rows])
            q_factual[rows] = q.take(flat)
        np.einsum("nk->n", d, out=sums[rows])
        lowest = min(lowest, float(d.min()))
        pi_factual[rows] = d.take(flat)
    return _RowPass(sums, lowest, pi_factual, q_sums, q_factual)


def _check_rounds(
    reward: Any, action: Any, pscore: Any, position: Any, shape: tuple[int, int, int]
) -> tuple[FloatArray, IntArray, FloatArray, IntArray]:
    """``reward``, ``action``, ``pscore`` and ``position`` as checked 1-D arrays of ``n`` rounds."""
    n, n_actions, len_list = shape
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
    return reward_, action_, pscore_, position_


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
    n, _, len_list = dist.shape
    if n == 0:
        raise OPEInputError("action_dist: no rounds to evaluate (n_rounds=0)")
    q_hat = _reward_model(estimated_rewards_by_reg_model, dist.shape, np.shape(action_dist))
    reward_, action_, pscore_, position_ = _check_rounds(reward, action, pscore, position, dist.shape)
    # A NaN or inf makes its row sum non-finite, which fails the "sums to 1" test (written so that NaN
    # fails it); the min catches negative entries. einsum, because ndarray.sum over the middle axis is
    # ~10x slower when L is small. With one slot, one blocked pass also yields what the estimators read.
    row_pass = None
    if len_list == 1:
        row_pass = _row_pass(dist[:, :, 0], None if q_hat is None else q_hat[:, :, 0], action_)
        sums, lowest = row_pass.sums[:, None], row_pass.lowest  # (n, 1)
    else:
        sums, lowest = np.einsum("nkl->nl", dist), float(dist.min())  # (n, L)
    off = ~(np.abs(sums - 1.0) <= 1e-8 + 1e-5)  # np.allclose's tolerance, as OBP checks it
    if lowest < 0:
        raise OPEInputError("action_dist: probabilities must be >= 0")
    if off.any():
        t = int(np.argwhere(off)[0][0])
        raise OPEInputError(f"action_dist: round {t} does not sum to 1 over actions (sums to {sums[t]})")
    return BanditFeedback(reward_, action_, pscore_, dist, position_, q_hat, sums, row_pass)


def _reward_model(value: Any, shape: tuple[int, ...], given_shape: tuple[int, ...]) -> FloatArray | None:
    """``estimated_rewards_by_reg_model`` as (n, K, L) float64, or None; its shape must be ``shape``.

    Finiteness is checked where the values are used (q_hat_policy, q_hat_factual): a NaN or inf
    propagates through the weighted sums, and this saves a pass over an (n, K, L) array.
    """
    if value is None:
        return None
    q_hat = np.asarray(value, dtype=np.float64)
    if q_hat.ndim == 2:
        q_hat = q_hat[:, :, None]
    if q_hat.shape != shape:
        raise OPEInputError(
            f"estimated_rewards_by_reg_model: shape {np.shape(value)} "
            f"differs from action_dist's {given_shape}"
        )
    return q_hat
