"""Confidence intervals for a rate (a share of successes) and a mean, as the dashboard and reports show
them."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import norm, t


@dataclass(frozen=True)
class RateInterval:
    """A rate ``successes / n`` with its two-sided ``confidence`` interval ``[low, high]``."""

    successes: int
    n: int
    value: float
    low: float
    high: float
    confidence: float = 0.95


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> RateInterval:
    """The Wilson score interval of a binomial proportion (Wilson 1927; Brown, Cai & DasGupta 2001).

    ``(p̂ + z²/2n ± z·sqrt(p̂(1−p̂)/n + z²/4n²)) / (1 + z²/n)`` with ``z`` the normal quantile of
    ``(1 + confidence)/2``. Unlike the normal (Wald) interval it stays inside [0, 1] and does not collapse
    to a point at 0 or n successes.

    >>> r = wilson_interval(8, 10)
    >>> round(r.value, 3), round(r.low, 3), round(r.high, 3)
    (0.8, 0.49, 0.943)
    """
    if n <= 0:
        raise ValueError(f"n: needs at least one trial, got {n}")
    if not 0 <= successes <= n:
        raise ValueError(f"successes: must be in [0, n={n}], got {successes}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence: must be in (0, 1), got {confidence}")
    z = float(norm.ppf((1 + confidence) / 2))
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return RateInterval(successes, n, p, max(0.0, centre - half), min(1.0, centre + half), confidence)


@dataclass(frozen=True)
class MeanInterval:
    """A mean of ``n`` values with its two-sided ``confidence`` t-interval ``[low, high]``."""

    n: int
    value: float
    low: float
    high: float
    confidence: float = 0.95


def mean_interval(values: object, confidence: float = 0.95) -> MeanInterval | None:
    """The Student t-interval of a mean, ``x̄ ± t_{n−1} · s / √n`` (``s`` the sample standard deviation);
    None with fewer than two values (no spread to measure).

    >>> r = mean_interval([1.0, 0.0, 1.0, 1.0])
    >>> round(r.value, 3), round(r.low, 3), round(r.high, 3)
    (0.75, -0.046, 1.546)
    """
    x = np.asarray(values, dtype=np.float64).ravel()
    if len(x) < 2:
        return None
    if not 0 < confidence < 1:
        raise ValueError(f"confidence: must be in (0, 1), got {confidence}")
    mean = float(x.mean())
    half = float(t.ppf((1 + confidence) / 2, len(x) - 1)) * float(x.std(ddof=1)) / math.sqrt(len(x))
    return MeanInterval(len(x), mean, mean - half, mean + half, confidence)


__all__ = ["MeanInterval", "RateInterval", "mean_interval", "wilson_interval"]
