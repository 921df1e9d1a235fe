"""Input drift between a baseline window and the current one: what comes in, not how well it is served.

- :func:`population_stability_index` — PSI of two distributions over the same bins,
  ``PSI = Σ_i (q_i − p_i) · ln(q_i / p_i)`` with ``p`` the baseline and ``q`` the current shares (a share
  of 0 is floored at ``eps``). Rules of thumb: < 0.1 stable, 0.1–0.25 moderate, > 0.25 a major shift
  (Siddiqi 2006, *Credit Risk Scorecards*; Yurdakul 2018, *Statistical properties of the PSI*).
- :func:`label_psi` on the predicted-label (chosen action) mix, :func:`confidence_psi` on confidence
  binned at the baseline's deciles. Each comes with a seeded permutation p-value, so that an alert has a
  stated false-alarm rate whatever the window sizes (PSI alone grows with noise in small windows).
- :func:`mmd_test` — a two-sample test on embeddings: the unbiased MMD² with an RBF kernel whose
  bandwidth is the median pairwise distance, and a permutation p-value (Gretton et al. 2012, *A Kernel
  Two-Sample Test*, JMLR 13, eq. 3).
- :func:`rate_test` — a two-proportion z-test, here on the share of decisions that got feedback.

>>> round(population_stability_index(np.array([50, 50]), np.array([25, 75])), 4)
0.2747
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

#: Shares below this count as this in PSI, so that an empty bin gives a large, finite term.
PSI_EPS = 1e-4


@dataclass(frozen=True)
class DriftTest:
    """One drift statistic with its p-value (``None`` when there is no test of it)."""

    name: str
    statistic: float
    p_value: float | None
    n_baseline: int
    n_current: int

    def flagged(self, alpha: float) -> bool:
        return self.p_value is not None and self.p_value < alpha


def _check_counts(name: str, x: FloatArray) -> None:
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"{name}: expected a non-empty 1-d array, got shape {x.shape}")
    if (x < 0).any() or not np.isfinite(x).all():
        raise ValueError(f"{name}: counts must be finite and >= 0")
    if x.sum() <= 0:
        raise ValueError(f"{name}: all counts are 0")


def population_stability_index(
    expected: npt.ArrayLike, actual: npt.ArrayLike, *, eps: float = PSI_EPS
) -> float:
    """PSI between baseline counts ``expected`` and current counts ``actual``, shape (n_bins,) each."""
    p = np.asarray(expected, dtype=np.float64)
    q = np.asarray(actual, dtype=np.float64)
    _check_counts("expected", p)
    _check_counts("actual", q)
    if p.shape != q.shape:
        raise ValueError(f"expected and actual: different numbers of bins ({p.size} vs {q.size})")
    p = np.maximum(p / p.sum(), eps)
    q = np.maximum(q / q.sum(), eps)
    return float(np.sum((q - p) * np.log(q / p)))


def permutation_pvalue(
    statistic: Callable[[np.ndarray, np.ndarray], float],
    baseline: np.ndarray,
    current: np.ndarray,
    *,
    n_permutations: int = 200,
    seed: int = 0,
) -> tuple[float, float]:
    """(observed statistic, p-value): the share of random relabellings of the pooled rows into a
    baseline and a current window of the same sizes whose statistic is at least the observed one,
    ``(1 + #{T_π ≥ T}) / (1 + n_permutations)`` (never 0, exact under exchangeability)."""
    if n_permutations < 1:
        raise ValueError("n_permutations: must be >= 1")
    observed = statistic(baseline, current)
    pooled = np.concatenate([baseline, current])
    n = len(baseline)
    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(n_permutations):
        idx = rng.permutation(len(pooled))
        if statistic(pooled[idx[:n]], pooled[idx[n:]]) >= observed - 1e-12:
            hits += 1
    return observed, (1 + hits) / (1 + n_permutations)


def _need(name: str, n: int, minimum: int = 1) -> None:
    if n < minimum:
        raise ValueError(f"{name}: needs at least {minimum} value(s), got {n}")


def label_psi(
    baseline: Sequence[str], current: Sequence[str], *, n_permutations: int = 200, seed: int = 0
) -> DriftTest:
    """PSI of the predicted-label mix (categories: the union of both windows), with its p-value."""
    _need("baseline", len(baseline))
    _need("current", len(current))
    categories = sorted(set(baseline) | set(current))
    code = {c: i for i, c in enumerate(categories)}
    k = len(categories)
    b = np.array([code[c] for c in baseline], dtype=np.int64)
    c = np.array([code[x] for x in current], dtype=np.int64)

    def stat(x: np.ndarray, y: np.ndarray) -> float:
        return population_stability_index(np.bincount(x, minlength=k), np.bincount(y, minlength=k))

    value, p = permutation_pvalue(stat, b, c, n_permutations=n_permutations, seed=seed)
    return DriftTest("label_psi", value, p, len(b), len(c))


def decile_edges(baseline: FloatArray, n_bins: int = 10) -> FloatArray:
    """Inner bin edges at the baseline's quantiles (ties merged), shape (≤ n_bins − 1,)."""
    qs = np.quantile(baseline, np.linspace(0, 1, n_bins + 1)[1:-1])
    return np.unique(qs)


def binned_psi(baseline: FloatArray, current: FloatArray, n_bins: int = 10) -> float:
    """PSI of a continuous value binned at the baseline's quantiles (``n_bins`` equal-mass bins)."""
    edges = decile_edges(baseline, n_bins)
    k = len(edges) + 1
    p = np.bincount(np.searchsorted(edges, baseline, side="right"), minlength=k)
    q = np.bincount(np.searchsorted(edges, current, side="right"), minlength=k)
    return population_stability_index(p, q)


def confidence_psi(
    baseline: npt.ArrayLike,
    current: npt.ArrayLike,
    *,
    n_bins: int = 10,
    n_permutations: int = 200,
    seed: int = 0,
) -> DriftTest:
    """PSI of confidence binned at the baseline's deciles, with its permutation p-value."""
    b = np.asarray(baseline, dtype=np.float64)
    c = np.asarray(current, dtype=np.float64)
    _need("baseline", b.size)
    _need("current", c.size)
    if not (np.isfinite(b).all() and np.isfinite(c).all()):
        raise ValueError("confidence: values must be finite")

    def stat(x: np.ndarray, y: np.ndarray) -> float:
        return binned_psi(x, y, n_bins)

    value, p = permutation_pvalue(stat, b, c, n_permutations=n_permutations, seed=seed)
    return DriftTest("confidence_psi", value, p, b.size, c.size)


def _mmd2_unbiased(k: FloatArray, n: int) -> float:
    """Unbiased MMD² from the pooled kernel matrix ``k`` (N, N) whose first ``n`` rows are X."""
    m = k.shape[0] - n
    kxx, kyy, kxy = k[:n, :n], k[n:, n:], k[:n, n:]
    sxx = (kxx.sum() - np.trace(kxx)) / (n * (n - 1))
    syy = (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
    return float(sxx + syy - 2 * kxy.mean())


def mmd_test(
    baseline: npt.ArrayLike,
    current: npt.ArrayLike,
    *,
    n_permutations: int = 200,
    max_samples: int = 500,
    bandwidth: float | None = None,
    seed: int = 0,
) -> DriftTest:
    """MMD² two-sample test of embeddings ``baseline`` (n, d) vs ``current`` (m, d), RBF kernel.

    Windows larger than ``max_samples`` are subsampled (seeded) first: the kernel matrix is
    (n + m)², and 500 a side already detects what matters to a monitor. ``bandwidth`` (σ of
    ``exp(−‖x − y‖² / 2σ²)``) defaults to the median pairwise distance of the pooled sample.
    """
    x = np.asarray(baseline, dtype=np.float64)
    y = np.asarray(current, dtype=np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"embeddings: expected (n, d) and (m, d), got {x.shape} and {y.shape}")
    _need("baseline", len(x), 2)
    _need("current", len(y), 2)
    rng = np.random.default_rng(seed)
    if len(x) > max_samples:
        x = x[rng.choice(len(x), max_samples, replace=False)]
    if len(y) > max_samples:
        y = y[rng.choice(len(y), max_samples, replace=False)]
    z = np.concatenate([x, y])
    sq = np.sum(z * z, axis=1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2 * z @ z.T, 0.0)  # (N, N) squared distances
    if bandwidth is None:
        off = d2[np.triu_indices(len(z), k=1)]
        med = float(np.sqrt(np.median(off)))
        bandwidth = med if med > 0 else 1.0
    k = np.exp(-d2 / (2 * bandwidth**2))
    n = len(x)
    observed = _mmd2_unbiased(k, n)
    hits = 0
    for _ in range(n_permutations):
        idx = rng.permutation(len(z))
        if _mmd2_unbiased(k[np.ix_(idx, idx)], n) >= observed - 1e-12:
            hits += 1
    return DriftTest("embedding_mmd", observed, (1 + hits) / (1 + n_permutations), len(x), len(y))


def rate_test(name: str, k_baseline: int, n_baseline: int, k_current: int, n_current: int) -> DriftTest:
    """Two-proportion z-test of ``k/n`` between windows; the statistic is the change in rate.

    ``z = (p₂ − p₁) / √(p̂(1 − p̂)(1/n₁ + 1/n₂))`` with the pooled ``p̂``; two-sided p-value.
    """
    for label, k, n in (("baseline", k_baseline, n_baseline), ("current", k_current, n_current)):
        _need(label, n)
        if not 0 <= k <= n:
            raise ValueError(f"{label}: count {k} is not within 0..{n}")
    p1, p2 = k_baseline / n_baseline, k_current / n_current
    pooled = (k_baseline + k_current) / (n_baseline + n_current)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n_baseline + 1 / n_current))
    p_value = 1.0 if se == 0 else math.erfc(abs(p2 - p1) / se / math.sqrt(2))
    return DriftTest(name, p2 - p1, p_value, n_baseline, n_current)


__all__ = [
    "PSI_EPS",
    "DriftTest",
    "binned_psi",
    "confidence_psi",
    "decile_edges",
    "label_psi",
    "mmd_test",
    "permutation_pvalue",
    "population_stability_index",
    "rate_test",
]
