"""A/B statistics for champion/challenger experiments, and the verdict they add up to.

Every function takes counts or summary statistics, not rows, so that the loop can compute them with
one SQL aggregate per variant. "a" is the champion (control), "b" the challenger; effects are b - a.

- :func:`two_proportion_z` and :func:`chi_square`: the fixed-horizon tests of a success rate
  (on a 2x2 table, chi-square = z², Pearson without continuity correction).
- :func:`welch_t`: Welch's unequal-variance t-test, for latency.
- :func:`beta_binomial`: the Bayesian view: P(challenger better) and the expected loss of choosing it.
- :func:`msprt`: the mixture sequential probability ratio test, whose always-valid p-value may be
  checked after every batch without inflating the false-positive rate (Johari, Koomen, Pekelis &
  Walsh, "Peeking at A/B Tests", KDD 2017; Johari, Pekelis & Walsh, "Always Valid Inference",
  Operations Research 2022). The fixed-horizon tests above are NOT valid under such peeking.
- :func:`srm_check`: the sample-ratio-mismatch check (Fabijan et al., "Diagnosing Sample Ratio
  Mismatch in Online Controlled Experiments", KDD 2019): a split that differs from the configured
  shares means the assignment or the logging is broken, and no other number can be trusted.
- :func:`ab_verdict`: promote, continue, or roll back, with the numbers behind it.

Examples
--------
>>> r = chi_square(100, 1000, 130, 1000)
>>> round(r.statistic, 3), round(r.p_value, 4)
(4.422, 0.0355)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from statistics import NormalDist
from typing import Any, Literal

import numpy as np
from scipy import integrate, special, stats

from rewardloop.evaluation.sequential import (
    MIN_TRIGGERED,
    NO_BOUNDS,
    SequentialResult,
    _count,
    _rate_args,
    msprt,
    msprt_proportions,
    non_inferior_by,
    trigger_rate_upper,
)

VerdictAction = Literal["promote", "continue", "rollback"]

#: Grid points of the beta-binomial integrals (odd, for Simpson).
_GRID = 1025


@dataclass(frozen=True)
class TestResult:
    """A hypothesis test: its statistic, two-sided p-value, the effect (b - a) and its CI."""

    __test__ = False  # not a pytest class

    name: str
    statistic: float
    p_value: float
    effect: float
    ci: tuple[float, float]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def two_proportion_z(s_a: int, n_a: int, s_b: int, n_b: int, alpha: float = 0.05) -> TestResult:
    """Two-proportion z-test of ``p_b = p_a`` with the pooled standard error.

    z = (p̂_b − p̂_a) / sqrt(p̄(1 − p̄)(1/n_a + 1/n_b)), p̄ = (s_a + s_b)/(n_a + n_b); the confidence
    interval of the difference uses the unpooled (Wald) standard error.

    >>> round(two_proportion_z(100, 1000, 130, 1000).statistic, 4)
    2.1027
    """
    s_a, n_a, s_b, n_b = _rate_args(s_a, n_a, s_b, n_b)
    if n_a == 0 or n_b == 0:
        return TestResult("two_proportion_z", math.nan, 1.0, math.nan, (math.nan, math.nan))
    p_a, p_b = s_a / n_a, s_b / n_b
    pooled = (s_a + s_b) / (n_a + n_b)
    se0 = math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    diff = p_b - p_a
    z = diff / se0 if se0 > 0 else 0.0
    p = math.erfc(abs(z) / math.sqrt(2))  # 2 · (1 − Φ(|z|)), without scipy's per-call overhead
    se = math.sqrt(p_a * (1 - p_a) / n_a + p_b * (1 - p_b) / n_b)
    q = NormalDist().inv_cdf(1 - alpha / 2)
    return TestResult("two_proportion_z", z, p, diff, (diff - q * se, diff + q * se))


def chi_square(s_a: int, n_a: int, s_b: int, n_b: int, alpha: float = 0.05) -> TestResult:
    """Pearson's chi-square test on the 2x2 table (variant x success), no continuity correction.

    Equals ``scipy.stats.chi2_contingency(table, correction=False)``, and z² of
    :func:`two_proportion_z`.
    """
    s_a, n_a, s_b, n_b = _rate_args(s_a, n_a, s_b, n_b)
    z = two_proportion_z(s_a, n_a, s_b, n_b, alpha)
    table = np.array([[s_a, n_a - s_a], [s_b, n_b - s_b]], dtype=float)  # (2 variants, success/fail)
    expected = table.sum(1, keepdims=True) * table.sum(0, keepdims=True) / max(table.sum(), 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        cells = np.where(expected > 0, (table - expected) ** 2 / expected, 0.0)
    chi2 = float(cells.sum())
    p = float(stats.chi2.sf(chi2, df=1)) if n_a and n_b else 1.0
    return TestResult("chi_square", chi2, p, z.effect, z.ci)


def welch_t(
    mean_a: float,
    var_a: float,
    n_a: int,
    mean_b: float,
    var_b: float,
    n_b: int,
    alpha: float = 0.05,
) -> TestResult:
    """Welch's t-test of equal means from summary statistics (sample variances, ddof=1).

    t = (x̄_b − x̄_a) / sqrt(s²_a/n_a + s²_b/n_b), with Welch–Satterthwaite degrees of freedom. Equals
    ``scipy.stats.ttest_ind_from_stats(..., equal_var=False)``; when both variances are 0 the means
    are exact: p = 1 if they are equal, else p = 0 (t = ±inf), where scipy answers NaN.
    """
    n_a, n_b = _count("n_a", n_a), _count("n_b", n_b)
    for name, v in (("var_a", var_a), ("var_b", var_b)):
        if not v >= 0:
            raise ValueError(f"{name}: a variance must be >= 0, got {v}")
    diff = mean_b - mean_a
    if n_a < 2 or n_b < 2:
        return TestResult("welch_t", math.nan, 1.0, diff, (math.nan, math.nan))
    va, vb = var_a / n_a, var_b / n_b
    se = math.sqrt(va + vb)
    if se == 0:
        # Both samples constant: the difference is known exactly. Equal means: no evidence (p = 1);
        # different ones: certain (p = 0), so a guardrail fires on constant latencies too.
        if diff == 0:
            return TestResult("welch_t", 0.0, 1.0, 0.0, (0.0, 0.0))
        return TestResult("welch_t", math.copysign(math.inf, diff), 0.0, diff, (diff, diff))
    t = diff / se
    df = (va + vb) ** 2 / (va**2 / (n_a - 1) + vb**2 / (n_b - 1))
    p = float(2 * stats.t.sf(abs(t), df))
    q = float(stats.t.ppf(1 - alpha / 2, df))
    return TestResult("welch_t", t, p, diff, (diff - q * se, diff + q * se))


@dataclass(frozen=True)
class BayesResult:
    """Beta-binomial posterior comparison of two success rates.

    ``p_better`` is P(p_b > p_a | data); ``expected_loss`` is E[max(p_a − p_b, 0)], the success rate
    given up on average by choosing the challenger (the risk of a wrong switch); ``expected_loss_a`` the
    same for keeping the champion.
    """

    p_better: float
    expected_loss: float
    expected_loss_a: float
    mean_a: float
    mean_b: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def beta_binomial(
    s_a: int, n_a: int, s_b: int, n_b: int, prior: tuple[float, float] = (1.0, 1.0)
) -> BayesResult:
    """Compare two success rates under independent Beta(prior) priors, by 1-D numerical integration.

    With posteriors A ~ Beta(α_a, β_a), B ~ Beta(α_b, β_b):
    P(B > A) = ∫ f_B(y) F_A(y) dy, and, using x f_A(x) = μ_A f_{A⁺}(x) with A⁺ = Beta(α_a + 1, β_a),
    E[max(A − B, 0)] = ∫ f_B(y) [μ_A (1 − F_{A⁺}(y)) − y (1 − F_A(y))] dy, over B's support (±14
    standard deviations) by Simpson's rule on a fixed grid (adaptive quadrature when a parameter is below 1).
    For integer parameters P(B > A) has Evan Miller's closed form (tests check the two agree).

    >>> r = beta_binomial(0, 0, 0, 0)  # two uniform priors
    >>> round(r.p_better, 6), round(r.expected_loss, 6)
    (0.5, 0.166667)
    """
    s_a, n_a, s_b, n_b = _rate_args(s_a, n_a, s_b, n_b)
    a0, b0 = prior
    if not (a0 > 0 and b0 > 0):
        raise ValueError(f"prior: both Beta parameters must be > 0, got {prior}")
    a1, b1 = a0 + s_a, b0 + n_a - s_a  # posterior of the champion's rate
    a2, b2 = a0 + s_b, b0 + n_b - s_b  # posterior of the challenger's rate
    mu_a, mu_b = a1 / (a1 + b1), a2 / (a2 + b2)
    sd_b = math.sqrt(a2 * b2 / ((a2 + b2) ** 2 * (a2 + b2 + 1)))

    # The posteriors concentrate as n grows: integrate where B's density lives, so the grid sees the
    # peak. ±14 standard deviations hold all but ~1e-40 of a near-normal posterior; a skewed
    # (small-count) one is wide enough that the interval is clipped to [0, 1] anyway.
    lo, hi = max(0.0, mu_b - 14 * sd_b), min(1.0, mu_b + 14 * sd_b)
    if min(a1, b1, a2, b2) >= 1.0:
        # Smooth integrands: composite Simpson on a fixed grid, vectorised.
        y = np.linspace(lo, hi, _GRID)  # (G,)
        f_b = np.exp(special.xlogy(a2 - 1, y) + special.xlog1py(b2 - 1, -y) - special.betaln(a2, b2))
        cdf_a = special.betainc(a1, b1, y)
        sf_plus_a = special.betaincc(a1 + 1, b1, y)
        p_better = float(integrate.simpson(f_b * cdf_a, x=y))
        loss_b = float(integrate.simpson(f_b * (mu_a * sf_plus_a - y * (1.0 - cdf_a)), x=y))
    else:  # a prior below 1 makes a density infinite at an end point: adaptive quadrature
        post_a, post_b, plus_a = stats.beta(a1, b1), stats.beta(a2, b2), stats.beta(a1 + 1, b1)

        def _quad(f: Any) -> float:
            return float(integrate.quad(f, lo, hi, limit=200, epsabs=1e-12, epsrel=1e-10)[0])

        p_better = _quad(lambda y: post_b.pdf(y) * post_a.cdf(y))
        loss_b = _quad(lambda y: post_b.pdf(y) * (mu_a * plus_a.sf(y) - y * post_a.sf(y)))
    # E[max(B − A, 0)] = E[max(A − B, 0)] + μ_B − μ_A.
    loss_a = loss_b + mu_b - mu_a
    return BayesResult(
        p_better=min(1.0, max(0.0, p_better)),
        expected_loss=max(0.0, loss_b),
        expected_loss_a=max(0.0, loss_a),
        mean_a=mu_a,
        mean_b=mu_b,
    )


def prob_b_beats_a_closed_form(alpha_a: int, beta_a: int, alpha_b: int, beta_b: int) -> float:
    """Evan Miller's exact P(B > A) for integer Beta parameters (a sum of alpha_b terms).

    P = Σ_{i=0}^{α_b−1} B(α_a + i, β_a + β_b) / ((β_b + i) B(1 + i, β_b) B(α_a, β_a)).
    """
    i = np.arange(alpha_b, dtype=float)  # (alpha_b,)
    logs = (
        special.betaln(alpha_a + i, beta_a + beta_b)
        - np.log(beta_b + i)
        - special.betaln(1 + i, beta_b)
        - special.betaln(alpha_a, beta_a)
    )
    return float(np.exp(logs).sum())


@dataclass(frozen=True)
class SRMResult:
    """Sample-ratio-mismatch check: chi-square goodness of fit of the counts to the shares."""

    statistic: float
    p_value: float
    mismatch: bool
    observed: dict[str, int]
    expected: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def srm_check(counts: Mapping[str, int], shares: Mapping[str, float], threshold: float = 0.001) -> SRMResult:
    """Is the observed split consistent with the configured traffic shares?

    χ² = Σ (observed − expected)² / expected over variants with a share > 0; flagged when the p-value is
    below ``threshold``. 0.001 is the usual threshold (Fabijan et al. 2019): SRM is checked on every
    look, so it must be strict to avoid false alarms, and a real mismatch is usually glaring.

    >>> srm_check({"a": 5000, "b": 5000}, {"a": 0.5, "b": 0.5}).mismatch
    False
    """
    if set(counts) != set(shares):
        raise ValueError(f"counts: variants {sorted(counts)} differ from the shares' {sorted(shares)}")
    live = [k for k in sorted(shares) if shares[k] > 0]
    total = sum(_count(f"counts.{k}", counts[k]) for k in counts)
    if any(counts[k] and shares[k] == 0 for k in counts):
        # Traffic reached a variant that should receive none: a mismatch whatever the numbers.
        return SRMResult(math.inf, 0.0, True, dict(counts), {k: total * shares[k] for k in shares})
    share_total = sum(shares[k] for k in live)
    expected = {k: total * shares[k] / share_total for k in live}
    if total == 0 or len(live) < 2:
        return SRMResult(0.0, 1.0, False, dict(counts), expected)
    obs = np.array([counts[k] for k in live], dtype=float)
    exp = np.array([expected[k] for k in live])
    chi2 = float(((obs - exp) ** 2 / exp).sum())
    p = float(stats.chi2.sf(chi2, df=len(live) - 1))
    return SRMResult(chi2, p, p < threshold, dict(counts), expected)


@dataclass(frozen=True)
class VariantStats:
    """What one variant did, as aggregated from the store.

    Parameters
    ----------
    n : int
        Decisions served (assigned) to the variant; the SRM check counts these.
    successes, n_outcomes : int
        Decisions with a reward, and how many of them counted as a success (reward ≥ a threshold).
    latency_n, latency_mean, latency_var : int, float, float
        Decisions with a latency, their mean and sample variance (ddof=1), in milliseconds.
    """

    n: int
    n_outcomes: int = 0
    successes: int = 0
    latency_n: int = 0
    latency_mean: float = 0.0
    latency_var: float = 0.0

    def __post_init__(self) -> None:
        _count("n", self.n)
        _count("n_outcomes", self.n_outcomes)
        _count("successes", self.successes)
        _count("latency_n", self.latency_n)
        if self.successes > self.n_outcomes:
            raise ValueError(f"successes: {self.successes} successes in {self.n_outcomes} outcomes")

    @property
    def rate(self) -> float:
        return self.successes / self.n_outcomes if self.n_outcomes else math.nan


@dataclass(frozen=True)
class VerdictRules:
    """The thresholds :func:`ab_verdict` applies; see ``ExperimentsConfig`` for the defaults' reasons."""

    alpha: float = 0.05
    min_samples: int = 1000
    tau: float = 0.05
    max_expected_loss: float = 0.005
    max_latency_increase: float = 0.2
    min_latency_increase_ms: float = 5.0
    srm_threshold: float = 0.001
    max_samples: int | None = None  # no budget; every Experiments run has one (ExperimentsConfig)
    max_ramp_loss: float = 0.01
    non_inferiority_margin: float | None = None  # None: only a significant gain promotes


