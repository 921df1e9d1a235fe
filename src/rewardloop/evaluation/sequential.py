"""The always-valid sequential test of a difference in success rates: the mixture SPRT, its p-value
and its confidence sequence (Johari, Koomen, Pekelis & Walsh, "Peeking at A/B Tests", KDD 2017;
Johari, Pekelis & Walsh, "Always Valid Inference", Operations Research 2022).

:mod:`rewardloop.evaluation.abtest` re-exports everything here; its verdict reads the sequence, both
for the test and for non-inferiority (:func:`non_inferior_by`).

Triggered analysis
    (Deng & Hu, "Diluted treatment effect estimation for trigger analysis in online controlled
    experiments", WSDM 2015; Kohavi, Tang & Xu, *Trustworthy Online Controlled Experiments*, 2020,
    ch. 20.) Two versions of a classifier agree on most requests; a request both would serve alike
    (the same action distribution) has the same outcome distribution in either arm and carries only
    noise. The serving path flags each request of an experiment *triggered* when the other variant
    would have served it otherwise — a property of the request, flagged alike in both arms — and
    the verdict compares the arms on the triggered ones. With r the triggered share of all requests
    (bounded above by :func:`trigger_rate_upper`), the effect on all traffic is r × the triggered
    effect: non-inferiority by m on all traffic is a triggered lower bound above −m / r; a challenger
    can lose at most r overall, so r < m is non-inferior by itself (with no outcomes needed: the
    bound is on the requests, not the rewards); expected losses scale by r; the
    mixing scale is τ / r (the triggered effect is 1/r times larger), fixed for a stage by its first
    look; ``min_samples`` applies to min_samples × r triggered outcomes, at least
    :data:`MIN_TRIGGERED`. The guardrails (significantly worse, sample ratio) read the triggered
    counts too: with the noise gone they fire sooner.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from scipy import stats


def _count(name: str, value: int) -> int:
    if isinstance(value, bool) or not float(value).is_integer() or value < 0:
        raise ValueError(f"{name}: must be a whole number >= 0, got {value!r}")
    return int(value)


def _rate_args(s_a: int, n_a: int, s_b: int, n_b: int) -> tuple[int, int, int, int]:
    s_a, n_a, s_b, n_b = (
        _count("successes_a", s_a),
        _count("n_a", n_a),
        _count("successes_b", s_b),
        _count("n_b", n_b),
    )
    if s_a > n_a:
        raise ValueError(f"successes_a: {s_a} successes in {n_a} trials")
    if s_b > n_b:
        raise ValueError(f"successes_b: {s_b} successes in {n_b} trials")
    return s_a, n_a, s_b, n_b


#: Fewest triggered outcomes per arm before a triggered verdict (the test's normal approximation).
MIN_TRIGGERED = 30
#: The confidence sequence before the first look: every effect is possible.
NO_BOUNDS: tuple[float, float] = (-math.inf, math.inf)


@dataclass(frozen=True)
class SequentialResult:
    """The mSPRT after one look: the mixture likelihood ratio, the always-valid p-value and the
    always-valid confidence sequence of the effect.

    ``p_value`` is the running minimum of 1/Λ over every look so far, and ``ci`` the running
    intersection of every look's always-valid interval (pass the previous ones back in). The test
    rejects when ``p_value`` falls below ``alpha``; its direction is read from ``ci``, which then lies
    on one side of 0 — never from the current look's effect, which may have changed sign since.
    """

    statistic: float  # Λ_n
    p_value: float
    effect: float
    reject: bool
    tau: float
    ci: tuple[float, float] = NO_BOUNDS

    @property
    def direction(self) -> int:
        """+1: the challenger is better (``ci`` above 0), -1: worse (below 0), 0: not known (the
        sequence contains 0, or is empty because the effect changed during the stage)."""
        lo, hi = self.ci
        if lo > hi:
            return 0
        return 1 if lo > 0 else -1 if hi < 0 else 0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "direction": self.direction}


def non_inferior_by(result: SequentialResult, margin: float) -> bool:
    """Always-valid non-inferiority: the challenger is worse by less than ``margin`` (on the effect's
    scale), i.e. the confidence sequence's lower bound lies above −margin.

    The sequence covers the effect at every look at once with probability 1 − α, so reading this at
    any look, as often as wanted, wrongly calls a challenger worse by ``margin`` or more non-inferior
    with probability at most α. An empty sequence (the effect changed within the stage) proves nothing.

    >>> r = msprt(-0.01, 0.0001, 0.05)
    >>> round(r.ci[0], 4), non_inferior_by(r, 0.05), non_inferior_by(r, 0.02)
    (-0.041, True, False)
    """
    if not margin >= 0:
        raise ValueError(f"margin: the non-inferiority margin must be >= 0, got {margin}")
    lo, hi = result.ci
    return lo <= hi and lo > -margin


def _halfwidth(var_effect: float, tau: float, alpha: float) -> float:
    """Half-width of the look's always-valid interval: the effects θ₀ with Λ(θ̂ − θ₀) < 1/α."""
    t2 = tau * tau
    return math.sqrt(
        var_effect * (var_effect + t2) / t2 * (math.log((var_effect + t2) / var_effect) - 2 * math.log(alpha))
    )


