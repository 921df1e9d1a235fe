"""Experiment statistics beyond one test: variance reduction, multiple testing, and planning.

- :func:`cuped` — CUPED (Deng, Xu, Kohavi & Walker 2013, *Improving the Sensitivity of Online Controlled
  Experiments by Utilizing Pre-Experiment Data*, eq. 2): ``Y_cv = Y − θ (X − E[X])`` with
  ``θ = cov(Y, X) / var(X)`` from the pooled arms; ``var(Y_cv) = var(Y)(1 − ρ²)``, ρ the correlation of
  the metric with its pre-period covariate. The effect is unchanged in expectation.
- :func:`holm` (Holm 1979, step-down, controls the family-wise error rate) and
  :func:`benjamini_hochberg` (Benjamini & Hochberg 1995, step-up, controls the false discovery rate):
  adjusted p-values across metrics and variants, in the input order.
- :func:`plan_two_proportions` — decisions per variant to detect an absolute lift ``mde`` on a base rate
  with a two-sided z-test: ``n = (z_{1−α/2} √(2 p̄ q̄) + z_{1−β} √(p₁q₁ + p₂q₂))² / mde²``
  (Fleiss, Levin & Paik 2003, eq. 4.14, without continuity correction), and the days that takes.

>>> [round(p, 4) for p in holm([0.01, 0.04, 0.03])]
[0.03, 0.06, 0.06]
>>> [round(p, 4) for p in benjamini_hochberg([0.01, 0.04, 0.03])]
[0.03, 0.04, 0.04]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import numpy.typing as npt
from scipy.stats import norm

from rewardloop.evaluation.monitor import feedback_outcome
from rewardloop.store import Store, read_decisions
from rewardloop.types.records import utcnow


def _pvalues(pvalues: Sequence[float]) -> npt.NDArray[np.float64]:
    p = np.asarray(pvalues, dtype=np.float64)
    if p.ndim != 1 or p.size == 0:
        raise ValueError("pvalues: expected a non-empty list")
    bad = np.flatnonzero(~((p >= 0) & (p <= 1)))
    if bad.size:
        raise ValueError(f"pvalues[{bad[0]}]: {p[bad[0]]} is not a probability")
    return p


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values: sorted ascending, ``p̃_(i) = max_{j ≤ i} min(1, (m − j + 1) p_(j))``."""
    p = _pvalues(pvalues)
    m = p.size
    order = np.argsort(p, kind="stable")
    stepped = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    out = np.empty(m)
    out[order] = stepped
    return [float(v) for v in out]


def benjamini_hochberg(pvalues: Sequence[float]) -> list[float]:
    """BH-adjusted p-values (q-values): ``p̃_(i) = min_{j ≥ i} min(1, m p_(j) / j)``."""
    p = _pvalues(pvalues)
    m = p.size
    order = np.argsort(p, kind="stable")
    scaled = p[order] * m / np.arange(1, m + 1)
    stepped = np.minimum(1.0, np.minimum.accumulate(scaled[::-1])[::-1])
    out = np.empty(m)
    out[order] = stepped
    return [float(v) for v in out]


@dataclass(frozen=True)
class CupedResult:
    """A difference of means (treatment − control) with and without the CUPED adjustment."""

    effect: float
    se: float
    effect_unadjusted: float
    se_unadjusted: float
    theta: float
    rho: float

    @property
    def variance_ratio(self) -> float:
        """var(adjusted effect) / var(unadjusted effect); theory: ``1 − ρ²``."""
        return (self.se / self.se_unadjusted) ** 2 if self.se_unadjusted > 0 else 1.0