@dataclass(frozen=True)
class Verdict:
    """Promote, continue, or roll back, with every number behind it.

    It has ``passed`` and ``to_dict()``, so a promoting verdict is itself a gate report that
    ``Registry.promote`` accepts (and records in the alias history). ``ramp_ok``: the guardrails hold,
    there are enough samples, and the expected loss is small enough to expose more traffic.
    """

    action: VerdictAction
    reasons: tuple[str, ...]
    champion: VariantStats
    challenger: VariantStats
    sequential: SequentialResult
    chi_square: TestResult
    z_test: TestResult
    bayes: BayesResult
    latency: TestResult | None = None
    srm: SRMResult | None = None
    ramp_ok: bool = False

    @property
    def passed(self) -> bool:
        return self.action == "promote"

    @property
    def guardrails_hold(self) -> bool:
        return self.action != "rollback"

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["passed"] = self.passed
        out["reasons"] = list(self.reasons)
        safe: dict[str, Any] = _json_safe(out)
        return safe

    def summary(self) -> str:
        c, h = self.champion, self.challenger
        return (
            f"{self.action}: champion {c.successes}/{c.n_outcomes}, challenger {h.successes}/{h.n_outcomes}, "
            f"effect {self.sequential.effect:+.4f}, always-valid p {self.sequential.p_value:.4g}, "
            f"CI [{self.sequential.ci[0]:+.4f}, {self.sequential.ci[1]:+.4f}], "
            f"P(better) {self.bayes.p_better:.3f} — {'; '.join(self.reasons)}"
        )


