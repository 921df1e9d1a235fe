"""Compiled per-step kernels of the ridge routers (optional: ``pip install 'rewardloop[fast]'``).

One LinUCB act + learn at K = 10, D = 65 is ~85 kFLOP over ~340 kB of state (every arm's A⁻¹ is read
once to score): a few µs of arithmetic, but the NumPy path spends most of its time in the ~20 small
array calls around it. These numba kernels fuse each step into one call with the same formulas:

- :func:`ucb_choice` — ``θ_kᵀx + α √max(xᵀA_k⁻¹x, 0)`` for every arm in one pass over the state, the
  argmax and its action distribution (exact ties counted; the caller draws among them);
- :func:`sherman_morrison` — the rank-one update of one arm's ``A⁻¹`` and ``θ`` in place.

Both take the context as given (d,) and append the intercept's 1 themselves, so a step allocates no
augmented copy in Python.

They agree with the NumPy path to rounding (~1e-16 relative: only the summation order differs); the
NumPy path stays the one used when numba is not installed, or when ``REWARDLOOP_KERNELS=0``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import Any

import numpy as np

ucb_choice: Callable[..., Any] | None = None
sherman_morrison: Callable[..., Any] | None = None
augmented: Any = None
inv_times: Any = None


def _augment(x: Any, D: int) -> Any:  # pragma: no cover - compiled
    # (d,) context -> (D,) with the intercept's 1 appended; a (D,) one is used as it is
    d = x.shape[0]
    if d == D:
        return x
    xa = np.empty(D)
    for j in range(d):
        xa[j] = x[j]
    for j in range(d, D):
        xa[j] = 1.0
    return xa


def _inv_times(a_inv: Any, x: Any, ax: Any) -> None:  # pragma: no cover - compiled
    # ax (D,) = A⁻¹x = Σ_i x_i A⁻¹[i, :] (A⁻¹ symmetric): independent lanes over j, so it vectorises.
    # Four rows per sweep of ax, added left to right: the same additions in the same order as one row
    # at a time (bit for bit), with ax loaded and stored a quarter as often (~25% fewer instructions).
    D = x.shape[0]
    ax[:] = 0.0
    i = 0
    while i + 4 <= D:
        x0, x1, x2, x3 = x[i], x[i + 1], x[i + 2], x[i + 3]
        for j in range(D):
            ax[j] = (((ax[j] + a_inv[i, j] * x0) + a_inv[i + 1, j] * x1) + a_inv[i + 2, j] * x2) + a_inv[
                i + 3, j
            ] * x3
        i += 4
    while i < D:
        xi = x[i]
        for j in range(D):
            ax[j] += a_inv[i, j] * xi
        i += 1


def _ucb_choice(A: Any, theta: Any, x: Any, alpha: float) -> Any:  # pragma: no cover - compiled
    # A (K, D, D) symmetric, theta (K, D), x (d,) or (D,) -> (ucb (K,), dist (K,), i, n_top); i = -1
    # for a non-finite x. ucb[k] = θ_kᵀx + α √max(xᵀA_k⁻¹x, 0), Li et al. 2010, eq. 5.
    K, D = theta.shape
    xa = augmented(x, D)
    ucb = np.empty(K)
    ax = np.empty(D)
    for k in range(K):
        mean = 0.0
        for j in range(D):
            mean += theta[k, j] * xa[j]
        inv_times(A[k], xa, ax)
        q = 0.0
        for j in range(D):
            q += ax[j] * xa[j]
        ucb[k] = mean + math.sqrt(max(q, 0.0)) * alpha
    i = 0  # ndarray.argmax: the first maximum, or the first NaN if there is one
    for k in range(K):
        if math.isnan(ucb[k]):
            i = k
            break
        if ucb[k] > ucb[i]:
            i = k
    dist = np.zeros(K)
    if not math.isfinite(ucb[i]):
        for j in range(D):
            if not math.isfinite(xa[j]):
                return ucb, dist, -1, 0
    n_top = 0
    for k in range(K):
        if ucb[k] == ucb[i]:
            n_top += 1
    if n_top > 1:  # exact ties: uniform over them (the caller draws which one is played)
        for k in range(K):
            if ucb[k] == ucb[i]:
                dist[k] = 1.0 / n_top
    else:
        dist[i] = 1.0
    return ucb, dist, i, n_top


def _sherman_morrison(A: Any, thetas: Any, k: int, x: Any, r: float, w: float) -> bool:  # pragma: no cover
    # arm k's A[k] (D, D) and thetas[k] (D,) updated in place from x (d,) or (D,); False (nothing
    # changed) for a non-finite x
    a_inv, theta = A[k], thetas[k]
    D = theta.shape[0]
    x = augmented(x, D)
    ax = np.empty(D)
    inv_times(a_inv, x, ax)
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
    global augmented, inv_times, ucb_choice, sherman_morrison, _loaded
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
    augmented = numba.njit(cache=True, nogil=True)(_augment)  # the kernels call these by their names
    inv_times = numba.njit(cache=True, nogil=True)(_inv_times)
    ucb_choice = numba.njit(cache=True, nogil=True)(_ucb_choice)
    sherman_morrison = numba.njit(cache=True, nogil=True)(_sherman_morrison)
