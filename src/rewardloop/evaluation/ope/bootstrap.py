"""Bootstrap confidence intervals of a policy value, drawn exactly as OBP's loop draws them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from rewardloop.evaluation.ope._common import FloatArray, OPEInputError


@dataclass(frozen=True)
class PolicyValueInterval:
    """A policy value estimate with its bootstrap confidence interval.

    ``value`` is the estimate on the full logs; ``mean`` the mean of the bootstrap replicates (what OBP
    reports as ``"mean"``); ``lower``/``upper`` the ``alpha/2`` and ``1 − alpha/2`` percentiles.

    Examples
    --------
    >>> from rewardloop.evaluation.ope import InverseProbabilityWeighting
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
    ``samples`` of shape (m, n) resamples m series of n rounds with the *same* draws (what m separate
    calls with one ``random_state`` draw, at the cost of one draw): the result is then (m, B).
    """
    x = np.asarray(samples, dtype=np.float64)
    stacked = x.ndim == 2
    x2 = x if stacked else x[None, :]  # (m, n)
    n = x2.shape[1]
    if x2.ndim != 2 or n == 0:
        raise OPEInputError("samples: cannot bootstrap an empty array")
    if n_bootstrap_samples < 1:
        raise OPEInputError(f"n_bootstrap_samples: must be >= 1, got {n_bootstrap_samples}")
    rng = np.random.RandomState(random_state)
    out = np.empty((x2.shape[0], n_bootstrap_samples), dtype=np.float64)
    chunk = max(1, 4_000_000 // n)  # ≤ 4M indices (32 MB) at a time
    for start in range(0, n_bootstrap_samples, chunk):
        b = min(chunk, n_bootstrap_samples - start)
        idx = rng.randint(0, n, size=(b, n))  # what RandomState.choice(x, size=n) draws, b times
        for row, series in zip(out, x2, strict=True):  # per series: the same sums as a lone call
            row[start : start + b] = series[idx].mean(axis=1)
    return out if stacked else out[0]


#: ``(samples (m, n), n_bootstrap_samples, random_state) -> means (m, B)``: :func:`bootstrap_means`, or a
#: compute backend's partitioned run of it (``rewardloop.loop.compute``).
Resampler = Callable[[FloatArray, int, int | None], FloatArray]


def bootstrap_partitions(
    n_bootstrap_samples: int, random_state: int | None, n_partitions: int
) -> list[tuple[int, int | None]]:
    """``(replicates, seed)`` of each of ``n_partitions`` independent parts of one bootstrap.

    The replicates are split as evenly as possible (the first parts take the remainder); part ``p``
    draws with its own seed from ``SeedSequence([random_state, p])``, so the parts can run anywhere, in
    any order, and their concatenation depends only on ``(random_state, n_partitions)``. One partition
    keeps ``random_state`` itself: exactly :func:`bootstrap_means`. ``random_state=None`` gives every part
    fresh entropy (not reproducible, as with one part).

    >>> bootstrap_partitions(10, 0, 1)
    [(10, 0)]
    >>> [b for b, _ in bootstrap_partitions(10, 0, 3)]
    [4, 3, 3]
    """
    if n_partitions < 1:
        raise OPEInputError(f"n_partitions: must be >= 1, got {n_partitions}")
    if n_partitions > n_bootstrap_samples:
        raise OPEInputError(
            f"n_partitions: at most n_bootstrap_samples ({n_bootstrap_samples}), got {n_partitions}"
        )
    if n_partitions == 1:
        return [(n_bootstrap_samples, random_state)]
    base, extra = divmod(n_bootstrap_samples, n_partitions)
    parts: list[tuple[int, int | None]] = []
    for p in range(n_partitions):
        seed = None
        if random_state is not None:
            seed = int(np.random.SeedSequence([random_state, p]).generate_state(1)[0])
        parts.append((base + (1 if p < extra else 0), seed))
    return parts


def percentile_interval(means: FloatArray, alpha: float) -> tuple[float, float, float]:
    """(mean, lower, upper) of bootstrap replicate means: the ``alpha/2`` and ``1 − alpha/2`` percentiles."""
    lower = float(np.percentile(means, 100 * (alpha / 2)))
    upper = float(np.percentile(means, 100 * (1.0 - alpha / 2)))
    return float(np.mean(means)), lower, upper


def check_alpha(alpha: float) -> None:
    if not 0 < alpha < 1:
        raise OPEInputError(f"alpha: must be in (0, 1), got {alpha}")


def bootstrap_interval(
    samples: npt.ArrayLike,
    *,
    alpha: float = 0.05,
    n_bootstrap_samples: int = 10000,
    random_state: int | None = None,
) -> tuple[float, float, float]:
    """(mean, lower, upper) of the nonparametric percentile bootstrap of the sample mean."""
    check_alpha(alpha)
    return percentile_interval(bootstrap_means(samples, n_bootstrap_samples, random_state), alpha)
