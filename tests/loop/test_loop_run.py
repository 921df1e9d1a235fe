"""`rewardloop loop run` on a user's own store: bootstrap, then a gated canary; errors name the key."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from rewardloop.cli.main import app
from rewardloop.config.faults import ENV, EXIT_CODE
from rewardloop.learners import LEARNERS
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


def yaml_text(
    golden: str | None = "golden.jsonl",
    spec: str | None = "thumbs",
    learner: str = "supervised",
    training: tuple[str, ...] = (),
) -> str:
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
        f"  learner: {learner}",
        "  output_dir: artifacts",
        *(f"  {line}" for line in training),
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


def logged(text: str) -> Decision:
    """A decision of the app's first version: always the first label, with its propensity."""
    return Decision(
        policy="intent",
        policy_version="app-0",
        kind="classifier",
        actions=tuple(LABELS),
        action=LABELS[0],
        action_dist=(0.5, 0.25, 0.25),
        pscore=0.5,
        text=text,
    )


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
            d = logged(t)
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
    assert missing.exit_code == 3 and "intent@9.9.9" in missing.output  # not found


#: Small hyperparameters per learner (the YAML the loop must read; LoRA fine-tunes MiniLM: one epoch).
LEARNER_YAML = {
    "supervised": ("epochs: 60",),
    "lora": ("epochs: 1", "batch_size: 8"),
    "reinforce": ("epochs: 3", "entropy_coef: 0.02"),
    "ppo": ("epochs: 3", "ppo_eps_clip: 0.3"),
    "a2c": ("epochs: 3",),
    "dqn": ("epochs: 3", "dqn_epsilon: 0.05"),
    "dpo": ("epochs: 3",),
    "crm": ("epochs: 3",),
}


def test_every_learner_name_has_a_loop_case():
    assert set(LEARNER_YAML) == set(LEARNERS)


@pytest.mark.parametrize("learner", sorted(LEARNER_YAML))
def test_loop_run_once_with_every_learner(project_dir, learner):
    """Regression: `loop run` with dpo raised AttributeError ('BanditData' has no 'chosen'), and with
    dqn got an AbstainGate without predict_proba; every accepted name must run with its YAML config."""
    (project_dir / "rewardloop.yaml").write_text(yaml_text(learner=learner, training=LEARNER_YAML[learner]))
    for expected in ("bootstrapped: 1.0.0", "1.0.1"):
        result = runner.invoke(app, ["loop", "run", "--once"])
        assert result.exit_code == 0, result.output
        assert expected in result.output
    store = Store.open(f"sqlite:///{project_dir / 'rl.db'}", migrate=False)
    runs = read_runs(store, policy="intent")
    assert [r.status for r in runs] == ["succeeded", "succeeded"]
    rl = None if learner in ("supervised", "lora") else learner
    assert runs[-1].learner == ("supervised+" + rl if rl else learner)
    assert runs[-1].config["rl_learner"] == rl
    assert runs[-1].metrics["train/loss"] == runs[-1].metrics["train/loss"]  # recorded, finite
    registry = Registry(store, project_dir / "registry")
    folder = registry.artifact_path("intent@1.0.1")
    assert (folder / "training_history.json").exists()
    if learner == "ppo":  # PPO's KL and clip fraction reach the TrainingRun, with the YAML clip range
        assert {"train/approx_kl", "train/clip_fraction"} <= set(runs[-1].metrics)
        assert runs[-1].config["rl_config"]["clip_eps"] == 0.3
    if learner == "dqn":  # the classifier is gated and canaried; its abstain gate is registered with it
        assert (folder / "abstain_gate").is_dir()
        assert runs[-1].config["rl_config"]["epsilon"] == 0.05
    if learner == "lora":
        assert runs[-1].metrics["time/epoch"] == 0.0


def test_a_bad_correction_label_is_skipped_and_counted(project_dir):
    """Regression (issue 13 item 11): one correction naming an unknown label ('sports') made every
    later `loop run` and `train` exit 1; training now skips the row and records why. The store refuses
    such a label at write time now, so the row comes from a decision of an older app version whose
    actions still had the label (the policy's labels changed since)."""
    store = Store.open(f"sqlite:///{project_dir / 'rl.db'}", migrate=False)
    d = dataclasses.replace(
        logged("who won the match"), actions=(*LABELS, "sports"), action_dist=(0.5, 0.2, 0.2, 0.1)
    )
    write_decisions(store, [d])
    write_feedback(store, [Feedback(decision_id=d.id, kind="correction", label="sports", rater_id="ann")])
    result = runner.invoke(app, ["loop", "run", "--once"])
    assert result.exit_code == 0, result.output
    run = read_runs(store, policy="intent")[-1]
    assert run.status == "succeeded"
    assert run.metrics["skipped/label not a label of the policy"] == 1.0
    train = runner.invoke(app, ["train", "--set", "training.epochs=5"])
    assert train.exit_code == 0, train.output
    assert "skipped feedback: 1 label not a label of the policy" in " ".join(train.output.split())


