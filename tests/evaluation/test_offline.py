"""A candidate evaluated off-policy on stored decisions: exact on a tiny batch, then through the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from rewardloop.cli.main import app
from rewardloop.evaluation.offline import evaluate_candidate_on_logs
from rewardloop.evaluation.ope import OPEInputError
from rewardloop.store import Store, write_decisions, write_rewards
from rewardloop.types.batches import DecisionBatch
from rewardloop.types.records import Decision, Reward


class Lookup:
    """A candidate that answers from a table text → probabilities over its labels."""

    def __init__(self, labels, table):
        self.labels = labels
        self.table = table

    def predict_proba(self, texts):
        return np.array([self.table[t] for t in texts])


def _decision(text, action, actions=("x", "y")):
    return Decision(
        policy="router",
        policy_version="1",
        kind="router",
        actions=actions,
        action=action,
        action_dist=(0.5, 0.5),
        pscore=0.5,
        text=text,
    )


def test_exact_on_a_tiny_batch():
    ds = [_decision("t1", "x"), _decision("t2", "y"), _decision("t3", "x"), _decision("t4", "y")]
    rewards = [1.0, 0.0, 0.0, 1.0]
    batch = DecisionBatch(
        ds, rewards={d.id: Reward(d.id, "s", 1, r) for d, r in zip(ds, rewards, strict=True)}
    )
    # The candidate has an extra label 'z'; its mass is dropped and the rest renormalised:
    # t1 → (1, 0), t2 → (0.5, 0.5), t3 → (0, 1), t4 → (0, 1).
    cand = Lookup(
        ["z", "x", "y"],
        {"t1": [0.0, 1.0, 0.0], "t2": [0.5, 0.25, 0.25], "t3": [0.0, 0.0, 1.0], "t4": [0.2, 0.0, 0.8]},
    )
    res = evaluate_candidate_on_logs(cand, batch, n_bootstrap_samples=50)
    # w = π_e(a_t)/0.5 = (2, 1, 0, 2); IPW = (2·1 + 1·0 + 0·0 + 2·1) / 4 = 1.0; SNIPW = 4 / 5.
    assert res.report.estimates["ipw"].value == pytest.approx(1.0, abs=1e-12)
    assert res.report.estimates["snipw"].value == pytest.approx(0.8, abs=1e-12)
    assert res.logging_policy_value == 0.5 and res.n_rounds == 4
    assert res.to_dict()["champion_value"] == 0.5
    assert res.to_dict()["estimated_propensities"] == 0


def test_the_report_counts_the_decisions_with_estimated_propensities():
    import dataclasses

    from rewardloop.evaluation.ope.propensity import ESTIMATED

    ds = [_decision("t1", "x"), _decision("t2", "y"), _decision("t3", "x")]
    ds[1] = dataclasses.replace(ds[1], metadata={"propensity": ESTIMATED})
    batch = DecisionBatch(ds, rewards={d.id: Reward(d.id, "s", 1, 1.0) for d in ds})
    cand = Lookup(["x", "y"], {"t1": [1.0, 0.0], "t2": [0.5, 0.5], "t3": [0.0, 1.0]})
    res = evaluate_candidate_on_logs(cand, batch, n_bootstrap_samples=20)
    assert res.estimated_propensities == 1 and res.to_dict()["estimated_propensities"] == 1


def test_candidate_must_cover_logged_actions_and_texts():
    d = _decision("t1", "x")
    batch = DecisionBatch([d], rewards={d.id: Reward(d.id, "s", 1, 1.0)})
    with pytest.raises(OPEInputError, match=r"its labels lack the logged action\(s\) \['y'\]"):
        evaluate_candidate_on_logs(Lookup(["x"], {"t1": [1.0]}), batch)
    blind = _decision(None, "x")
    with pytest.raises(OPEInputError, match="has no text"):
        evaluate_candidate_on_logs(
            Lookup(["x", "y"], {}), DecisionBatch([blind], rewards={blind.id: Reward(blind.id, "s", 1, 1.0)})
        )


def test_ope_command_feeds_the_gate(tmp_path):
    rng = np.random.default_rng(0)
    actions = ("billing", "fraud", "other")
    decisions, rewards, preds = [], [], []
    for i in range(300):
        truth = actions[i % 3]
        text = f"message {i}"
        logged = actions[int(rng.integers(0, 3))]
        d = Decision(
            policy="triage",
            policy_version="1",
            kind="classifier",
            actions=actions,
            action=logged,
            action_dist=(1 / 3, 1 / 3, 1 / 3),
            pscore=1 / 3,
            text=text,
        )
        decisions.append(d)
        rewards.append(Reward(d.id, "thumbs", 1, float(logged == truth)))
        proba = [0.05, 0.05, 0.05]
        proba[actions.index(truth)] = 0.9
        preds.append(json.dumps({"text": text, "proba": proba}))
    store = Store.open(f"sqlite:///{tmp_path / 'rl.db'}")
    write_decisions(store, decisions)
    write_rewards(store, rewards)
    store.close()
    cand = tmp_path / "v2"
    cand.mkdir()
    (cand / "labels.json").write_text(json.dumps(list(actions)))
    (cand / "predictions.jsonl").write_text("\n".join(preds) + "\n")
    config = tmp_path / "rewardloop.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "store": {"url": f"sqlite:///{tmp_path / 'rl.db'}"},
                "evaluation": {"gate": {"min_ope_lower_vs_champion": 0.2}},
            }
        )
    )
    out = tmp_path / "ope.json"
    runner = CliRunner()
    res = runner.invoke(
        app,
        [
            "ope",
            "-c",
            str(config),
            "--candidate",
            str(cand),
            "--policy",
            "triage",
            "--reward-spec",
            "thumbs:1",
            "--n-bootstrap",
            "200",
            "-o",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    body = json.loads(out.read_text())
    assert body["n_rounds"] == 300
    assert 0.25 < body["champion_value"] < 0.42  # uniform logging: about 1/3 right
    assert body["estimates"]["dr"]["value"] == pytest.approx(0.9, abs=0.1)  # the candidate is 90% right
    gate = runner.invoke(
        app,
        [
            "gate",
            "-c",
            str(config),
            "--candidate",
            str(cand),
            "--golden",
            str(_golden(tmp_path, actions)),
            "--ope",
            str(out),
        ],
    )
    assert gate.exit_code == 0, gate.output
    bad = runner.invoke(
        app,
        ["ope", "-c", str(config), "--candidate", str(cand), "--policy", "triage", "--reward-spec", "thumbs"],
    )
    assert bad.exit_code == 2 and "expected NAME:VERSION" in bad.output


def _golden(tmp_path, actions):
    path = tmp_path / "golden.jsonl"
    path.write_text(
        "".join(json.dumps({"text": f"message {i}", "label": actions[i % 3]}) + "\n" for i in range(9))
    )
    return path
