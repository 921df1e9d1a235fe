"""Experiments: hash assignment, ramps, shadow mode, and seeded end-to-end simulations on the store."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from scipy import stats
from tests.loop._streams import seeded_registry, serve_batch

from rewardloop.config.sections import ExperimentsConfig
from rewardloop.evaluation.abtest import trigger_rate_upper
from rewardloop.evaluation.evidence import OfflineEvidence
from rewardloop.loop.experiments import (
    ExperimentError,
    Experiments,
    assign_variant,
    bucket,
    stage_shares,
)
from rewardloop.store import read_decisions, write_decisions, write_rewards
from rewardloop.store.experiments import TRIGGER_KEY, TriggerCounts, trigger_counts
from rewardloop.types import Decision, Experiment, Reward

IDS = [f"user-{i}" for i in range(100_000)]


def two_way(share: float, salt: str = "salt-1") -> Experiment:
    return Experiment(
        name="e",
        policy="intent",
        variants={"champion": "1.0.0", "challenger": "1.1.0"},
        shares=stage_shares(["champion", "challenger"], share),
        salt=salt,
    )


def test_bucket_is_stable_across_processes():
    here = [bucket("salt-1", u) for u in ("a", "user-7", "ü-名")]
    code = (
        "from rewardloop.loop.assignment import bucket;"
        "print([bucket('salt-1', u) for u in ('a', 'user-7', 'ü-名')])"
    )
    src = str(Path(__file__).resolve().parents[2] / "src")
    for seed in ("1", "2"):  # Python's own hash() differs between these
        out = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONPATH": src, "PYTHONHASHSEED": seed},
        )
        assert out.stdout.strip() == str(here)


def test_assignment_is_deterministic_and_balanced():
    exp = two_way(0.5)
    first = [assign_variant(exp, u)[0] for u in IDS]
    assert first == [assign_variant(exp, u)[0] for u in IDS]
    counts = Counter(first)
    chi2 = stats.chisquare([counts["champion"], counts["challenger"]])
    assert chi2.pvalue > 0.001, counts  # balanced within sampling error
    five = two_way(0.05)
    canary = Counter(assign_variant(five, u)[0] for u in IDS)
    assert stats.binomtest(canary["challenger"], len(IDS), 0.05).pvalue > 0.001, canary
    assert {assign_variant(five, u)[1] for u in IDS[:200]} == {0.05, 0.95}


def test_assignment_is_independent_across_salts():
    exp_a, exp_b = two_way(0.5, "exp-A"), two_way(0.5, "exp-B")
    a = np.array([assign_variant(exp_a, u)[0] == "challenger" for u in IDS])
    b = np.array([assign_variant(exp_b, u)[0] == "challenger" for u in IDS])
    table = np.array([[np.sum(a & b), np.sum(a & ~b)], [np.sum(~a & b), np.sum(~a & ~b)]])
    assert stats.chi2_contingency(table, correction=False).pvalue > 0.001, table
    assert 0.45 < np.mean(a == b) < 0.55


def test_ramping_up_only_moves_champion_units_over():
    five, quarter = two_way(0.05), two_way(0.25)
    small = {u for u in IDS[:20_000] if assign_variant(five, u)[0] == "challenger"}
    large = {u for u in IDS[:20_000] if assign_variant(quarter, u)[0] == "challenger"}
    assert small < large


def test_n_variants_get_their_shares():
    exp = Experiment(
        name="e",
        policy="p",
        variants={"champion": "1", "b": "2", "c": "3"},
        shares=stage_shares(["champion", "b", "c"], 0.5),
        salt="s",
    )
    counts = Counter(assign_variant(exp, u)[0] for u in IDS[:30_000])
    assert (
        stats.chisquare([counts["champion"], counts["b"], counts["c"]], [15_000, 7_500, 7_500]).pvalue > 0.001
    )


# -- on the store --------------------------------------------------------------------------------


@dataclass
class Gate:
    passed: bool = True

    def to_dict(self):
        return {"passed": self.passed}


def _seeded_registry(store, tmp_path):
    return seeded_registry(store, tmp_path, ("1.0.0", "1.1.0", "1.2.0"))


@pytest.fixture
def reg(store, tmp_path):
    return _seeded_registry(store, tmp_path)


@pytest.fixture
def sqlite_reg(sqlite_store, tmp_path):
    """For tables of bad inputs: refused before any dialect-specific SQL runs, so SQLite suffices."""
    return _seeded_registry(sqlite_store, tmp_path)


CFG = ExperimentsConfig(min_samples=100, max_samples=3000)


def simulate(
    ex: Experiments, name: str, rates: dict[str, float], seed: int, batch: int = 500, max_batches=40
):
    """Serve batches of requests through the experiment, log decisions and Bernoulli rewards, advance."""
    rng = np.random.default_rng(seed)
    steps = []
    for _b in range(max_batches):
        if ex.get(name).status != "running":
            break
        serve_batch(ex, name, rates, rng, batch, latency=True)
        steps.append(ex.advance(name, actor="sim"))
    return steps


def test_better_challenger_is_promoted_through_the_ramp(store, reg):
    ex = Experiments(store, reg, CFG)
    ex.start("canary-good", "intent", challenger="1.1.0", salt="good", gate_report=Gate())
    assert reg.aliases("intent") == {"champion": "1.0.0", "challenger": "1.1.0"}
    steps = simulate(ex, "canary-good", {"champion": 0.30, "challenger": 0.40}, seed=1)
    actions = [s.action for s in steps]
    assert actions[-1] == "promoted"
    assert "rolled_back" not in actions
    shares_seen = [s.experiment.shares["challenger"] for s in steps if s.action == "advanced"]
    assert shares_seen == [0.25, 0.5]  # 5% → 25% → 50% → promoted (100%)
    exp = ex.get("canary-good")
    assert exp.status == "promoted" and exp.shares == {"champion": 0.0, "challenger": 1.0}
    assert [e["step"] for e in exp.verdict["log"] if e.get("step") != "held"] == [
        "started",
        "ramp 5%→25%",
        "ramp 25%→50%",
        "promoted",
    ]
    assert reg.aliases("intent") == {"champion": "1.1.0"}
    # Every logged decision carries the share its variant had when it was served (for OPE).
    logged = {(d.variant, d.variant_share, d.policy_version) for d in read_decisions(store, policy="intent")}
    assert logged == {
        ("champion", 0.95, "1.0.0"),
        ("challenger", 0.05, "1.1.0"),
        ("champion", 0.75, "1.0.0"),
        ("challenger", 0.25, "1.1.0"),
        ("champion", 0.5, "1.0.0"),
        ("challenger", 0.5, "1.1.0"),
    }
    promote = [e for e in reg.history("intent") if e.action == "promote"][-1]
    assert (promote.from_version, promote.to_version, promote.actor) == ("1.0.0", "1.1.0", "sim")
    assert promote.gate_report["passed"] is True and promote.gate_report["action"] == "promote"
    assert "experiment canary-good" in promote.reason


def test_worse_challenger_is_rolled_back(store, reg):
    ex = Experiments(store, reg, CFG)
    ex.start("canary-bad", "intent", challenger="1.2.0", salt="bad")
    steps = simulate(ex, "canary-bad", {"champion": 0.40, "challenger": 0.25}, seed=2)
    assert steps[-1].action == "rolled_back"
    # Held at the 5% canary while it looks worse (expected loss too high to ramp), then rolled back.
    assert all(s.experiment.shares["challenger"] == 0.05 for s in steps)
    assert "lower by" in " ".join(steps[-1].verdict.reasons)
    assert ex.get("canary-bad").status == "rolled_back"
    assert reg.aliases("intent") == {"champion": "1.0.0"}
    removed = reg.history("intent")[-1]
    assert (removed.action, removed.alias, removed.from_version) == ("remove", "challenger", "1.2.0")
    assert "rolled back" in removed.reason
    with pytest.raises(ExperimentError, match="is rolled_back; serve intent@champion"):
        ex.assign("canary-bad", "user-1")


def test_sample_ratio_mismatch_rolls_back(store, reg):
    ex = Experiments(store, reg, ExperimentsConfig(min_samples=100))
    exp = ex.start("skewed", "intent", challenger="1.1.0", salt="s")
    # A broken logger drops most champion decisions: 300 challenger vs 700 champion at a 5% share.
    decisions = []
    for i, variant in enumerate(["challenger"] * 300 + ["champion"] * 700):
        decisions.append(
            Decision(
                policy="intent",
                policy_version=exp.variants[variant],
                kind="classifier",
                actions=("a",),
                action="a",
                action_dist=(1.0,),
                pscore=1.0,
                experiment="skewed",
                variant=variant,
                variant_share=exp.shares[variant],
                id=f"d{i}",
            )
        )
    write_decisions(store, decisions)
    step = ex.advance("skewed")
    assert step.action == "rolled_back"
    assert "sample ratio mismatch" in step.verdict.reasons[0]


def test_shadow_mode_logs_the_challenger_and_serves_the_champion(store, reg):
    ex = Experiments(store, reg, CFG)
    exp = ex.start("shadow-1", "intent", challenger="1.1.0", shadow=True, salt="sh")
    a = ex.assign(exp, "user-9")
    assert (a.variant, a.version, a.share, a.shadow) == ("champion", "1.0.0", 1.0, (("challenger", "1.1.0"),))
    base = Decision(
        policy="intent",
        policy_version="x",
        kind="classifier",
        actions=("a", "b"),
        action="a",
        action_dist=(0.5, 0.5),
        pscore=0.5,
    )
    served, shadowed = a.tag(base), a.tag_shadow(base)
    assert (served.variant, served.variant_share, served.experiment) == ("champion", 1.0, "shadow-1")
    assert (shadowed.variant, shadowed.metadata["shadow"]) == ("challenger", True)
    # Judged rewards on both streams: a clearly better shadow challenger starts the live ramp.
    rng = np.random.default_rng(3)
    decisions, rewards = [], []
    for i in range(900):
        for variant, rate in (("champion", 0.3), ("challenger", 0.45)):
            d = (a.tag if variant == "champion" else a.tag_shadow)(
                Decision(
                    policy="intent",
                    policy_version=exp.variants[variant],
                    kind="classifier",
                    actions=("a",),
                    action="a",
                    action_dist=(1.0,),
                    pscore=1.0,
                    id=f"{variant}-{i}",
                )
            )
            decisions.append(d)
            rewards.append(Reward(d.id, "judge", 1, float(rng.random() < rate)))
    write_decisions(store, decisions)
    write_rewards(store, rewards)
    step = ex.advance("shadow-1")
    assert step.action == "advanced"
    assert not step.experiment.shadow and step.experiment.shares["challenger"] == 0.05
    # The new stage starts from zero: the shadow data do not count towards the canary.
    assert ex.outcomes("shadow-1") == {}


def test_stop_sends_traffic_back_and_removes_the_challenger(store, reg):
    ex = Experiments(store, reg, CFG)
    ex.start("e1", "intent", challenger="1.1.0")
    exp = ex.stop("e1", actor="ann", reason="wrong config")
    assert exp.status == "stopped"
    assert reg.aliases("intent") == {"champion": "1.0.0"}
    assert ex.running_for("intent") is None
    ex.start("e2", "intent", challenger="1.2.0")  # a new one may start now
    assert ex.running_for("intent").name == "e2"


BAD_STARTS = [
    (dict(ramp=[0.5, 0.25]), r"ramp: shares must increase, got \[0.5, 0.25\]"),
    (dict(ramp=[0.0, 0.5]), "ramp: shares must be in"),
    (dict(ramp=[1.0]), "ramp: needs a stage below 1.0"),
    (dict(challenger="1.0.0"), "challenger: 1.0.0 is the champion already"),
    (dict(challenger="9.9.9"), r"challenger.challenger: version: intent@9\.9\.9 is not registered"),
    (dict(challenger={"champion": "1.1.0"}), "challenger: name at least one challenger"),
    (dict(policy="nobody"), "champion: ref: nobody has no alias 'champion'"),
]


@pytest.mark.parametrize(("override", "message"), BAD_STARTS)
def test_bad_starts_are_refused_and_store_nothing(sqlite_reg, override, message):
    reg = sqlite_reg
    ex = Experiments(reg.store, reg, CFG)
    args = dict(name="e", policy="intent", challenger="1.1.0")
    args.update(override)
    with pytest.raises(ExperimentError, match=message):
        ex.start(**args)
    assert ex.list() == []
    assert "challenger" not in reg.aliases("intent")


def test_operations_on_the_wrong_experiment(store, reg):
    ex = Experiments(store, reg, CFG)
    ex.start("e1", "intent", challenger="1.1.0")
    with pytest.raises(ExperimentError, match=r"policy: intent already has a running experiment \(e1\)"):
        ex.start("e2", "intent", challenger="1.2.0")
    with pytest.raises(ExperimentError, match=r"name: no experiment named 'zzz' \(known: e1\)"):
        ex.advance("zzz")
    with pytest.raises(ExperimentError, match="unit_id: must be a non-empty string"):
        ex.assign("e1", "")
    with pytest.raises(ExperimentError, match="variant: 'champion' is not a challenger"):
        ex.evaluate("e1", variant="champion")
    ex.stop("e1")
    with pytest.raises(ExperimentError, match="is stopped, not running"):
        ex.advance("e1")
    with pytest.raises(ExperimentError, match="name: an experiment named 'e1' exists already"):
        ex.start("e1", "intent", challenger="1.1.0")


def _decision(exp, variant, i, latency=None):
    return Decision(
        policy="intent",
        policy_version=exp.variants[variant],
        kind="classifier",
        actions=("a",),
        action="a",
        action_dist=(1.0,),
        pscore=1.0,
        latency_ms=latency,
        experiment=exp.name,
        variant=variant,
        variant_share=exp.shares[variant],
        id=f"{exp.name}-{variant}-{i}",
    )


def test_outcomes_are_aggregated_exactly(store, reg):
    ex = Experiments(store, reg, CFG)
    exp = ex.start("agg", "intent", challenger="1.1.0", salt="s")
    ds = [_decision(exp, "champion", i, lat) for i, lat in enumerate((10.0, 20.0, 30.0))]
    ds += [_decision(exp, "challenger", 0, None), _decision(exp, "challenger", 1, 5.0)]
    write_decisions(store, ds)
    # rewards: champion 1, 0, none; challenger 0.7 (a success at success_at=0.5), none
    write_rewards(
        store,
        [Reward(ds[0].id, "ctr", 1, 1.0), Reward(ds[1].id, "ctr", 1, 0.0), Reward(ds[3].id, "ctr", 1, 0.7)],
    )
    out = ex.outcomes("agg")
    c, h = out["champion"], out["challenger"]
    assert (c.n, c.n_outcomes, c.successes, c.reward_sum) == (3, 2, 1, 1.0)
    assert (c.latency_n, c.latency_mean, c.latency_var) == (3, 20.0, pytest.approx(100.0))
    assert (h.n, h.n_outcomes, h.successes, h.latency_n, h.latency_mean) == (2, 1, 1, 1, 5.0)
    # a second version of the spec: the newest version alone counts
    write_rewards(store, [Reward(ds[1].id, "ctr", 2, 1.0)])
    v2 = ex.outcomes("agg")
    assert (v2["champion"].n, v2["champion"].n_outcomes, v2["champion"].successes) == (3, 1, 1)
    assert (v2["challenger"].n, v2["challenger"].n_outcomes) == (2, 0)
    write_rewards(store, [Reward(ds[2].id, "judge", 1, 1.0)])
    with pytest.raises(
        ExperimentError,
        match=r"spec: experiment 'agg' has rewards of several specs \(ctr@v1, ctr@v2, judge@v1\)",
    ):
        ex.outcomes("agg")
    named = Experiments(store, reg, ExperimentsConfig(reward_spec="judge")).outcomes("agg")
    assert named["champion"].n_outcomes == 1 and named["challenger"].n_outcomes == 0


def test_guard_rolls_back_a_broken_guardrail_but_never_ramps(store, reg):
    ex = Experiments(store, reg, ExperimentsConfig(min_samples=10))
    exp = ex.start("g", "intent", challenger="1.1.0", salt="s", ramp=[0.5, 1.0])
    ds = [_decision(exp, v, i) for v in ("champion", "challenger") for i in range(300)]
    write_decisions(store, ds)
    # equal success rates: guard holds (and does not promote or ramp)
    write_rewards(store, [Reward(d.id, "ctr", 1, float(i % 2)) for i, d in enumerate(ds)])
    step = ex.guard("g")
    assert step.action == "held" and step.experiment.stage == 0
    # the challenger now fails every request it serves
    more = [_decision(exp, "challenger", 1000 + i) for i in range(300)]
    more += [_decision(exp, "champion", 1000 + i) for i in range(300)]
    write_decisions(store, more)
    write_rewards(store, [Reward(d.id, "ctr", 1, 1.0 if d.variant == "champion" else 0.0) for d in more])
    step = ex.guard("g")
    assert step.action == "rolled_back"


def test_a_refused_promotion_leaves_the_experiment_running(store, reg):
    ex = Experiments(store, reg, ExperimentsConfig(min_samples=50))
    exp = ex.start("p", "intent", challenger="1.1.0", salt="s", ramp=[0.5, 1.0])
    ds = [_decision(exp, v, i) for v in ("champion", "challenger") for i in range(400)]
    write_decisions(store, ds)
    write_rewards(
        store, [Reward(d.id, "ctr", 1, float(d.variant == "challenger" or int(d.id[-1]) < 3)) for d in ds]
    )
    (Path(reg.get("intent", "1.1.0").artifact_path) / "state.json").write_text("tampered")
    with pytest.raises(ExperimentError, match=r"does not match its checksum.*left running"):
        ex.advance("p")
    assert ex.get("p").status == "running" and ex.get("p").stage == 0
    assert reg.aliases("intent") == {"champion": "1.0.0", "challenger": "1.1.0"}


def _look(store, exp, variant, start, n, successes):
    """Log ``n`` decisions of ``variant`` (ids from ``start``), the first ``successes`` of them rewarded 1."""
    ds = [_decision(exp, variant, start + i) for i in range(n)]
    write_decisions(store, ds)
    write_rewards(store, [Reward(d.id, "ctr", 1, 1.0 if i < successes else 0.0) for i, d in enumerate(ds)])


def test_the_verdict_reads_its_direction_from_the_stored_confidence_sequence(store, reg):
    # Issue 13 item 15: look 1 80/800 vs 125/800 (p = 0.019, challenger better); look 2 190/1600 vs
    # 186/1600. Before: "rollback, challenger lower by 0.0025 (always-valid p = 0.0193)".
    ex = Experiments(store, reg, ExperimentsConfig(min_samples=2000, max_samples=5000))
    exp = ex.start("cs", "intent", challenger="1.1.0", salt="s", ramp=[0.5, 1.0])
    _look(store, exp, "champion", 0, 800, 80)
    _look(store, exp, "challenger", 0, 800, 125)
    first = ex.guard("cs")
    assert first.action == "held"
    lo, hi = first.experiment.verdict["cs_always_valid"]
    assert first.experiment.verdict["p_always_valid"] == pytest.approx(0.019318, abs=1e-6)
    assert (lo, hi) == (pytest.approx(0.005520, abs=1e-6), pytest.approx(0.106980, abs=1e-6))
    _look(store, exp, "champion", 800, 800, 110)
    _look(store, exp, "challenger", 800, 800, 61)
    second = ex.guard("cs")
    assert second.action == "held", second.verdict.reasons
    assert second.verdict.sequential.effect == pytest.approx(-0.0025)
    # the running intersection: [max(0.00552, −0.03753), min(0.10698, 0.03253)] — still above 0
    assert second.experiment.verdict["cs_always_valid"] == [
        pytest.approx(0.005520, abs=1e-6),
        pytest.approx(0.032532, abs=1e-6),
    ]
    assert second.verdict.sequential.direction == 1


def test_every_experiment_ends_when_its_sample_budget_is_spent(store, reg):
    # Issue 13 item 16: a challenger no better than the champion was "held" forever (max_samples: null).
    assert ExperimentsConfig().max_samples == 5000
    ex = Experiments(store, reg, ExperimentsConfig(min_samples=100, max_samples=300, max_ramp_loss=1.0))
    exp = ex.start("budget", "intent", challenger="1.1.0", salt="s", ramp=[0.25, 0.5, 1.0])
    steps = []
    for look in range(6):
        exp = ex.get("budget")
        if exp.status != "running":
            break
        n = round(120 * exp.shares["champion"] / exp.shares["challenger"])  # the split of the shares
        _look(store, exp, "champion", 1000 * look, n, n // 2)
        _look(store, exp, "challenger", 1000 * look, 120, 60)
        steps.append(ex.advance("budget"))
    # challenger outcomes 120 → ramp 25%→50% (a new stage); 240; 360 over both stages ≥ 300: ends
    assert [s.action for s in steps] == ["advanced", "held", "rolled_back"]
    reason = " ".join(steps[-1].verdict.reasons)
    assert "sample budget spent: no significant improvement after 360 outcomes per variant" in reason
    assert "the champion stays" in reason
    assert ex.get("budget").status == "rolled_back"
    assert "challenger" not in reg.aliases("intent")


def test_the_budget_must_hold_a_stage():
    with pytest.raises(
        ValueError, match=r"max_samples: the sample budget \(50\) must be at least min_samples"
    ):
        ExperimentsConfig(min_samples=100, max_samples=50)


def _flagged(exp, variant, i, triggered):
    d = _decision(exp, variant, i)
    return dataclasses.replace(d, metadata={TRIGGER_KEY: triggered})


def test_trigger_counts_and_the_triggered_outcomes_are_aggregated_exactly(store, reg):
    ex = Experiments(store, reg, CFG)
    exp = ex.start("trig", "intent", challenger="1.1.0", salt="s", ramp=[0.5, 1.0])
    ds = [_flagged(exp, "champion", i, i < 2) for i in range(5)]
    ds += [_flagged(exp, "challenger", i, i < 1) for i in range(4)]
    write_decisions(store, ds)
    # rewards: champion triggered 1, 0 and untriggered 1; challenger triggered 1 and untriggered 0
    rewards = [(ds[0], 1.0), (ds[1], 0.0), (ds[2], 1.0), (ds[5], 1.0), (ds[6], 0.0)]
    write_rewards(store, [Reward(d.id, "ctr", 1, r) for d, r in rewards])
    assert trigger_counts(store, "trig") == TriggerCounts(9, 9, 3)
    out = ex.outcomes("trig", triggered=True)
    assert (out["champion"].n, out["champion"].n_outcomes, out["champion"].successes) == (2, 2, 1)
    assert (out["challenger"].n, out["challenger"].n_outcomes, out["challenger"].successes) == (1, 1, 1)
    write_decisions(store, [_decision(exp, "challenger", 9)])  # one decision without the flag
    counts = trigger_counts(store, "trig")
    assert counts == TriggerCounts(10, 9, 3) and not counts.complete
    assert ex.trigger("trig") is None  # the verdict then compares every decision


def test_a_non_inferior_canary_better_offline_is_promoted_instead_of_held(store, reg):
    """The demo's stall (rounds 4–6 of issue 14): two models that serve 96% of requests alike, the
    challenger better offline; on all traffic the always-valid interval stays wider than the margin,
    on the 4% of requests where they differ it is non-inferior after one batch."""
    cfg = ExperimentsConfig(min_samples=300, max_samples=5000, non_inferiority_margin=0.02)
    offline = OfflineEvidence(0.893, 0.844, 0.80, 0.78)
    results = {}
    for counterfactual in (False, True):
        ex = Experiments(store, reg, cfg)
        name = f"stall-{counterfactual}"
        exp = ex.start(name, "intent", challenger="1.1.0", salt=name, ramp=[0.5, 1.0], offline=offline)
        rng = np.random.default_rng(3)
        ds, rewards = [], []
        for variant in ("champion", "challenger"):
            for i in range(1000):
                triggered = i < 40  # the same 4% of requests in each arm
                d = _flagged(exp, variant, i, triggered) if counterfactual else _decision(exp, variant, i)
                rate = 0.6 if variant == "challenger" and triggered else 0.4 if triggered else 0.75
                ds.append(d)
                rewards.append(Reward(d.id, "ctr", 1, float(rng.random() < rate)))
        write_decisions(store, ds)
        write_rewards(store, rewards)
        results[counterfactual] = ex.advance(name)
        if ex.get(name).status == "running":
            ex.stop(name)
    assert results[False].action == "held"
    assert results[True].action == "promoted"
    reasons = results[True].verdict.reasons[0]
    assert "non-inferior online" in reasons and "on the triggered" in reasons
    rate = trigger_rate_upper(80, 2000)  # 4% of 2,000 decisions: the τ of the stage is 0.05 / rate
    assert results[True].experiment.verdict["tau_triggered"] == pytest.approx(min(1.0, 0.05 / rate))
