"""Compiled per-step kernels of the ridge routers (optional: ``pip install 'rewardloop[fast]'``).

One LinUCB act + learn at K = 10, D = 65 is ~85 kFLOP over ~340 kB of state (every arm's A⁻¹ is read
once to score): a few µs of arithmetic, but the NumPy path spends most of its time in the ~20 small
array calls around it. These numba kernels fuse each step into one call with the same formulas:

- :func:`ucb_scores` — ``θ_kᵀx + α √max(xᵀA_k⁻¹x, 0)`` for every arm in one pass over the state;
- :func:`sherman_morrison` — the rank-one update of one arm's ``A⁻¹`` and ``θ`` in place.

They agree with the NumPy path to rounding (~1e-16 relative: only the summation order differs); the
NumPy path stays the one used when numba is not installed, or when ``REWARDLOOP_KERNELS=0``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import Any

import numpy as np

ucb_scores: Callable[..., Any] | None = None
sherman_morrison: Callable[..., Any] | None = None


def _ucb_scores(A: Any, theta: Any, x: Any, alpha: float) -> Any:  # pragma: no cover - compiled
    # A (K, D, D) symmetric, theta (K, D), x (D,) -> (K,) fresh
    K, D = theta.shape
    ucb = np.empty(K)
    ax = np.empty(D)
    for k in range(K):
        ax[:] = 0.0  # A⁻¹x = Σ_i x_i A[i, :] (A symmetric): independent lanes, so it vectorises
        for i in range(D):
            xi = x[i]
            for j in range(D):
                ax[j] += A[k, i, j] * xi
        mean = 0.0
        q = 0.0
        for j in range(D):
            mean += theta[k, j] * x[j]
            q += ax[j] * x[j]
        ucb[k] = mean + math.sqrt(max(q, 0.0)) * alpha  # Li et al. 2010, eq. 5
    return ucb


def _sherman_morrison(A: Any, thetas: Any, k: int, x: Any, r: float, w: float) -> bool:  # pragma: no cover
    # arm k's A[k] (D, D) and thetas[k] (D,) updated in place; False (nothing changed) for a non-finite x
    a_inv, theta = A[k], thetas[k]
    D = x.shape[0]
    ax = np.zeros(D)  # A⁻¹x = Σ_i x_i A[i, :] (A symmetric): row-wise, so it vectorises
    for i in range(D):
        xi = x[i]
        for j in range(D):
            ax[j] += a_inv[i, j] * xi
    denom = 1.0 / w
    pred = 0.0
    for j in range(D):
        denom += ax[j] * x[j]
        pred += theta[j] * x[j]
    if not math.isfinite(denom):
        return False
    c = -1.0 / denom
    for i in range(D):
        ci = c * ax[i]
        for j in range(D):
            a_inv[i, j] += ci * ax[j]
    g = (r - pred) / denom
    for j in range(D):
        theta[j] += ax[j] * g
    return True


_loaded = False


def load() -> None:
    """Compile the kernels on first call (numba's import and compile stay off the import path);
    leaves them ``None`` without numba or with ``REWARDLOOP_KERNELS=0``."""
    global ucb_scores, sherman_morrison, _loaded
    if _loaded:
        return
    _loaded = True
    if os.environ.get("REWARDLOOP_KERNELS", "1") == "0":
        return
    try:
        import numba
    except ImportError:
        return
    # No fastmath: a fixed summation order, the same for every arm whatever its alignment, so arms in
    # the same state score exactly the same (ties stay ties), and NaN/inf propagate to the checks.
    ucb_scores = numba.njit(cache=True, nogil=True)(_ucb_scores)
    sherman_morrison = numba.njit(cache=True, nogil=True)(_sherman_morrison)