def msprt(
    effect: float,
    var_effect: float,
    tau: float,
    alpha: float = 0.05,
    prev_p: float = 1.0,
    prev_ci: tuple[float, float] = NO_BOUNDS,
) -> SequentialResult:
    """Mixture SPRT for an effect estimate θ̂ ~ N(θ, V) with a N(0, τ²) mixing prior on θ.

    Λ = sqrt(V / (V + τ²)) · exp(τ² θ̂² / (2 V (V + τ²))), and the always-valid p-value is
    p_n = min(p_{n−1}, 1/Λ_n) (Johari, Pekelis & Walsh 2022, eq. (11) with the plug-in variance;
    with V = 2σ²/n this is their two-stream formula). ``tau`` is the effect size the test is tuned to:
    about the difference you expect (on the effect's scale). Under H0 : θ = 0,
    P(∃n : p_n ≤ α) ≤ α, however often it is checked.

    Inverting the test gives the always-valid interval θ̂ ± sqrt(V(V + τ²)/τ² · (log((V + τ²)/V) −
    2 log α)) (ibid., section 4); the confidence sequence is the running intersection of these
    intervals, so p_n ≤ α exactly when it excludes 0, and its side of 0 is the direction. A look
    whose interval misses the sequence (the effect changed) restarts it from that look.

    >>> round(msprt(0.0, 1.0, 1.0).statistic, 6)  # no effect, equal V and τ²: sqrt(1/2)
    0.707107
    """
    if not tau > 0:
        raise ValueError(f"tau: the mixing standard deviation must be > 0, got {tau}")
    if not (var_effect > 0 and math.isfinite(effect)):
        return SequentialResult(1.0, min(prev_p, 1.0), effect, prev_p <= alpha, tau, prev_ci)
    t2 = tau * tau
    log_lam = 0.5 * math.log(var_effect / (var_effect + t2)) + t2 * effect * effect / (
        2 * var_effect * (var_effect + t2)
    )
    p = min(prev_p, 1.0, math.exp(-log_lam))
    lam = math.exp(min(log_lam, 700.0))
    h = _halfwidth(var_effect, tau, alpha)
    ci = (max(prev_ci[0], effect - h), min(prev_ci[1], effect + h))
    if ci[0] > ci[1]:
        # Disjoint from an earlier look's interval: no constant effect explains both, so the effect
        # changed (a challenger that starts failing). The earlier looks no longer describe it; the
        # sequence restarts from this look, so that a guardrail reads what the challenger does now.
        ci = (effect - h, effect + h)
        p = min(1.0, math.exp(-log_lam))
    return SequentialResult(lam, p, effect, p <= alpha, tau, ci)


def msprt_proportions(
    s_a: int,
    n_a: int,
    s_b: int,
    n_b: int,
    tau: float = 0.05,
    alpha: float = 0.05,
    prev_p: float = 1.0,
    prev_ci: tuple[float, float] = NO_BOUNDS,
) -> SequentialResult:
    """:func:`msprt` on the difference of two success rates, with the pooled (null) variance."""
    s_a, n_a, s_b, n_b = _rate_args(s_a, n_a, s_b, n_b)
    if n_a == 0 or n_b == 0:
        return SequentialResult(1.0, min(prev_p, 1.0), math.nan, prev_p <= alpha, tau, prev_ci)
    pooled = (s_a + s_b) / (n_a + n_b)
    var = pooled * (1 - pooled) * (1 / n_a + 1 / n_b)
    return msprt(s_b / n_b - s_a / n_a, var, tau, alpha, prev_p, prev_ci)


def trigger_rate_upper(triggered: int, n: int, alpha: float = 0.05) -> float:
    """One-sided (1 − α) Clopper–Pearson upper bound on the share of requests that are triggered,
    from ``triggered`` of ``n`` decisions: the r :func:`ab_verdict` scales a triggered verdict by.

    The share is a property of the requests (both variants' decisions on them), not of the outcomes,
    so it does not move with the test; the bound is the exact binomial one.

    >>> round(trigger_rate_upper(50, 1000), 4), trigger_rate_upper(10, 10)
    (0.0629, 1.0)
    """
    triggered, n = _count("triggered", triggered), _count("n", n)
    if triggered > n:
        raise ValueError(f"triggered: {triggered} triggered of {n} decisions")
    if n == 0 or triggered == n:
        return 1.0
    return float(stats.beta.ppf(1.0 - alpha, triggered + 1, n - triggered))
