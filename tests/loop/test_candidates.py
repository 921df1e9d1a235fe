"""The loop's challenger chosen on evidence: the held-out split, the ranking, the recorded figures."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from tests.loop.test_loop_run import LABELS, TEXTS, logged

from rewardloop.config.sections import ExperimentsConfig, GateConfig
from rewardloop.evaluation.gate import OPEComparison
from rewardloop.evaluation.golden import GoldenItem, GoldenSet
from rewardloop.evaluation.ope import PolicyValueInterval
from rewardloop.learners import CRMConfig
from rewardloop.loop.candidates import Candidate, split_logged
from rewardloop.loop.experiments import Experiments
from rewardloop.loop.iteration import LoopRunner
from rewardloop.policies.classifier import ClassifierPolicy
from rewardloop.registry import Registry
from rewardloop.rewards import RewardSpec
from rewardloop.store import Store, read_runs, write_decisions, write_feedback
from rewardloop.types import Decision, DecisionBatch, Feedback, Reward


def _batch(n: int, rewarded: int) -> DecisionBatch:
    ds = [
        Decision(policy="p", policy_version="1", kind="classifier", actions=("a", "b"), action="a",
                 action_dist=(0.9, 0.1), pscore=0.9, id=f"d{i}")
        for i in range(n)
    ]  # fmt: skip
    return DecisionBatch(ds, {}, {d.id: Reward(d.id, "r", 1, 1.0) for d in ds[:rewarded]})


def test_split_holds_out_a_seeded_share_of_the_rewarded_decisions():
    logged = _batch(8, 4)
    train, valid = split_logged(logged, 0.5, seed=0)
    assert len(valid) == 2 and set(valid.ids) <= {"d0", "d1", "d2", "d3"}
    assert set(train.ids) == set(logged.ids) - set(valid.ids)  # unrewarded ones stay in training
    assert train.ids == [i for i in logged.ids if i not in valid.ids]  # store order kept
    again, _ = split_logged(logged, 0.5, seed=0)
    assert again.ids == train.ids
    assert split_logged(_batch(3, 0), 0.5)[1].ids == []  # nothing rewarded: nothing held out


def _ope(value: float) -> OPEComparison:
    return OPEComparison(PolicyValueInterval("dr", value, value, value - 0.02, value + 0.02, 0.01, 100), 0.5)


def test_candidates_rank_by_held_out_snips_then_ope():
    policy = ClassifierPolicy(["a", "b"])
    a = Candidate("supervised", policy, [], snips=0.80, ope=_ope(0.70))
    b = Candidate("supervised+crm", policy, [], snips=0.82, ope=_ope(0.60))
    c = Candidate("other", policy, [], snips=0.82, ope=_ope(0.65))
    assert max([a, b, c], key=Candidate.rank) is c  # equal V̂_SN: the OPE value decides
    assert max([a, b], key=Candidate.rank) is b
    unscored = Candidate("x", policy, [])
    assert unscored.rank() == (-math.inf, -math.inf)
    assert b.figures() == {
        "valid/snips": 0.82,
        "golden_accuracy": pytest.approx(math.nan, nan_ok=True),
        "ope/dr": 0.60,
        "ope/dr_lower": pytest.approx(0.58),
    }
    assert unscored.to_dict() == {"name": "x", "params": None, "valid/snips": None, "golden_accuracy": None}


def test_the_loop_trains_candidates_and_records_every_ones_figures(tmp_path):
    torch.set_num_threads(1)
    store = Store.open(f"sqlite:///{tmp_path / 'rl.db'}")
    registry = Registry(store, tmp_path / "registry")
    golden = GoldenSet([GoldenItem(f"g{i}", ts[-1], label) for i, (label, ts) in enumerate(TEXTS.items())])
    loop = LoopRunner(
        store=store,
        registry=registry,
        experiments=Experiments(store, registry, ExperimentsConfig(min_samples=5)),
        policy="intent",
        golden=golden,
        spec=RewardSpec("thumbs", function="accuracy", scale="unit"),
        gate=GateConfig(min_accuracy=0.0),
        artifacts=tmp_path / "artifacts",
        labels=LABELS,
        rl_learner="crm",
        rl_config=CRMConfig(epochs=3, seed=0),
        base_texts=[t for ts in TEXTS.values() for t in ts[:-1]],
        base_labels=[label for label, ts in TEXTS.items() for _ in ts[:-1]],
        candidates=True,
    )
    assert loop.iterate().action == "bootstrapped"
    rng = np.random.default_rng(0)
    decisions, feedback = [], []
    for _ in range(4):  # the app's thumbs on 36 decisions, a third of them corrected
        for label, texts in TEXTS.items():
            for t in texts[:-1]:
                d = dataclasses.replace(logged(t), policy_version="1.0.0")  # served by the champion
                decisions.append(d)
                right = d.action == label
                feedback.append(
                    Feedback(decision_id=d.id, kind="rating", value=float(right), scale=(0.0, 1.0))
                )
                if not right and rng.random() < 0.3:
                    feedback.append(Feedback(decision_id=d.id, kind="correction", label=label))
    write_decisions(store, decisions)
    write_feedback(store, feedback)
    result = loop.iterate()
    assert result.action == "canary", result.summary
    names = [c["name"] for c in result.details["candidates"]]
    assert names == ["supervised", "supervised+crm"]
    runs = read_runs(store, policy="intent")
    candidate_runs = [r for r in runs if r.config.get("source") == "loop-candidate"]
    assert [r.config["candidate"] for r in candidate_runs] == names
    assert sum(r.config["chosen"] for r in candidate_runs) == 1
    for r in candidate_runs:
        assert {"valid/snips", "ope/dr", "ope/dr_lower", "golden_accuracy"} <= set(r.metrics)
    crm_run = candidate_runs[1]
    assert set(crm_run.config["params"]) == {"baseline", "max_weight"}  # chosen on held-out logs
    chosen = runs[-1]
    assert chosen.config["chosen"] in names and len(chosen.config["candidates"]) == 2
    assert registry.get("intent", str(result.challenger)).training_run_id == chosen.id
    exp = Experiments(store, registry).running_for("intent")
    assert exp is not None and exp.verdict["offline"]["golden_accuracy"] >= 0.0


def _runner(tmp_path) -> LoopRunner:
    store = Store.open(f"sqlite:///{tmp_path / 'rl.db'}")
    registry = Registry(store, tmp_path / "registry")
    return LoopRunner(
        store=store,
        registry=registry,
        experiments=Experiments(store, registry),
        policy="intent",
        golden=GoldenSet([GoldenItem("g0", "x", "a")]),
        spec=RewardSpec("thumbs", function="accuracy", scale="unit"),
        gate=GateConfig(),
        artifacts=tmp_path / "artifacts",
        labels=["a", "b", "c"],
        base_texts=["seed text"],
        base_labels=["b"],
    )


def test_a_thumbs_up_on_an_exploration_pick_makes_no_label_but_its_correction_does(tmp_path):
    def decision(i: int, action: str) -> Decision:
        return Decision(policy="intent", policy_version="1", kind="classifier", actions=("a", "b", "c"),
                        action=action, action_dist=(0.9, 0.05, 0.05), pscore=0.9 if action == "a" else 0.05,
                        text=f"t{i}", id=f"d{i}")  # fmt: skip

    up = {"kind": "rating", "value": 1.0, "scale": (-1.0, 1.0), "authority": 0.5}
    exploit, pick, corrected = decision(0, "a"), decision(1, "c"), decision(2, "b")
    feedback = {
        "d0": [Feedback(decision_id="d0", **up)],  # type: ignore[arg-type]
        "d1": [Feedback(decision_id="d1", **up)],  # type: ignore[arg-type]
        "d2": [
            Feedback(decision_id="d2", **up),  # type: ignore[arg-type]
            Feedback(decision_id="d2", kind="correction", label="c", authority=1.0),
        ],
    }
    data = _runner(tmp_path).labelled_data(DecisionBatch([exploit, pick, corrected], feedback, {}))
    assert data.texts == ["seed text", "t0", "t2"]
    assert data.labels == ["b", "a", "c"]
    assert data.sample_weight.tolist() == [1.0, 0.5, 1.0]
    assert data.skipped == {"rating of an exploration pick (no label)": 2}


def test_a_round_whose_preferred_candidate_is_gated_offers_the_next(tmp_path, monkeypatch):
    """The demo's stall of issue 14: the held-out logs preferred CRM each round, the gate stopped it
    (max_class_drop), and the round idled although the supervised candidate would have passed."""
    from rewardloop.evaluation.gate import GateCheck, GateReport
    from rewardloop.loop import iteration

    runner = dataclasses.replace(_runner(tmp_path), candidates=True)
    first, second = ClassifierPolicy(["a", "b", "c"]), ClassifierPolicy(["a", "b", "c"])
    pulled = []

    def offered(_runner, _since, _logged):
        for policy, version in ((first, "1.0.1"), (second, "1.0.2"), (first, "1.0.3")):
            pulled.append(version)  # refitted and registered only when asked for
            yield policy, version, []

    def gate(policy, _logged):
        drop = GateCheck("max_class_drop", 0.6 if policy is first else 0.1, 0.35, policy is not first, "<=")
        return GateReport("c", "1.0.0", [drop])

    monkeypatch.setattr(iteration, "challengers_on_evidence", offered)
    monkeypatch.setattr(runner, "gate_report", gate)
    monkeypatch.setattr(runner, "champion_logs", lambda since=None: DecisionBatch([]))
    monkeypatch.setattr(runner, "offline_evidence", lambda policy, logged: None)
    monkeypatch.setattr(runner, "start_canary", lambda version, report, offline: (object(), "started"))
    result = runner._challenge(None, None)
    assert (result.action, result.challenger) == ("canary", "1.0.2")
    assert (
        result.summary == "1.0.1 stopped at the gate (max_class_drop); 1.0.2 passed the gate; canary started"
    )
    assert result.details["stopped"] == ["1.0.1 stopped at the gate (max_class_drop)"]
    assert pulled == ["1.0.1", "1.0.2"]
    monkeypatch.setattr(runner, "gate_report", lambda policy, _logged: gate(first, _logged))
    pulled.clear()
    gated = runner._challenge(None, None)  # every candidate stopped: the round is gated
    assert gated.action == "gated" and gated.challenger == "1.0.3" and pulled == ["1.0.1", "1.0.2", "1.0.3"]
