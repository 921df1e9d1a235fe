"""Per-arm Bayesian ridge regression: the state LinUCB, linear Thompson sampling, ε-greedy and softmax share.

Each arm ``k`` keeps the ridge statistics of the rows it was played on (disjoint model, Li et al. 2010,
"A Contextual-Bandit Approach to Personalized News Article Recommendation", WWW, Algorithm 1)::

    A_k = λ I + s_k e eᵀ + Σ_t w_t x_t x_tᵀ        b_k = s_k m_k e + Σ_t w_t r_t x_t        θ_k = A_k⁻¹ b_k

where ``e`` is the intercept coordinate, ``(m_k, s_k)`` the arm's prior (mean, strength): the prior
counts as ``s_k`` pseudo-observations of reward ``m_k`` on the intercept alone, so before any data
every context is predicted ``s_k m_k / (λ + s_k)`` — the prior mean shrunk by the ridge.

Only ``A_k⁻¹`` and ``θ_k`` are stored (``b_k = A_k θ_k`` is derived), updated by Sherman–Morrison
(rank one, O(d²)) on each reward::

    A⁻¹ ← A⁻¹ − (A⁻¹x)(A⁻¹x)ᵀ / (1/w + xᵀA⁻¹x)
    θ   ← θ + A⁻¹x (r − xᵀθ) / (1/w + xᵀA⁻¹x)          (A⁻¹x taken before the update)

and one decision scores every arm with one batched product over the (K, D, D) stack.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.linalg.blas import dger

from rewardloop.learners.bandits import _kernels
from rewardloop.learners.bandits._base import BanditRouter, IntArray, PriorSpec
from rewardloop.learners.bandits._params import Bound, hyperparameter
from rewardloop.policies.router import FloatArray, RouterInputError


@dataclass(eq=False, kw_only=True)
class RidgeRouter(BanditRouter):
    """Base of the linear routers: per-arm ridge state and its updates (not used directly).

    Parameters
    ----------
    arms : sequence of str
    dim : int
        Length of the context vectors.
    l2 : float, default 1.0
        Ridge penalty λ (the prior precision of every coefficient).
    fit_intercept : bool, default True
        Append a constant 1 to each context; needed for priors with a strength > 0.
    priors, default_prior, reward_range, random_state
        See :class:`~rewardloop.learners.bandits._base.BanditRouter`.
    """

    dim: int = field(
        kw_only=False, metadata={"help": "length of the context vectors", "bound": Bound(1.0, integer=True)}
    )
    l2: float = hyperparameter(
        1.0, "ridge penalty λ (the prior precision of every coefficient)", Bound(0.0, closed="neither")
    )
    fit_intercept: bool = hyperparameter(
        True, "append a constant 1 to each context (priors with strength > 0 sit on it)"
    )

    def _validate_params(self) -> None:
        super()._validate_params()
        self._d = int(self.dim)
        self._D = self._d + 1 if self.fit_intercept else self._d  # augmented length
        self._one = np.ones(1)  # the intercept's input
        _kernels.load()

    def _check_prior(self, where: str, spec: PriorSpec) -> tuple[float, float]:
        mean, strength = super()._check_prior(where, spec)
        if strength > 0 and not self.fit_intercept:
            raise RouterInputError(where, "priors with strength > 0 need fit_intercept=True (they sit on it)")
        return mean, strength

    # ---------------------------------------------------------------------------------------- state

    def _pack(self, A_inv: FloatArray, theta: FloatArray) -> None:
        """Keep every arm's A⁻¹ and θ in one (K·D + K, D) buffer so that one matrix–vector product
        gives all of ``A_k⁻¹x`` and ``θ_kᵀx`` at once; ``A_inv_`` and ``theta_`` are views into it."""
        K, D = len(theta), self._D
        self._W = np.empty((K * D + K, D))
        self.A_inv_: FloatArray = self._W[: K * D].reshape(K, D, D)  # (K, D, D) view
        self.theta_: FloatArray = self._W[K * D :]  # (K, D) view
        self.A_inv_[...] = A_inv
        self.theta_[...] = theta

    def __setstate__(self, state: dict[str, Any]) -> None:
        # copy.deepcopy copies views as separate arrays: re-pack so A_inv_ and theta_ view _W again.
        self.__dict__.update(state)
        if "_W" in state:
            self._pack(np.array(self.A_inv_), np.array(self.theta_))

    def _empty_state(self) -> None:
        D = self._D
        self._pack(np.zeros((0, D, D)), np.zeros((0, D)))

    def _add_arm_state(self, mean: float, strength: float) -> None:
        D = self._D
        diag = np.full(D, float(self.l2))
        b = np.zeros(D)
        if self.fit_intercept:
            diag[-1] += strength  # s pseudo-observations on the intercept
            b[-1] = strength * mean
        a_inv = np.diag(1.0 / diag)
        self._pack(
            np.concatenate([self.A_inv_, a_inv[None]]), np.concatenate([self.theta_, (a_inv @ b)[None]])
        )

    def _delete_arm_state(self, i: int) -> None:
        self._pack(np.delete(self.A_inv_, i, axis=0), np.delete(self.theta_, i, axis=0))

    def _state_arrays(self) -> dict[str, FloatArray]:
        return {"A_inv": self.A_inv_, "theta": self.theta_}

    def _set_state_arrays(self, arrays: Mapping[str, FloatArray]) -> None:
        self._pack(
            np.asarray(arrays["A_inv"], dtype=np.float64), np.asarray(arrays["theta"], dtype=np.float64)
        )

    # -------------------------------------------------------------------------------------- contexts

    def _check_context(self, x: Any, check_finite: bool = True) -> FloatArray:
        xv = self._raw_context(x)
        if check_finite and not math.isfinite(xv @ xv):
            raise _not_finite()
        return self._augment(xv)

    def _raw_context(self, x: Any) -> FloatArray:
        """``x`` as a float64 array of shape (dim,), not augmented and not checked for NaN/inf."""
        if type(x) is np.ndarray and x.dtype is _F64:  # the hot path: no conversion, no copy
            xv = x
        else:
            try:
                xv = np.asarray(x, dtype=np.float64)
            except (TypeError, ValueError):
                raise RouterInputError(
                    "context", f"must be {self._d} numbers, got {type(x).__name__}"
                ) from None
        if xv.shape != (self._d,):
            raise RouterInputError("context", f"expected shape ({self._d},), got {xv.shape}")
        return xv

    def _augment(self, xv: FloatArray) -> FloatArray:
        """(dim,) -> (D,): the intercept's 1 appended (a (D,) context is returned as it is)."""
        if len(xv) == self._D:
            return xv
        return np.concatenate((xv, self._one))  # (D,), last entry the intercept's 1

    def _learn_context(self, x: Any) -> FloatArray:
        # unaugmented: the kernel appends the intercept itself, the NumPy path in _update
        return self._raw_context(x)

    def _check_contexts(self, X: Any, n: int) -> FloatArray:
        """Checked contexts of shape (n, dim), not yet augmented (``_batch_update`` does that)."""
        try:
            Xv = np.asarray(X, dtype=np.float64)
        except (TypeError, ValueError):
            raise RouterInputError("X", "must be a numeric array of shape (n_rounds, dim)") from None
        if Xv.shape != (n, self._d):
            raise RouterInputError("X", f"expected shape ({n}, {self._d}), got {Xv.shape}")
        if not np.isfinite(Xv.sum()):
            bad = np.flatnonzero(~np.isfinite(Xv).all(axis=1))
            raise RouterInputError(
                f"X[{bad[0] if len(bad) else 0}]", "must be finite numbers (found NaN or inf)"
            )
        return Xv

    # --------------------------------------------------------------------------------------- updates

    def _update(self, xa: FloatArray, i: int, r: float, w: float) -> None:
        kernel = _kernels.sherman_morrison
        if kernel is not None:  # the same update, compiled into one call (xa of shape (dim,) or (D,))
            if not kernel(self.A_inv_, self.theta_, i, xa, r, w):
                raise _not_finite()
            return
        xa = self._augment(xa)
        a_inv = self.A_inv_[i]  # (D, D) view into the packed buffer, C-contiguous and symmetric
        ax = a_inv @ xa  # (D,) A⁻¹x before the update
        denom = 1.0 / w + float(ax @ xa)
        if not math.isfinite(denom):  # A⁻¹ is positive definite: finite iff x is (learn skips the check)
            raise _not_finite()
        # Sherman–Morrison, in place: BLAS rank-one update on the F-ordered view (the same memory).
        dger(-1.0 / denom, ax, ax, a=a_inv.T, overwrite_a=1)
        theta = self.theta_[i]
        theta += ax * ((r - float(theta @ xa)) / denom)

    def _batch_statistics(
        self, X: FloatArray, idx: IntArray, r: FloatArray, w: FloatArray
    ) -> dict[str, FloatArray]:
        """Per arm ``Σ w x xᵀ`` (K, D, D), ``Σ w r x`` (K, D) and the row count (K,): sums over rows."""
        n, d = X.shape
        K, D = len(self.theta_), self._D
        order = np.argsort(idx, kind="stable")  # rows grouped by arm: one contiguous block each
        Xa = np.empty((n, D))  # (n, D) augmented, in arm order
        Xa[:, :d] = X[order]
        if self.fit_intercept:
            Xa[:, d] = 1.0
        idx_s, wr = idx[order], (w * r)[order]
        Xw = Xa * w[order, None] if not np.all(w == 1.0) else Xa  # (n, D) rows scaled by their weight
        touched, starts = np.unique(idx_s, return_index=True)
        bounds = [*starts.tolist(), n]
        xx, xr = np.zeros((K, D, D)), np.zeros((K, D))
        for t, k in enumerate(touched.tolist()):
            lo, hi = bounds[t], bounds[t + 1]
            xx[k] = Xw[lo:hi].T @ Xa[lo:hi]  # Σ w x xᵀ
            xr[k] = wr[lo:hi] @ Xa[lo:hi]  # Σ w r x
        return {"xx": xx, "xr": xr, "rows": np.bincount(idx, minlength=K).astype(np.float64)}

    def _apply_statistics(self, stats: Mapping[str, FloatArray]) -> None:
        """``A += Σ w x xᵀ``, ``b += Σ w r x`` on the arms with rows, then back to ``A⁻¹`` and θ."""
        touched = np.flatnonzero(stats["rows"] > 0)
        if not len(touched):
            return
        A = np.linalg.inv(self.A_inv_[touched])  # (T, D, D) back to precisions
        b = np.einsum("kij,kj->ki", A, self.theta_[touched])  # (T, D) b = A θ
        A += stats["xx"][touched]
        b += stats["xr"][touched]
        A_inv = np.linalg.inv(A)
        A_inv = (A_inv + A_inv.transpose(0, 2, 1)) / 2  # exact symmetry against rounding
        self.A_inv_[touched] = A_inv
        self.theta_[touched] = np.einsum("kij,kj->ki", A_inv, b)

    # ------------------------------------------------------------------------------------- estimates

    @property
    def b_(self) -> FloatArray:
        """Per-arm ``b_k = A_k θ_k`` (prior plus Σ w r x), shape (n_actions, D).

        Derived, not stored: ``A⁻¹`` and ``θ`` are the state (as sufficient as ``A`` and ``b``), which
        saves the online update two array operations.
        """
        self._ensure()
        b = np.linalg.solve(self.A_inv_, self.theta_[..., None])[..., 0]
        return np.asarray(b, dtype=np.float64)

    def predict(self, x: Any) -> FloatArray:
        """Estimated reward of every arm for context ``x``, shape (n_actions,)."""
        self._ensure()
        return self.theta_ @ self._check_context(x)

    def _mean_var(self, xa: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Per-arm estimate ``θ_kᵀx`` and ``xᵀA_k⁻¹x``, each of shape (K,), in one batched product."""
        K, D = len(self.theta_), self._D
        out = self._W @ xa  # (K·D + K,): every A_k⁻¹x, then every θ_kᵀx
        return out[K * D :], out[: K * D].reshape(K, D) @ xa


_F64 = np.dtype(np.float64)


def _not_finite() -> RouterInputError:
    return RouterInputError("context", "must be finite numbers (found NaN, inf or an overflow)")