def _arm(name: str, y: npt.ArrayLike, x: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    ya, xa = np.asarray(y, dtype=np.float64), np.asarray(x, dtype=np.float64)
    if ya.ndim != 1 or ya.shape != xa.shape:
        raise ValueError(
            f"{name}: metric and covariate must be 1-d of one length, got {ya.shape}, {xa.shape}"
        )
    if ya.size < 2:
        raise ValueError(f"{name}: needs at least 2 units, got {ya.size}")
    if not (np.isfinite(ya).all() and np.isfinite(xa).all()):
        raise ValueError(f"{name}: values must be finite")
    return ya, xa


def cuped(
    y_treatment: npt.ArrayLike,
    x_treatment: npt.ArrayLike,
    y_control: npt.ArrayLike,
    x_control: npt.ArrayLike,
) -> CupedResult:
    """The treatment − control effect on metric ``y``, adjusted by the pre-period covariate ``x``.

    Arrays are shape (n_treatment,) and (n_control,), one row per unit (user). θ and ρ come from the
    pooled units, so that the adjustment does not depend on the treatment.
    """
    yt, xt = _arm("treatment", y_treatment, x_treatment)
    yc, xc = _arm("control", y_control, x_control)
    y, x = np.concatenate([yt, yc]), np.concatenate([xt, xc])
    var_x = float(np.var(x, ddof=1))
    cov = float(np.cov(y, x, ddof=1)[0, 1])
    theta = cov / var_x if var_x > 0 else 0.0
    var_y = float(np.var(y, ddof=1))
    rho = cov / math.sqrt(var_x * var_y) if var_x > 0 and var_y > 0 else 0.0
    mx = float(x.mean())
    at, ac = yt - theta * (xt - mx), yc - theta * (xc - mx)

    def diff(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
        se = math.sqrt(np.var(a, ddof=1) / a.size + np.var(b, ddof=1) / b.size)
        return float(a.mean() - b.mean()), se

    effect, se = diff(at, ac)
    raw, raw_se = diff(yt, yc)
    return CupedResult(effect, se, raw, raw_se, theta, rho)


@dataclass(frozen=True)
class PowerPlan:
    """How many decisions (per variant and in all) and days an effect needs."""

    base_rate: float
    mde: float
    alpha: float
    power: float
    share: float
    n_per_variant: int
    n_total: int
    decisions_per_day: float | None
    days: float | None


def plan_two_proportions(
    base_rate: float,
    mde: float,
    *,
    alpha: float = 0.05,
    power: float = 0.8,
    share: float = 0.5,
    decisions_per_day: float | None = None,
) -> PowerPlan:
    """Decisions to detect an absolute change ``mde`` of a rate ``base_rate`` (two-sided z-test).

    ``share`` is the challenger's traffic share: the smaller arm needs ``n_per_variant`` decisions, so
    the total is ``n_per_variant / min(share, 1 − share)``; at ``decisions_per_day`` that takes
    ``days``.
    """
    checks = (
        ("base_rate", 0 < base_rate < 1, "must be in (0, 1)"),
        ("mde", mde != 0 and 0 < base_rate + mde < 1, "must be non-zero and keep the rate in (0, 1)"),
        ("alpha", 0 < alpha < 1, "must be in (0, 1)"),
        ("power", 0 < power < 1, "must be in (0, 1)"),
        ("share", 0 < share < 1, "must be in (0, 1)"),
        ("decisions_per_day", decisions_per_day is None or decisions_per_day >= 0, "must be >= 0"),
    )
    for name, ok, why in checks:
        if not ok:
            raise ValueError(f"{name}: {why}")
    p1, p2 = base_rate, base_rate + mde
    pbar = (p1 + p2) / 2
    za, zb = float(norm.ppf(1 - alpha / 2)), float(norm.ppf(power))
    num = za * math.sqrt(2 * pbar * (1 - pbar)) + zb * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))
    n = math.ceil(num**2 / mde**2)
    total = math.ceil(n / min(share, 1 - share))
    days = total / decisions_per_day if decisions_per_day else None
    return PowerPlan(base_rate, mde, alpha, power, share, n, total, decisions_per_day, days)


@dataclass(frozen=True)
class Traffic:
    """A policy's recent traffic: decisions a day, and its success rate where feedback tells."""

    days: float
    decisions: int
    outcomes: int
    success_rate: float | None

    @property
    def decisions_per_day(self) -> float:
        return self.decisions / self.days


def current_traffic(store: Store, policy: str, *, days: float = 7.0, now: datetime | None = None) -> Traffic:
    """Decisions of ``policy`` in the last ``days`` days and the share of those with an outcome
    (:func:`~rewardloop.evaluation.monitor.feedback_outcome`) that were right."""
    if days <= 0:
        raise ValueError("days: must be > 0")
    end = now or utcnow()
    batch = read_decisions(
        store, policy=policy, since=end - timedelta(days=days), until=end, include_feedback=True
    )
    outcomes = [feedback_outcome(d, batch.feedback.get(d.id, [])) for d in batch.decisions]
    known = [o for o in outcomes if o is not None]
    rate = sum(known) / len(known) if known else None
    return Traffic(days, len(batch), len(known), rate)


__all__ = [
    "CupedResult",
    "PowerPlan",
    "Traffic",
    "benjamini_hochberg",
    "cuped",
    "current_traffic",
    "holm",
    "plan_two_proportions",
]
