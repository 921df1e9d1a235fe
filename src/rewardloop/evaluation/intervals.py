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
class PairedDifference:
    """The difference ``p1 − p2`` of two accuracies measured on the same ``n`` items, with its
    ``confidence`` interval: ``b`` items only the first gets right, ``c`` only the second, ``a`` both,
    ``d`` neither."""

    a: int
    b: int
    c: int
    d: int
    value: float
    low: float
    high: float
    confidence: float = 0.95

    @property
    def n(self) -> int:
        return self.a + self.b + self.c + self.d


def paired_difference_interval(a: int, b: int, c: int, d: int, confidence: float = 0.95) -> PairedDifference:
    """Newcombe's hybrid score interval for a difference of paired proportions (Newcombe 1998,
    *Statistics in Medicine* 17:2635, method 10).

    With ``p1 = (a+b)/n``, ``p2 = (a+c)/n``, their Wilson intervals ``[l1, u1]``, ``[l2, u2]`` and
    the correlation ``φ = C / √((a+b)(c+d)(a+c)(b+d))`` with Newcombe's adjusted numerator
    ``C = ad − bc − n/2`` when ``ad − bc > n/2``, ``0`` when ``0 ≤ ad − bc ≤ n/2``, ``ad − bc`` when it is
    negative (``φ = 0`` when a margin is empty), the interval of
    ``θ = (b − c)/n`` is ``[θ − δ, θ + ε]`` with
    ``δ = √((p1−l1)² − 2φ(p1−l1)(u2−p2) + (u2−p2)²)`` and
    ``ε = √((u1−p1)² − 2φ(u1−p1)(p2−l2) + (p2−l2)²)``. Unlike a t-interval of the per-item
    differences it does not collapse to a point when the two agree on every item.

    >>> r = paired_difference_interval(10, 0, 0, 0)  # both right on all 10: θ = 0, ± (1 − l) of 10/10
    >>> round(r.value, 4), round(r.low, 4), round(r.high, 4)
    (0.0, -0.2775, 0.2775)
    """
    counts = (a, b, c, d)
    if min(counts) < 0 or sum(counts) == 0:
        raise ValueError(f"a, b, c, d: need non-negative counts with at least one item, got {counts}")
    n = a + b + c + d
    p1, p2 = (a + b) / n, (a + c) / n
    w1, w2 = wilson_interval(a + b, n, confidence), wilson_interval(a + c, n, confidence)
    margins = (a + b) * (c + d) * (a + c) * (b + d)
    cross = a * d - b * c
    adjusted = cross - n / 2 if cross > n / 2 else (0.0 if cross >= 0 else cross)
    phi = adjusted / math.sqrt(margins) if margins > 0 else 0.0
    delta = math.sqrt(
        max(0.0, (p1 - w1.low) ** 2 - 2 * phi * (p1 - w1.low) * (w2.high - p2) + (w2.high - p2) ** 2)
    )
    eps = math.sqrt(
        max(0.0, (w1.high - p1) ** 2 - 2 * phi * (w1.high - p1) * (p2 - w2.low) + (p2 - w2.low) ** 2)
    )
    theta = (b - c) / n
    return PairedDifference(a, b, c, d, theta, max(-1.0, theta - delta), min(1.0, theta + eps), confidence)


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


__all__ = [
    "MeanInterval",
    "PairedDifference",
    "RateInterval",
    "mean_interval",
    "paired_difference_interval",
    "wilson_interval",
]