def _json_safe(value: Any) -> Any:
    """NaN and infinities as None, tuples as lists: JSON (and PostgreSQL JSONB) refuse NaN."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def ab_verdict(
    champion: VariantStats,
    challenger: VariantStats,
    rules: VerdictRules | None = None,
    shares: Mapping[str, float] | None = None,
    prev_p: float = 1.0,
    prev_ci: tuple[float, float] = NO_BOUNDS,
    spent: int | None = None,
    offline_better: bool = False,
    trigger_rate: float = 1.0,
    tau: float | None = None,
) -> Verdict:
    """Decide what to do with the challenger from both arms' numbers.
    ``trigger_rate`` r < 1: the counts are the triggered requests', r bounds their share
    (:mod:`rewardloop.evaluation.sequential`, "Triggered analysis"); ``tau`` replaces ``rules.tau``.

    In order (the first that applies wins):

    1. **rollback** on a sample-ratio mismatch (with ``shares`` = {"champion": x, "challenger": 1 − x}):
       the split is broken, so nothing else can be trusted and the safe move is back to the champion;
    2. **rollback** when the mSPRT finds the challenger's success rate significantly lower (valid at
       any look, so this guardrail may fire before ``min_samples``); "lower" is read from the
       always-valid confidence sequence, which then lies below 0;
    3. **rollback** when its latency is significantly higher (Welch, p < α) by more than
       ``max_latency_increase`` (relative) *and* by more than ``min_latency_increase_ms`` (absolute: a
       +40% on a 1 ms model is noise no user feels, and would otherwise roll back on timer jitter);
    4. **promote** with ``min_samples`` outcomes per arm, when the mSPRT finds it significantly better
       (the confidence sequence above 0) and the Bayesian expected loss of switching is at most
       ``max_expected_loss``; or, with a ``non_inferiority_margin`` m, when it is non-inferior (the
       confidence sequence's lower bound above −m: always valid, like the test) and
       ``offline_better`` (its golden-set and OPE evidence say it is better than the champion);
    5. **rollback** when the sample budget is spent: ``spent`` (outcomes per arm over the whole
       experiment; default: this look's) reached ``max_samples`` without a promotion. The experiment
       ends and the champion stays: a challenger no better than it is never held forever;
    6. **continue** while either arm has fewer than ``min_samples`` outcomes, or the challenger is
       better but switching is too risky;
    7. **continue** otherwise.

    ``ramp_ok``: a ramp may step up (after ``min_samples``, for a promote, or a continue whose
    expected loss is at most ``max_ramp_loss`` or that is non-inferior by the margin); a challenger
    that looks worse, not yet significantly, is held at its share until the test decides.
    ``prev_p``, ``prev_ci``: the previous look's always-valid p-value and confidence sequence.

    Examples
    --------
    >>> v = ab_verdict(VariantStats(5000, 5000, 500), VariantStats(5000, 5000, 650))
    >>> v.action, round(v.bayes.p_better, 4)
    ('promote', 1.0)
    """
    rules = rules or VerdictRules()
    if not 0.0 < trigger_rate <= 1.0:
        raise ValueError(f"trigger_rate: must be in (0, 1], got {trigger_rate}")
    a, b = champion, challenger
    tau = rules.tau if tau is None else tau
    seq = msprt_proportions(
        a.successes, a.n_outcomes, b.successes, b.n_outcomes, tau, rules.alpha, prev_p, prev_ci
    )
    chi = chi_square(a.successes, a.n_outcomes, b.successes, b.n_outcomes, rules.alpha)
    z = two_proportion_z(a.successes, a.n_outcomes, b.successes, b.n_outcomes, rules.alpha)
    bayes = beta_binomial(a.successes, a.n_outcomes, b.successes, b.n_outcomes)
    latency = None
    if a.latency_n >= 2 and b.latency_n >= 2:
        latency = welch_t(
            a.latency_mean,
            a.latency_var,
            a.latency_n,
            b.latency_mean,
            b.latency_var,
            b.latency_n,
            rules.alpha,
        )
    srm = None
    if shares is not None:
        srm = srm_check({"champion": a.n, "challenger": b.n}, shares, rules.srm_threshold)

    broken = _broken_guardrail(a, b, rules, seq, latency, srm)
    if broken is not None:
        return Verdict("rollback", (broken,), a, b, seq, chi, z, bayes, latency, srm, False)
    action, reasons, ramp_ok = _judge(a, b, rules, seq, bayes, spent, offline_better, trigger_rate)
    return Verdict(action, tuple(reasons), a, b, seq, chi, z, bayes, latency, srm, ramp_ok)


def _cs(seq: SequentialResult) -> str:
    return f"always-valid CI [{seq.ci[0]:+.4f}, {seq.ci[1]:+.4f}], p = {seq.p_value:.3g}"


def _broken_guardrail(
    a: VariantStats,
    b: VariantStats,
    rules: VerdictRules,
    seq: SequentialResult,
    latency: TestResult | None,
    srm: SRMResult | None,
) -> str | None:
    """Why the challenger must be rolled back at once (rules 1–3 of :func:`ab_verdict`), or None."""
    if srm is not None and srm.mismatch:
        return (
            f"sample ratio mismatch: served {a.n}/{b.n}, expected {srm.expected.get('champion', 0):.0f}/"
            f"{srm.expected.get('challenger', 0):.0f} (χ² p = {srm.p_value:.2g} < {rules.srm_threshold})"
        )
    if seq.reject and seq.direction < 0:
        return f"challenger success rate lower by at least {-seq.ci[1]:.4f} ({_cs(seq)} < α = {rules.alpha})"
    if latency is not None and latency.p_value < rules.alpha and a.latency_mean > 0:
        increase = latency.effect / a.latency_mean
        if increase > rules.max_latency_increase and latency.effect > rules.min_latency_increase_ms:
            return (
                f"challenger latency {b.latency_mean:.1f} ms vs {a.latency_mean:.1f} ms (+{increase:.0%} > "
                f"+{rules.max_latency_increase:.0%} and +{latency.effect:.1f} ms > "
                f"+{rules.min_latency_increase_ms:g} ms, Welch p = {latency.p_value:.3g})"
            )
    return None


def _judge(
    a: VariantStats,
    b: VariantStats,
    rules: VerdictRules,
    seq: SequentialResult,
    bayes: BayesResult,
    spent: int | None,
    offline_better: bool = False,
    trigger_rate: float = 1.0,
) -> tuple[VerdictAction, list[str], bool]:
    """(action, reasons, ramp_ok) when the guardrails hold (rules 4–7 of :func:`ab_verdict`)."""
    r = trigger_rate
    cs = _cs(seq) + (f" on the triggered {r:.1%} of requests" if r < 1 else "")
    fewest = min(a.n_outcomes, b.n_outcomes)
    min_samples = rules.min_samples if r >= 1 else max(MIN_TRIGGERED, math.ceil(rules.min_samples * r))
    better = seq.reject and seq.direction > 0
    margin = rules.non_inferiority_margin
    # Serving fewer than m of the requests differently, it can lose less than m overall: that bound
    # holds whatever the outcomes, so it needs none; the test's bound needs min_samples of them.
    bounded = margin is not None and r < margin
    non_inferior = bounded or (
        fewest >= min_samples and margin is not None and non_inferior_by(seq, margin / r)
    )
    loss = r * bayes.expected_loss  # the expected loss on all traffic
    significant = better and loss <= rules.max_expected_loss  # rule 4's first case
    if non_inferior and offline_better and not significant:
        how = (
            f"serves at most {r:.1%} of requests differently, less than the margin {margin}"
            if bounded
            else f"worse by less than the margin {margin} ({cs})"
        )
        why = f"non-inferior online: {how}, and better offline (golden set and OPE)"
        return "promote", [why], True
    if fewest >= min_samples and better and loss <= rules.max_expected_loss:
        return (
            "promote",
            [
                f"challenger better by at least {seq.ci[0]:.4f} ({cs}, P(better) = {bayes.p_better:.3f}, "
                f"expected loss {loss:.2g})"
            ],
            True,
        )
    spent = fewest if spent is None else spent
    if rules.max_samples is not None and spent >= rules.max_samples:
        why = (
            f"sample budget spent: no significant improvement after {spent} outcomes per variant "
            f"(max_samples {rules.max_samples}; {cs}); the experiment ends, the champion stays"
        )
        return "rollback", [why], False
    if fewest < min_samples:
        return (
            "continue",
            [f"waiting for samples: {fewest} < {min_samples} outcomes per variant"],
            False,
        )
    if better:
        why = f"better but risky: expected loss {loss:.2g} > {rules.max_expected_loss}"
        return "continue", [why], False
    reasons = [f"no decision yet (always-valid p = {seq.p_value:.3g} ≥ α = {rules.alpha})"]
    # Stepping up the ramp exposes more users: only while the challenger is unlikely to cost much.
    ramp_ok = loss <= rules.max_ramp_loss or non_inferior
    if non_inferior:
        reasons.append(f"non-inferior by the margin {margin}; no offline evidence that it is better")
    elif not ramp_ok:
        reasons.append(f"ramp held: expected loss {loss:.3g} > {rules.max_ramp_loss}")
    return "continue", reasons, ramp_ok


__all__ = [
    "MIN_TRIGGERED",
    "NO_BOUNDS",
    "BayesResult",
    "SRMResult",
    "SequentialResult",
    "TestResult",
    "VariantStats",
    "Verdict",
    "VerdictAction",
    "VerdictRules",
    "ab_verdict",
    "beta_binomial",
    "chi_square",
    "msprt",
    "msprt_proportions",
    "non_inferior_by",
    "prob_b_beats_a_closed_form",
    "srm_check",
    "trigger_rate_upper",
    "two_proportion_z",
    "welch_t",
]
