"""A/B statistics: equal to scipy (or a hand calculation) on fixed inputs; the sequential test's
false-positive rate under continuous monitoring; the verdict's rules; bad inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from rewardloop.evaluation.abtest import (
    VariantStats,
    VerdictRules,
    ab_verdict,
    beta_binomial,
    chi_square,
    msprt,
    msprt_proportions,
    prob_b_beats_a_closed_form,
    srm_check,
    trigger_rate_upper,
    two_proportion_z,
    welch_t,
)

TABLES = [(100, 1000, 130, 1000), (5, 40, 12, 35), (480, 5000, 520, 5200), (0, 10, 3, 10)]


@pytest.mark.parametrize(("s_a", "n_a", "s_b", "n_b"), TABLES)
def test_chi_square_equals_scipy(s_a, n_a, s_b, n_b):
    table = np.array([[s_a, n_a - s_a], [s_b, n_b - s_b]])
    chi2, p, _, _ = stats.chi2_contingency(table, correction=False)
    r = chi_square(s_a, n_a, s_b, n_b)
    assert r.statistic == pytest.approx(chi2, rel=1e-12)
    assert r.p_value == pytest.approx(p, rel=1e-10)
    assert r.effect == pytest.approx(s_b / n_b - s_a / n_a)


@pytest.mark.parametrize(("s_a", "n_a", "s_b", "n_b"), TABLES)
def test_z_squared_is_chi_square(s_a, n_a, s_b, n_b):
    z, chi = two_proportion_z(s_a, n_a, s_b, n_b), chi_square(s_a, n_a, s_b, n_b)
    assert z.statistic**2 == pytest.approx(chi.statistic, rel=1e-12)
    assert z.p_value == pytest.approx(chi.p_value, rel=1e-10)


def test_two_proportion_z_by_hand():
    # p̄ = 230/2000 = 0.115; se0 = sqrt(0.115 · 0.885 · (2/1000)) = 0.0142671; z = 0.03 / se0.
    r = two_proportion_z(100, 1000, 130, 1000)
    se0 = math.sqrt(0.115 * 0.885 * 0.002)
    assert r.statistic == pytest.approx(0.03 / se0, rel=1e-12)
    assert r.statistic == pytest.approx(2.102741, abs=1e-6)
    se = math.sqrt(0.1 * 0.9 / 1000 + 0.13 * 0.87 / 1000)
    assert r.ci == pytest.approx((0.03 - 1.959963985 * se, 0.03 + 1.959963985 * se), rel=1e-8)


def test_welch_equals_scipy_on_samples():
    rng = np.random.default_rng(0)
    a = rng.gamma(4.0, 10.0, size=57)
    b = rng.gamma(4.5, 10.0, size=83)
    ref = stats.ttest_ind(b, a, equal_var=False)
    r = welch_t(a.mean(), a.var(ddof=1), a.size, b.mean(), b.var(ddof=1), b.size)
    assert r.statistic == pytest.approx(ref.statistic, rel=1e-12)
    assert r.p_value == pytest.approx(ref.pvalue, rel=1e-10)
    ref2 = stats.ttest_ind_from_stats(b.mean(), b.std(ddof=1), b.size, a.mean(), a.std(ddof=1), a.size, False)
    assert r.statistic == pytest.approx(ref2.statistic, rel=1e-12)
    lo, hi = ref.confidence_interval(0.95)
    assert r.ci == pytest.approx((lo, hi), rel=1e-9)


def test_welch_by_hand():
    # means 10 and 12, variances 4 and 9, n 5 and 10: se² = 0.8 + 0.9 = 1.7
    r = welch_t(10.0, 4.0, 5, 12.0, 9.0, 10)
    assert r.statistic == pytest.approx(2 / math.sqrt(1.7), rel=1e-12)
    df = 1.7**2 / (0.8**2 / 4 + 0.9**2 / 9)
    assert r.p_value == pytest.approx(2 * stats.t.sf(2 / math.sqrt(1.7), df), rel=1e-12)


@pytest.mark.parametrize(
    ("s_a", "n_a", "s_b", "n_b"), [(10, 50, 15, 50), (3, 20, 2, 25), (400, 4000, 450, 4000)]
)
def test_beta_binomial_p_better_equals_closed_form(s_a, n_a, s_b, n_b):
    r = beta_binomial(s_a, n_a, s_b, n_b)
    exact = prob_b_beats_a_closed_form(1 + s_a, 1 + n_a - s_a, 1 + s_b, 1 + n_b - s_b)
    assert r.p_better == pytest.approx(exact, abs=1e-8)


def test_beta_binomial_uniform_priors_by_hand():
    # Two independent uniforms: P(B > A) = 1/2 and E[max(A − B, 0)] = 1/6.
    r = beta_binomial(0, 0, 0, 0)
    assert r.p_better == pytest.approx(0.5, abs=1e-9)
    assert r.expected_loss == pytest.approx(1 / 6, abs=1e-9)
    assert r.expected_loss_a == pytest.approx(1 / 6, abs=1e-9)


def test_beta_binomial_expected_loss_matches_monte_carlo():
    rng = np.random.default_rng(1)
    a = rng.beta(1 + 30, 1 + 170, size=2_000_000)
    b = rng.beta(1 + 36, 1 + 164, size=2_000_000)
    loss = np.maximum(a - b, 0)
    r = beta_binomial(30, 200, 36, 200)
    assert r.expected_loss == pytest.approx(loss.mean(), abs=4 * loss.std() / math.sqrt(loss.size))
    assert r.p_better == pytest.approx((b > a).mean(), abs=0.002)


def test_msprt_by_hand():
    # V = 0.01, τ = 0.1, θ̂ = 0.1: Λ = sqrt(0.01/0.02) · exp(0.01 · 0.01 / (2 · 0.01 · 0.02)) = e^0.25/√2
    r = msprt(0.1, 0.01, tau=0.1)
    assert r.statistic == pytest.approx(math.exp(0.25) / math.sqrt(2), rel=1e-12)
    assert r.p_value == pytest.approx(1.0)  # 1/Λ > 1
    strong = msprt(0.5, 0.01, tau=0.1)
    assert strong.p_value == pytest.approx(1 / strong.statistic, rel=1e-12)
    assert strong.reject
    # The always-valid p-value never rises again: it is a running minimum.
    assert msprt(0.0, 0.01, tau=0.1, prev_p=strong.p_value).p_value == strong.p_value


def _simulate_peeking(p_a, p_b, n_sims=600, batches=40, batch=100, alpha=0.05, seed=7):
    """Fraction of simulated experiments that ever reject when checked after every batch."""
    rng = np.random.default_rng(seed)
    s_a = rng.binomial(batch, p_a, size=(n_sims, batches)).cumsum(1)  # (n_sims, batches)
    s_b = rng.binomial(batch, p_b, size=(n_sims, batches)).cumsum(1)
    seq_rejects = naive_rejects = 0
    for i in range(n_sims):
        prev, seq_hit, naive_hit = 1.0, False, False
        for k in range(batches):
            n = batch * (k + 1)
            r = msprt_proportions(int(s_a[i, k]), n, int(s_b[i, k]), n, tau=0.05, alpha=alpha, prev_p=prev)
            prev = r.p_value
            seq_hit |= r.reject
            naive_hit |= two_proportion_z(int(s_a[i, k]), n, int(s_b[i, k]), n).p_value < alpha
        seq_rejects += seq_hit
        naive_rejects += naive_hit
    return seq_rejects / n_sims, naive_rejects / n_sims


def test_sequential_false_positive_rate_under_continuous_monitoring():
    seq_fpr, naive_fpr = _simulate_peeking(0.2, 0.2)
    assert seq_fpr <= 0.05, seq_fpr
    # Peeking at a fixed-horizon z-test 40 times inflates its 5% error several-fold.
    assert naive_fpr > 0.15, naive_fpr


def test_sequential_test_has_power():
    power, _ = _simulate_peeking(0.2, 0.25, n_sims=200, seed=8)
    assert power >= 0.8, power


def test_srm_equals_scipy_and_detects_a_skewed_split():
    balanced = srm_check({"champion": 5021, "challenger": 4979}, {"champion": 0.5, "challenger": 0.5})
    ref = stats.chisquare([4979, 5021], [5000, 5000])
    assert balanced.statistic == pytest.approx(ref.statistic, rel=1e-12)
    assert balanced.p_value == pytest.approx(ref.pvalue, rel=1e-10)
    assert not balanced.mismatch
    skewed = srm_check({"champion": 5000, "challenger": 5400}, {"champion": 0.5, "challenger": 0.5})
    assert skewed.mismatch and skewed.p_value < 0.001
    canary = srm_check({"champion": 9500, "challenger": 500}, {"champion": 0.95, "challenger": 0.05})
    assert not canary.mismatch
    leak = srm_check({"champion": 100, "challenger": 3}, {"champion": 1.0, "challenger": 0.0})
    assert leak.mismatch


def _arm(n, succ, lat_mean=0.0, lat_var=0.0, lat_n=0):
    return VariantStats(n, n, succ, lat_n, lat_mean, lat_var)


VERDICTS = [
    # (champion, challenger, shares, rules, action, reason fragment)
    (_arm(2000, 400), _arm(2000, 600), None, VerdictRules(min_samples=1000), "promote", "challenger better"),
    (_arm(2000, 600), _arm(2000, 400), None, VerdictRules(min_samples=1000), "rollback", "lower by"),
    # the sequential guardrail fires before min_samples
    (_arm(500, 250), _arm(300, 60), None, VerdictRules(min_samples=1000), "rollback", "lower by"),
    (_arm(500, 100), _arm(500, 105), None, VerdictRules(min_samples=1000), "continue", "waiting for samples"),
    (_arm(5000, 1000), _arm(5000, 1010), None, VerdictRules(min_samples=1000), "continue", "no decision yet"),
    (
        _arm(5000, 1000),
        _arm(5000, 1010),
        None,
        VerdictRules(min_samples=1000, max_samples=5000),
        "rollback",
        "no significant improvement",
    ),
    (
        _arm(5000, 1000),
        _arm(5600, 1120),
        {"champion": 0.5, "challenger": 0.5},
        VerdictRules(),
        "rollback",
        "sample ratio mismatch",
    ),
    (
        _arm(2000, 400, 50.0, 100.0, 2000),
        _arm(2000, 400, 80.0, 100.0, 2000),
        None,
        VerdictRules(),
        "rollback",
        "latency",
    ),
    # +40% of 1 ms is significant but below the absolute floor (5 ms): jitter, not a regression
    (
        _arm(2000, 400, 1.0, 0.01, 2000),
        _arm(2000, 400, 1.4, 0.01, 2000),
        None,
        VerdictRules(min_samples=1000),
        "continue",
        "no decision yet",
    ),
    (
        _arm(2000, 400),
        _arm(2000, 600),
        None,
        VerdictRules(min_samples=1000, max_expected_loss=0.0),
        "continue",
        "better but risky",
    ),
]


@pytest.mark.parametrize(("champion", "challenger", "shares", "rules", "action", "reason"), VERDICTS)
def test_verdict_rules(champion, challenger, shares, rules, action, reason):
    v = ab_verdict(champion, challenger, rules, shares)
    assert v.action == action
    if action == "rollback":
        assert not v.ramp_ok
    assert reason in " ".join(v.reasons)
    assert v.passed == (action == "promote")
    d = v.to_dict()
    assert d["action"] == action and d["passed"] == v.passed
    assert d["sequential"]["p_value"] == pytest.approx(v.sequential.p_value)


@pytest.mark.parametrize(
    ("challenger", "ramp_ok"),
    [
        (_arm(300, 75), True),  # equal rates, expected loss ~0.009: the ramp may step up
        (_arm(300, 60), False),  # looks worse (not yet significantly): hold the share
        (_arm(50, 20), False),  # too few samples to judge
    ],
)
def test_ramp_needs_samples_and_a_small_expected_loss(challenger, ramp_ok):
    v = ab_verdict(_arm(3000, 750), challenger, VerdictRules(min_samples=100))
    assert v.action == "continue"
    assert v.ramp_ok is ramp_ok
    assert v.bayes.expected_loss <= 0.01 if ramp_ok else True


BAD = [
    (lambda: chi_square(11, 10, 1, 10), "successes_a: 11 successes in 10 trials"),
    (lambda: chi_square(1, 10, -1, 10), "successes_b: must be a whole number >= 0"),
    (lambda: two_proportion_z(1.5, 10, 1, 10), "successes_a: must be a whole number"),
    (lambda: welch_t(1.0, -1.0, 5, 1.0, 1.0, 5), "var_a: a variance must be >= 0"),
    (lambda: beta_binomial(1, 2, 1, 2, prior=(0.0, 1.0)), "prior: both Beta parameters must be > 0"),
    (lambda: msprt(0.1, 0.01, tau=0.0), "tau: the mixing standard deviation must be > 0"),
    (lambda: srm_check({"a": 1}, {"a": 0.5, "b": 0.5}), "counts: variants ['a'] differ"),
    (lambda: VariantStats(10, 5, 6), "successes: 6 successes in 5 outcomes"),
]


@pytest.mark.parametrize(("call", "message"), BAD)
def test_bad_inputs_name_the_argument(call, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        call()


def test_beta_binomial_with_a_jeffreys_prior_matches_monte_carlo():
    # Beta(0.5, 0.5) priors put infinite density at 0 and 1: the adaptive path handles them.
    rng = np.random.default_rng(2)
    a = rng.beta(0.5 + 1, 0.5 + 9, size=1_000_000)
    b = rng.beta(0.5 + 0, 0.5 + 10, size=1_000_000)
    r = beta_binomial(1, 10, 0, 10, prior=(0.5, 0.5))
    assert r.p_better == pytest.approx((b > a).mean(), abs=0.002)
    loss = np.maximum(a - b, 0)
    assert r.expected_loss == pytest.approx(loss.mean(), abs=4 * loss.std() / 1000)


def test_confidence_sequence_is_the_running_intersection_and_gives_the_direction():
    # Issue 13 item 15: look 1 80/800 vs 125/800, look 2 190/1600 vs 186/1600.
    first = msprt_proportions(80, 800, 125, 800)
    assert first.p_value == pytest.approx(0.0193178, abs=1e-6) and first.direction == 1
    second = msprt_proportions(190, 1600, 186, 1600, prev_p=first.p_value, prev_ci=first.ci)
    assert second.effect < 0 and second.reject
    alone = msprt_proportions(190, 1600, 186, 1600)
    assert second.ci == (first.ci[0], alone.ci[1])  # (max of the lower, min of the upper bounds)
    assert second.direction == 1
    v = ab_verdict(
        _arm(1600, 190), _arm(1600, 186), VerdictRules(min_samples=1000), None, first.p_value, first.ci
    )
    assert v.action != "rollback", v.reasons


@pytest.mark.parametrize(("effect", "var"), [(0.01, 1e-4), (0.03, 1e-4), (-0.05, 4e-4), (0.2, 1e-2)])
def test_the_look_interval_excludes_zero_exactly_when_the_test_rejects(effect, var):
    r = msprt(effect, var, tau=0.05, alpha=0.05)
    assert r.reject == (not r.ci[0] <= 0 <= r.ci[1])
    # at a bound, Λ = 1/α: the interval is the inversion of the test
    # at a bound θ₀, the test of θ = θ₀ is just at its threshold: Λ(θ̂ − θ₀) = 1/α
    assert msprt(effect - r.ci[1], var, tau=0.05).statistic == pytest.approx(1 / 0.05, rel=1e-9)


def test_a_look_that_misses_the_sequence_restarts_it():
    first = msprt_proportions(300, 600, 300, 600)  # equal
    worse = msprt_proportions(750, 1200, 450, 1200, prev_p=first.p_value, prev_ci=first.ci)
    assert first.ci[0] > -0.2 and worse.ci[1] < first.ci[0]  # disjoint: the sequence restarted here
    assert worse.direction == -1 and worse.reject


def test_welch_on_constant_samples_is_exact():
    # Issue 13 item 20: both variances 0 gave p = 1, so the latency guardrail never fired.
    assert welch_t(10.0, 0.0, 50, 20.0, 0.0, 50).p_value == 0.0
    assert welch_t(10.0, 0.0, 50, 10.0, 0.0, 50).p_value == 1.0
    v = ab_verdict(_arm(2000, 400, 10.0, 0.0, 2000), _arm(2000, 400, 20.0, 0.0, 2000))
    assert v.action == "rollback" and "latency" in " ".join(v.reasons)


# -- non-inferiority (issue 14, part 5) ------------------------------------------------------------


@pytest.mark.parametrize(
    ("ci", "margin", "expected"),
    [
        ((-0.049, 0.03), 0.05, True),
        ((-0.05, 0.03), 0.05, False),  # on the margin is not above it
        ((-0.06, 0.03), 0.05, False),
        ((0.01, 0.03), 0.0, True),
        ((0.02, 0.01), 0.05, False),  # an empty sequence proves nothing
        ((-math.inf, math.inf), 0.05, False),
    ],
)
def test_non_inferiority_reads_the_confidence_sequence(ci, margin, expected):
    from rewardloop.evaluation.sequential import SequentialResult, non_inferior_by

    assert non_inferior_by(SequentialResult(1.0, 1.0, 0.0, False, 0.05, ci), margin) is expected
    with pytest.raises(ValueError, match="margin: the non-inferiority margin must be >= 0"):
        non_inferior_by(SequentialResult(1.0, 1.0, 0.0, False, 0.05, ci), -0.1)


def test_equal_arms_are_promoted_only_with_a_margin_and_better_offline_evidence():
    a, b = VariantStats(2000, 2000, 1600), VariantStats(2000, 2000, 1600)
    # 0.8 vs 0.8, n = 2000: the look's interval is ±0.0387 (V = 1.6e-4, τ = 0.05, α = 0.05)
    lo = ab_verdict(a, b).sequential.ci[0]
    assert lo == pytest.approx(-0.038711, abs=1e-6)
    loose = VerdictRules(min_samples=100, non_inferiority_margin=0.05)
    assert ab_verdict(a, b, loose, offline_better=True).action == "promote"
    held = ab_verdict(a, b, loose)
    assert (held.action, held.ramp_ok) == ("continue", True)
    assert "non-inferior by the margin 0.05; no offline evidence" in " ".join(held.reasons)
    tight = VerdictRules(min_samples=100, non_inferiority_margin=0.03, max_ramp_loss=0.0)
    strict = ab_verdict(a, b, tight, offline_better=True)
    assert (strict.action, strict.ramp_ok) == ("continue", False)
    # without a margin the old rule stands: no significant gain, no promotion
    assert ab_verdict(a, b, VerdictRules(min_samples=100), offline_better=True).action == "continue"


# -- triggered analysis ---------------------------------------------------------------------------


def test_a_triggered_verdict_scales_the_margin_by_the_trigger_rate():
    # 500/1000 in both arms of the triggered requests: effect 0, V = 0.5·0.5·(2/1000) = 5e-4.
    # With τ = 0.25 the always-valid half-width is sqrt(V(V+τ²)/τ² · (log((V+τ²)/V) − 2 log α))
    # = sqrt(5e-4 · 1.008 · (log(126) + 5.9915)) = 0.07387.
    a, b = VariantStats(1000, 1000, 500), VariantStats(1000, 1000, 500)
    rules = VerdictRules(min_samples=100, non_inferiority_margin=0.05)
    v = ab_verdict(a, b, rules, offline_better=True, trigger_rate=0.2, tau=0.25)
    assert v.sequential.ci[0] == pytest.approx(-0.07387, abs=1e-5)
    # on all traffic the lower bound is 0.2 × -0.07387 = -0.0148 > -0.05: non-inferior, better offline
    assert v.action == "promote" and "triggered 20.0% of requests" in v.reasons[0]
    # the same counts read as all of the traffic: -0.07387 < -0.05, no verdict yet
    plain = ab_verdict(a, b, rules, offline_better=True, tau=0.25)
    assert plain.action == "continue"
    assert plain.reasons == ("no decision yet (always-valid p = 1 ≥ α = 0.05)",)  # not non-inferior


def test_a_challenger_that_differs_on_fewer_requests_than_the_margin_is_non_inferior():
    # Triggered on at most 4% of requests, it can lose at most 4 points: inside a margin of 5 whatever
    # the triggered counts say — but a significantly worse one (10 of 40 against 30 of 40) is still
    # rolled back by the guardrail.
    a, b = VariantStats(40, 40, 30), VariantStats(40, 40, 10)
    rules = VerdictRules(min_samples=300, non_inferiority_margin=0.05)
    v = ab_verdict(a, b, rules, offline_better=True, trigger_rate=0.04, tau=1.0)
    assert v.action in ("promote", "rollback")
    # significantly worse on the triggered requests is a broken guardrail all the same
    assert v.action == "rollback" and v.sequential.direction < 0
    close = ab_verdict(VariantStats(40, 40, 30), VariantStats(40, 40, 26), rules, offline_better=True,
                       trigger_rate=0.04, tau=1.0)  # fmt: skip
    assert close.action == "promote" and close.sequential.direction == 0
    assert close.reasons[0].startswith(
        "non-inferior online: serves at most 4.0% of requests differently, less"
    )
    # the bound is on the requests, not on the rewards: it needs no outcomes
    few = ab_verdict(VariantStats(3, 3, 2), VariantStats(3, 3, 2), rules, offline_better=True,
                     trigger_rate=0.04, tau=1.0)  # fmt: skip
    assert few.action == "promote"
    # a trigger rate above the margin needs the test, and the test needs max(30, ceil(300 × 0.2)) = 60
    wide = ab_verdict(VariantStats(59, 59, 40), VariantStats(59, 59, 40), rules, offline_better=True,
                      trigger_rate=0.2, tau=0.25)  # fmt: skip
    assert wide.action == "continue" and wide.reasons == (
        "waiting for samples: 59 < 60 outcomes per variant",
    )


def test_trigger_rate_bounds_are_checked():
    assert trigger_rate_upper(0, 0) == 1.0 and trigger_rate_upper(7, 7) == 1.0
    # Clopper–Pearson: P(Binomial(1000, u) <= 50) = 0.05 at the upper bound u
    u = trigger_rate_upper(50, 1000, 0.05)
    assert stats.binom.cdf(50, 1000, u) == pytest.approx(0.05, abs=1e-9)
    with pytest.raises(ValueError, match="triggered: 5 triggered of 4 decisions"):
        trigger_rate_upper(5, 4)
    with pytest.raises(ValueError, match=r"trigger_rate: must be in \(0, 1\], got 0.0"):
        ab_verdict(VariantStats(1), VariantStats(1), trigger_rate=0.0)