SRC = Path(__file__).resolve().parents[2] / "src"

#: Where a kill used to leave the loop stuck or inconsistent (issue 13 item 8), in the order they run.
FAULT_STEPS = [
    "trained",
    "registry.artifact_copied",  # used to fail every later run: "registry/intent/1.0.1 exists already"
    "registered",  # used to leave the TrainingRun "running" forever
    "run_finished",
    "experiment.inserted",  # used to leave a running experiment without a challenger alias
    "canary_started",
]


def _consistent(project_dir: Path) -> Registry:
    store = Store.open(f"sqlite:///{project_dir / 'rl.db'}", migrate=False)
    runs = {r.id: r for r in read_runs(store, policy="intent")}
    assert all(r.status in ("succeeded", "failed") for r in runs.values()), [r.status for r in runs.values()]
    registry = Registry(store, project_dir / "registry")
    versions = registry.versions("intent")
    on_disk = {p.name.removesuffix(".manifest.json") for p in (project_dir / "registry" / "intent").iterdir()}
    assert on_disk == {v.version for v in versions}
    for v in versions:
        assert runs[v.training_run_id].status == "succeeded", v.version
        registry.verify(v)
    running = [e for e in registry_experiments(store) if e.status == "running"]
    for exp in running:
        assert registry.aliases("intent")["challenger"] == exp.variants["challenger"]
    assert registry.aliases("intent")["champion"] == "1.0.0"
    return registry


def registry_experiments(store):
    from rewardloop.store.experiments import read_experiments

    return read_experiments(store, policy="intent")


@pytest.mark.parametrize("step", FAULT_STEPS)
def test_killed_at_each_step_a_rerun_completes_with_a_consistent_history(project_dir, step):
    assert runner.invoke(app, ["loop", "run", "--once"]).exit_code == 0  # 1.0.0, the champion
    env = {**os.environ, ENV: step, "PYTHONPATH": str(SRC), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    killed = subprocess.run(
        [sys.executable, "-m", "rewardloop.cli.main", "loop", "run", "--once"],
        cwd=project_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert killed.returncode == EXIT_CODE, killed.stdout + killed.stderr
    rerun = runner.invoke(app, ["loop", "run", "--once"])
    assert rerun.exit_code == 0, rerun.output
    registry = _consistent(project_dir)
    aliases = registry.aliases("intent")
    if step in ("trained", "registry.artifact_copied"):  # nothing was registered: 1.0.1 is trained again
        assert "canary: 1.0.1 passed the gate" in rerun.output
        assert [v.version for v in registry.versions("intent")] == ["1.0.0", "1.0.1"]
    elif step in ("registered", "run_finished"):  # 1.0.1 stays registered (its run closed); 1.0.2 next
        assert "canary: 1.0.2 passed the gate" in rerun.output
    else:  # the experiment was started: the rerun advances it, with the alias in place
        assert "canary" not in rerun.output
        assert aliases["challenger"] == "1.0.1"
    again = runner.invoke(app, ["loop", "run", "--once"])
    assert again.exit_code == 0, again.output
    _consistent(project_dir)


def test_the_loop_measures_contributors_impact_when_asked(project_dir):
    store = Store.open(f"sqlite:///{project_dir / 'rl.db'}", migrate=False)
    extra = [logged(t) for t in ("lamp on now", "lamp off now", "is it snowing")]
    write_decisions(store, extra)
    write_feedback(
        store,
        [
            Feedback(decision_id=d.id, kind="correction", label=label, rater_id="bob")
            for d, label in zip(extra, ("lights_on", "lights_off", "weather"), strict=True)
        ],
    )
    result = runner.invoke(app, ["loop", "run", "--once", "--impact-top-k", "2"])
    assert result.exit_code == 0, result.output
    assert "bootstrapped" in result.output and "impact on intent" in result.output
    impact = [r for r in read_runs(store, policy="intent") if "impact" in r.config]
    # the reference on all 12 labels, and one fit without each of ann (9 labels) and bob (3)
    assert sorted((r.config["impact"]["role"], r.n_samples) for r in impact) == [
        ("all", 12),
        ("without", 3),
        ("without", 9),
    ]


def test_iteration_summaries_print_as_text_not_markup(project_dir, monkeypatch):
    """A summary or gate check that holds brackets (a policy@[tag], a reason quoting a list) is printed
    as it is: Rich markup in it would be swallowed or raise."""
    from rewardloop.cli import loop_cmds
    from rewardloop.loop.steps import IterationResult

    class Runner:
        def iterate(self) -> IterationResult:
            return IterationResult("held", "intent@[b] held: [red]not markup[/red] [1, 2]")

    monkeypatch.setattr(loop_cmds, "build_runner", lambda cfg, store: Runner())
    result = runner.invoke(app, ["loop", "run", "--once"])
    assert result.exit_code == 0, result.output
    assert "held: intent@[b] held: [red]not markup[/red] [1, 2]" in " ".join(result.output.split())
