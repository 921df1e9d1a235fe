"""`rewardloop loop run` on a user's own store: bootstrap, then a gated canary; errors name the key."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from rewardloop.cli.main import app
from rewardloop.registry import Registry
from rewardloop.store import Store, read_runs, write_decisions, write_feedback
from rewardloop.types import Decision, Feedback

runner = CliRunner()

TEXTS = {
    "lights_on": ["turn on the light", "switch the lamp on", "lights on please", "light up the kitchen"],
    "lights_off": [
        "turn off the light",
        "switch the lamp off",
        "lights off please",
        "kill the kitchen lights",
    ],
    "weather": ["what is the weather", "will it rain today", "how warm is it outside", "is it sunny"],
}
LABELS = sorted(TEXTS)


def yaml_text(golden: str | None = "golden.jsonl", spec: str | None = "thumbs") -> str:
    lines = [
        "store:",
        "  url: sqlite:///rl.db",
        "policies:",
        "  - name: intent",
        "    kind: classifier",
        f"    labels: {json.dumps(LABELS)}",
        "rewards:",
        "  - name: thumbs",
        "    function: accuracy",
        "training:",
        "  learner: supervised",
        "  output_dir: artifacts",
    ]
    if spec:
        lines.append(f"  reward_spec: {spec}")
    lines += ["evaluation:"]
    if golden:
        lines.append(f"  golden: {golden}")
    lines += [
        "  gate:",
        "    min_accuracy: 0.5",
        "experiments:",
        "  registry_root: registry",
        "  min_samples: 5",
    ]
    return "\n".join(lines) + "\n"


@pytest.fixture
def project_dir(tmp_path, monkeypatch):
    torch.set_num_threads(1)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("REWARDLOOP_STORE__URL", raising=False)
    (tmp_path / "rewardloop.yaml").write_text(yaml_text())
    golden = [
        {"id": f"g{i}", "text": t, "label": label}
        for i, (label, t) in enumerate((label, ts[-1]) for label, ts in TEXTS.items())
    ]
    (tmp_path / "golden.jsonl").write_text("\n".join(json.dumps(g) for g in golden))
    store = Store.open(f"sqlite:///{tmp_path / 'rl.db'}")
    decisions, feedback = [], []
    for label, texts in TEXTS.items():
        for t in texts[:-1]:
            d = Decision(
                policy="intent",
                policy_version="app-0",
                kind="classifier",
                actions=tuple(LABELS),
                action=LABELS[0],
                action_dist=(0.5, 0.25, 0.25),
                pscore=0.5,
                text=t,
            )
            decisions.append(d)
            feedback.append(Feedback(decision_id=d.id, kind="correction", label=label, rater_id="ann"))
    write_decisions(store, decisions)
    write_feedback(store, feedback)
    return tmp_path


def test_bootstrap_then_gated_canary_every_step_recorded(project_dir):
    first = runner.invoke(app, ["loop", "run", "--once"])
    assert first.exit_code == 0, first.output
    assert "bootstrapped: 1.0.0 trained and activated as the first champion" in first.output
    second = runner.invoke(app, ["loop", "run", "--once"])
    assert second.exit_code == 0, second.output
    assert "canary: 1.0.1 passed the gate; canary started" in second.output
    assert "pass accuracy" in second.output
    third = runner.invoke(app, ["loop", "run", "--once"])
    assert third.exit_code == 0, third.output
    assert "held" in third.output or "advanced" in third.output  # no traffic yet: not enough samples

    store = Store.open(f"sqlite:///{project_dir / 'rl.db'}", migrate=False)
    runs = read_runs(store, policy="intent")
    assert [r.status for r in runs] == ["succeeded", "succeeded"]
    registry = Registry(store, project_dir / "registry")
    assert registry.aliases("intent") == {"champion": "1.0.0", "challenger": "1.0.1"}
    assert [v.parent_version for v in registry.versions("intent")] == [None, "1.0.0"]


@pytest.mark.parametrize(
    ("golden", "spec", "message"),
    [
        (None, "thumbs", "evaluation.golden: the loop scores every challenger on a golden set"),
        ("golden.jsonl", None, "training.reward_spec: name the reward spec"),
        ("golden.jsonl", "nope", "rewards: no reward spec named 'nope'"),
        ("missing.jsonl", "thumbs", "missing.jsonl"),
    ],
)
def test_missing_pieces_are_named(project_dir, golden, spec, message):
    (project_dir / "rewardloop.yaml").write_text(yaml_text(golden, spec))
    result = runner.invoke(app, ["loop", "run", "--once"])
    assert result.exit_code == 2
    assert message in result.output


def test_eval_and_gate_resolve_registry_references(project_dir):
    assert runner.invoke(app, ["loop", "run", "--once"]).exit_code == 0  # 1.0.0, champion
    assert runner.invoke(app, ["loop", "run", "--once"]).exit_code == 0  # 1.0.1, challenger
    ev = runner.invoke(app, ["eval", "--policy", "intent@champion", "--golden", "golden.jsonl"])
    assert ev.exit_code == 0, ev.output
    assert "intent@1.0.0" in ev.output
    gate = runner.invoke(
        app,
        [
            "gate",
            "--candidate",
            "intent@challenger",
            "--champion",
            "intent@champion",
            "--golden",
            "golden.jsonl",
        ],
    )
    assert gate.exit_code in (0, 1), gate.output
    assert "accuracy" in gate.output
    missing = runner.invoke(app, ["eval", "--policy", "intent@9.9.9", "--golden", "golden.jsonl"])
    assert missing.exit_code == 2 and "intent@9.9.9" in missing.output
