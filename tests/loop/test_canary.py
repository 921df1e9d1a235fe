"""Deployment that does not stall: non-inferiority ramps, promotion on offline evidence, the sample
budget, and a newer challenger replacing a running canary (seeded outcome streams on the store)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from tests.loop._streams import seeded_registry, serve_batch

from rewardloop.config.sections import ExperimentsConfig
from rewardloop.evaluation.evidence import OfflineEvidence
from rewardloop.loop.experiments import ExperimentError, Experiments

CFG = ExperimentsConfig(min_samples=100, max_samples=3000, non_inferiority_margin=0.05)
BETTER = OfflineEvidence(0.93, 0.90, ope_value=0.86, champion_value=0.85)
NOT_BETTER = OfflineEvidence(0.90, 0.90)


@pytest.fixture
def reg(store, tmp_path):
    return seeded_registry(store, tmp_path, ("1.0.0", "1.1.0", "1.2.0", "1.3.0"))


def run(ex: Experiments, name: str, rates: dict[str, float], seed: int, batch: int = 500) -> list[str]:
    """Serve Bernoulli outcome streams through the experiment and advance after each batch, until it
    ends (every experiment must end: the loop is bounded only as a safety net)."""
    rng = np.random.default_rng(seed)
    actions = []
    for _ in range(100):
        exp = ex.get(name)
        if exp.status != "running":
            return actions
        serve_batch(ex, name, rates, rng, batch, latency=False)
        actions.append(ex.advance(name).action)
    raise AssertionError(f"{name} still running after 100 looks: held forever")


def test_an_equal_challenger_better_offline_is_promoted_once_non_inferior(store, reg):
    ex = Experiments(store, reg, CFG)
    ex.start("eq", "intent", challenger="1.1.0", salt="eq", ramp=[0.5, 1.0], offline=BETTER)
    actions = run(ex, "eq", {"champion": 0.8, "challenger": 0.8}, seed=3)
    assert actions[-1] == "promoted" and "rolled_back" not in actions
    exp = ex.get("eq")
    reasons = exp.verdict["last"]["reasons"]
    assert "non-inferior online: worse by less than the margin 0.05" in reasons[0]
    assert exp.verdict["offline"]["better"] is True
    assert reg.aliases("intent") == {"champion": "1.1.0"}
    # well before the sample budget (3000 per variant) that used to be the only way out
    assert len(actions) * 500 / 2 < CFG.max_samples


@pytest.mark.parametrize("offline", [None, NOT_BETTER], ids=["no evidence", "not better offline"])
def test_an_equal_challenger_without_better_offline_evidence_ends_at_its_budget(store, reg, offline):
    ex = Experiments(store, reg, CFG)
    ex.start("eq", "intent", challenger="1.1.0", salt="eq", ramp=[0.5, 1.0], offline=offline)
    actions = run(ex, "eq", {"champion": 0.8, "challenger": 0.8}, seed=3)
    assert actions[-1] == "rolled_back" and "promoted" not in actions
    assert "sample budget spent" in ex.get("eq").verdict["last"]["reasons"][0]
    assert reg.aliases("intent") == {"champion": "1.0.0"}


def test_a_better_challenger_is_promoted_and_a_worse_one_rolled_back(store, reg):
    ex = Experiments(store, reg, CFG)
    ex.start("good", "intent", challenger="1.1.0", salt="g", ramp=[0.5, 1.0])
    assert run(ex, "good", {"champion": 0.70, "challenger": 0.80}, seed=4)[-1] == "promoted"
    assert "challenger better by at least" in ex.get("good").verdict["last"]["reasons"][0]
    # significantly better and better offline: the reason is the significant gain (it was the margin)
    ex.start("both", "intent", challenger="1.3.0", salt="g2", ramp=[0.5, 1.0], offline=BETTER)
    assert run(ex, "both", {"champion": 0.70, "challenger": 0.85}, seed=4)[-1] == "promoted"
    assert "challenger better by at least" in ex.get("both").verdict["last"]["reasons"][0]
    # better offline is not enough: online it is worse by more than the margin
    ex.start("bad", "intent", challenger="1.2.0", salt="b", ramp=[0.5, 1.0], offline=BETTER)
    assert run(ex, "bad", {"champion": 0.80, "challenger": 0.65}, seed=5)[-1] == "rolled_back"
    assert "lower by" in ex.get("bad").verdict["last"]["reasons"][0]
    assert reg.aliases("intent") == {"champion": "1.3.0"}


def test_a_non_inferior_canary_ramps_through_every_stage(store, reg):
    ex = Experiments(store, reg, CFG)
    ex.start("ramp", "intent", challenger="1.1.0", salt="r", offline=BETTER)  # 5% → 25% → 50% → 100%
    actions = run(ex, "ramp", {"champion": 0.8, "challenger": 0.8}, seed=6, batch=2000)
    assert actions.count("advanced") == 2 and actions[-1] == "promoted"
    steps = [e["step"] for e in ex.get("ramp").verdict["log"]]
    assert steps == ["started", "ramp 5%→25%", "ramp 25%→50%", "promoted"]


def test_a_newer_challenger_that_beats_the_canary_offline_replaces_it(store, reg):
    ex = Experiments(store, reg, CFG)
    first, why = ex.supersede("c1", "intent", "1.1.0", OfflineEvidence(0.91, 0.90))
    assert first is not None and why == "c1 started"
    # not better than the running canary's evidence: it keeps running, nothing changes
    kept, why = ex.supersede("c2", "intent", "1.2.0", OfflineEvidence(0.905, 0.90))
    assert kept is None and ex.running_for("intent").name == "c1"
    assert why.startswith("c1 keeps running: 1.2.0's golden accuracy 0.9050 vs champion 0.9000")
    assert reg.aliases("intent") == {"champion": "1.0.0", "challenger": "1.1.0"}
    newer, why = ex.supersede("c3", "intent", "1.3.0", OfflineEvidence(0.93, 0.90))
    assert newer is not None and ex.running_for("intent").name == "c3"
    old = ex.get("c1")
    assert old.status == "stopped"
    assert old.verdict["log"][-1]["reason"].startswith("replaced by 1.3.0 (c3): golden accuracy 0.9300")
    assert reg.aliases("intent") == {"champion": "1.0.0", "challenger": "1.3.0"}
    assert why.startswith("c3 started; c1 replaced by 1.3.0")


def test_stored_offline_evidence_that_is_broken_is_named(store, reg):
    ex = Experiments(store, reg, CFG)
    exp = ex.start("x", "intent", challenger="1.1.0", salt="x", offline=BETTER)
    broken = {**exp.verdict, "offline": {"golden_accuracy": 0.9}}
    with pytest.raises(ExperimentError, match=r"x\.offline: missing 'champion_golden_accuracy'"):
        ex.offline_evidence(dataclasses.replace(exp, verdict=broken))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"golden_accuracy": float("nan"), "champion_golden_accuracy": 0.9},
            "golden_accuracy: must be a finite",
        ),
        (
            {"golden_accuracy": 0.9, "champion_golden_accuracy": "x"},
            "champion_golden_accuracy: must be a finite",
        ),
        ({"golden_accuracy": 0.9, "champion_golden_accuracy": 0.8, "ope_value": 0.5}, "give both"),
    ],
)
def test_bad_offline_evidence_is_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        OfflineEvidence(**kwargs)


def test_offline_evidence_is_better_and_beats_exactly():
    assert OfflineEvidence(0.91, 0.90).better
    assert not OfflineEvidence(0.90, 0.90).better  # equal is not better
    assert not OfflineEvidence(0.92, 0.90, ope_value=0.80, champion_value=0.81).better  # OPE says worse
    assert OfflineEvidence(0.92, 0.90).beats(OfflineEvidence(0.91, 0.90))
    assert not OfflineEvidence(0.91, 0.90).beats(OfflineEvidence(0.91, 0.90))
    assert not OfflineEvidence(0.95, 0.96).beats(OfflineEvidence(0.91, 0.90))  # worse than its champion
    again = OfflineEvidence.from_mapping(BETTER.to_dict())
    assert again == BETTER and OfflineEvidence.from_mapping(None) is None
