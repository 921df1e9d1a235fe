"""`rewardloop loop run --once` and `rewardloop train` for a set policy (issue 20): trained from the
store's missed / unnecessary / corrected-set feedback, scored on a golden set of sets and by per-label
OPE on the champion's traffic, gated on the YAML thresholds, registered and canaried; errors name the
key."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from rewardloop.cli.main import app
from rewardloop.config.sections import ExperimentsConfig
from rewardloop.evaluation.golden import load_golden
from rewardloop.evaluation.sets import evaluate_set_policy
from rewardloop.loop.experiments import Experiments
from rewardloop.policies.contract import DecisionContext
from rewardloop.policies.multilabel import MultiLabelPolicy
from rewardloop.registry import Registry
from rewardloop.store import Store, read_runs, write_decisions, write_feedback
from rewardloop.types import Decision, Feedback, set_decision_fields

runner = CliRunner()
ACTIONS = ["lights", "music", "weather"]
#: Texts and their right sets; the last of each group is the golden set's.
TEXTS: list[tuple[str, tuple[str, ...]]] = [
    ("turn on the lights", ("lights",)),
    ("switch the lamp on in the kitchen", ("lights",)),
    ("dim the bedroom lights", ("lights",)),
    ("play some jazz music", ("music",)),
    ("put on my favourite song", ("music",)),
    ("play the radio louder", ("music",)),
    ("will it rain tomorrow", ("weather",)),
    ("how cold is it outside", ("weather",)),
    ("what is the forecast for today", ("weather",)),
    ("lights on and play music", ("lights", "music")),
    ("turn on the lamp and start a song", ("lights", "music")),
    ("play music and tell me the weather", ("music", "weather")),
    ("good morning", ()),
    ("thank you", ()),
]
GOLDEN = [
    ("switch off the ceiling lights", ("lights",)),
    ("play a rock song", ("music",)),
    ("is it sunny today", ("weather",)),
    ("lights off and stop the music", ("lights", "music")),
    ("hello there", ()),
]


def yaml_text(learner: str = "set_supervised", gate: tuple[str, ...] = (), **extra: str) -> str:
    lines = [
        "store:",
        "  url: sqlite:///rl.db",
        "policies:",
        "  - name: p",
        "    kind: set",
        f"    labels: {extra.get('labels', json.dumps(ACTIONS))}",
        f"    options: {extra.get('options', '{epsilon: 0.1}')}",
        "rewards:",
        "  - name: actions",
        "    function: set_penalty",
        "    scale: raw",
        "    options: {missed_penalty: 0.5, unnecessary_penalty: 0.3}",
        "training:",
        "  policy: p",
        f"  learner: {learner}",
        "  reward_spec: actions",
        "  output_dir: artifacts",
        f"  options: {extra.get('training_options', '{epochs: 80, validation_fraction: 0.0}')}",
        *([f"  init_from: {extra['init_from']}"] if "init_from" in extra else []),
        "evaluation:",
        f"  golden: {extra.get('golden', 'golden.jsonl')}",
        "  gate:",
        *(f"    {g}" for g in gate or ("min_micro_f1: 0.5",)),
        "experiments:",
        "  registry_root: registry",
        "  min_samples: 5",
    ]
    return "\n".join(lines) + "\n"


@pytest.fixture
def project(tmp_path, monkeypatch):
    torch.set_num_threads(1)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("REWARDLOOP_STORE__URL", raising=False)
    golden = [{"id": f"g{i}", "text": t, "labels": list(s)} for i, (t, s) in enumerate(GOLDEN)]
    (tmp_path / "golden.jsonl").write_text("\n".join(json.dumps(g) for g in golden))
    return tmp_path


def open_store(project) -> Store:
    return Store.open(f"sqlite:///{project / 'rl.db'}")


def feedback_for(
    d: Decision, right: tuple[str, ...], rater: str = "ann", authority: float = 1.0
) -> list[Feedback]:
    """The rater's missed and unnecessary actions of ``d`` (a set judged right: its set confirmed)."""
    chosen = set(d.chosen_set or ())
    missed = tuple(a for a in ACTIONS if a in right and a not in chosen)
    extra = tuple(a for a in ACTIONS if a in chosen and a not in right)
    rows = [
        Feedback(decision_id=d.id, kind=kind, labels=labels, rater_id=rater, authority=authority)
        for kind, labels in (("missed_actions", missed), ("unnecessary_actions", extra))
        if labels
    ]
    return rows or [
        Feedback(decision_id=d.id, kind="set_correction", labels=d.chosen_set or (), rater_id=rater)
    ]


def log_app(store: Store, texts=TEXTS) -> list[Decision]:
    """The app's first version: it suggests "lights" for everything (included with probability 0.9,
    each other action 0.1), judged by a rater."""
    decisions = [
        Decision(
            policy="p",
            policy_version="app-0",
            kind="set",
            text=t,
            **set_decision_fields(ACTIONS, ["lights"], [0.9, 0.1, 0.1]),
        )
        for t, _ in texts
    ]
    write_decisions(store, decisions)
    write_feedback(
        store, [f for d, (_, right) in zip(decisions, texts, strict=True) for f in feedback_for(d, right)]
    )
    return decisions


def serve_champion(
    store: Store, project, version: str, rounds: int = 2, truthful: bool = True
) -> list[Decision]:
    """The registered ``version`` served ε-greedy per label on the texts, logged with its feedback
    (``truthful=False``: a rater who calls every suggested action unnecessary)."""
    policy = MultiLabelPolicy.load(Registry(store, project / "registry").artifact_path(f"p@{version}"))
    rng = np.random.default_rng(0)
    served = [
        (
            dataclasses.replace(
                policy.decide(DecisionContext(text=t), rng), policy="p", policy_version=version
            ),
            right,
        )
        for _ in range(rounds)
        for t, right in TEXTS
    ]
    decisions = [d for d, _ in served]
    write_decisions(store, decisions)
    write_feedback(store, [f for d, right in served for f in feedback_for(d, right if truthful else ())])
    return decisions


def run_once(expected: str) -> str:
    result = runner.invoke(app, ["loop", "run", "--once"])
    assert result.exit_code == 0, result.output
    assert expected in result.output, result.output
    return result.output


@pytest.mark.parametrize(
    ("truthful", "expected"),
    [
        (True, "canary: 1.0.1 passed the gate; canary started"),
        # a flood of feedback calling every suggestion unnecessary: the challenger suggests nothing
        (False, "gated: 1.0.1 stopped at the gate (micro_f1)"),
    ],
)
def test_set_policy_bootstrap_then_challenger_trained_evaluated_gated_registered(project, truthful, expected):
    gate = ("min_micro_f1: 0.5", "max_hamming_loss: 0.5", "min_ope_lower_vs_champion: -1.0")
    (project / "rewardloop.yaml").write_text(yaml_text(gate=gate))
    store = open_store(project)
    log_app(store)
    run_once("bootstrapped: 1.0.0 trained and activated as the first champion")
    serve_champion(store, project, "1.0.0", rounds=2 if truthful else 4, truthful=truthful)
    output = run_once(expected)
    assert "micro_f1" in output

    runs = read_runs(store, policy="p")
    assert [(r.status, r.learner, r.n_samples) for r in runs] == [
        ("succeeded", "set_supervised (first version)", len(TEXTS)),
        ("succeeded", "set_supervised", (3 if truthful else 5) * len(TEXTS)),  # the app's and the champion's
    ]
    registry = Registry(store, project / "registry")
    versions = registry.versions("p")
    assert [(v.version, v.parent_version, v.kind, v.training_run_id) for v in versions] == [
        ("1.0.0", None, "set", runs[0].id),
        ("1.0.1", "1.0.0", "set", runs[1].id),
    ]
    # the recorded golden figures are the registered artifact's, on the golden set of sets
    golden = load_golden(project / "golden.jsonl")
    for v in versions:
        loaded = MultiLabelPolicy.load(registry.artifact_path(f"p@{v.version}"))
        assert (loaded.name, loaded.version) == ("p", v.version)
        figures = evaluate_set_policy(loaded, golden, v.version).figures()
        assert v.metrics["golden/micro_f1"] == pytest.approx(figures["golden/micro_f1"])
        assert v.metrics["golden/hamming_loss"] == pytest.approx(figures["golden/hamming_loss"])
    # it learned: the app suggested "lights" for everything (micro F1 on the golden set 0.4)
    assert versions[0].metrics["golden/micro_f1"] > 0.4
    assert registry.aliases("p") == (
        {"champion": "1.0.0", "challenger": "1.0.1"} if truthful else {"champion": "1.0.0"}
    )
    # every configured check ran, the per-label OPE on the champion's traffic among them
    for name in ("micro_f1", "hamming_loss", "ope_lower_vs_champion"):
        assert name in output, output
    if truthful:
        assert versions[1].metrics["golden/micro_f1"] >= 0.5
        # the canary carries its offline evidence: golden micro F1 and per-label DR, each vs the champion's
        experiments = Experiments(store, registry, ExperimentsConfig(registry_root="registry"))
        evidence = experiments.offline_evidence(experiments.running_for("p"))
        assert evidence is not None
        assert evidence.golden_accuracy == pytest.approx(versions[1].metrics["golden/micro_f1"])
        assert evidence.champion_golden_accuracy == pytest.approx(versions[0].metrics["golden/micro_f1"])
        assert evidence.ope_value is not None and evidence.champion_value is not None
        assert "held" in run_once("held")  # the canary's experiment runs like any kind's
    else:
        assert versions[1].metrics["golden/micro_f1"] < 0.5


def test_set_bandit_runs_after_supervision_on_the_logged_sets(project):
    (project / "rewardloop.yaml").write_text(yaml_text("set_bandit", training_options="{epochs: 5}"))
    store = open_store(project)
    log_app(store)
    run_once("bootstrapped: 1.0.0")
    (run,) = read_runs(store, policy="p")
    assert run.learner == "set_supervised+set_bandit (first version)"
    assert run.config["learner"]["set_bandit"]["epochs"] == 5  # the YAML's options reach the bandit
    assert run.config["learner"]["set_supervised"]["epochs"] == 60  # the other learner: its defaults
    history = json.loads((project / run.artifact_path / "training_history.json").read_text())
    assert {row["stage"] for row in history} == {0.0, 1.0}
    assert any("train/importance_weight" in row for row in history if row["stage"] == 1.0)


@pytest.mark.parametrize(
    ("yaml_extra", "golden", "message"),
    [
        (
            {"learner": "ppo"},
            None,
            "training.learner: 'ppo' does not train set policies (known: set_supervised",
        ),
        ({"options": "{alpha: 1}"}, None, "policies (p): options.alpha: not a set policy option"),
        ({"options": "{explore: always}"}, None, "options.explore: must be greedy, sample or epsilon"),
        ({"labels": "[]"}, None, "policies (p): policies.labels: name the actions"),
        ({}, '{"text": "t", "label": "lights"}', "evaluation.golden: golden.jsonl expects single labels"),
        ({}, '{"text": "t", "labels": ["alarm"]}', "action 'alarm' is not one of the policy's labels"),
    ],
)
def test_bad_set_loop_configs_are_named(project, yaml_extra, golden, message):
    learner = yaml_extra.pop("learner", "set_supervised")
    (project / "rewardloop.yaml").write_text(yaml_text(learner, **yaml_extra))
    if golden is not None:
        (project / "golden.jsonl").write_text(golden)
    result = runner.invoke(app, ["loop", "run", "--once"])
    assert result.exit_code != 0
    assert message in " ".join(result.output.split()), result.output


def _ratings_only(store: Store) -> None:
    decisions = log_app(store, texts=[])
    d = Decision(policy="p", policy_version="app-0", kind="set", text="lights please",
                 **set_decision_fields(ACTIONS, ["lights"], [0.9, 0.1, 0.1]))  # fmt: skip
    write_decisions(store, [*decisions, d])
    write_feedback(store, [Feedback(decision_id=d.id, kind="rating", value=1, scale=(0, 1), rater_id="u")])


def _without_text(store: Store) -> None:
    log_app(store)
    decisions = [
        Decision(
            policy="p",
            policy_version="app-0",
            kind="set",
            metadata={"i": i},
            **set_decision_fields(ACTIONS, ["lights"], [0.9, 0.1, 0.1]),
        )
        for i in range(2)
    ]
    write_decisions(store, decisions)
    write_feedback(store, [f for d in decisions for f in feedback_for(d, ("music",))])


def _foreign_label(store: Store) -> None:
    log_app(store)
    d = Decision(policy="p", policy_version="app-0", kind="set", text="wake me at seven",
                 **set_decision_fields([*ACTIONS, "alarm"], ["alarm"], [0.1, 0.1, 0.1, 0.9]))  # fmt: skip
    write_decisions(store, [d])
    write_feedback(
        store, [Feedback(decision_id=d.id, kind="set_correction", labels=("alarm",), rater_id="u")]
    )


@pytest.mark.parametrize(
    ("log", "outcome"),
    [
        # set decisions rated but never judged per action: nothing to learn a set from
        (_ratings_only, "no set feedback for p: send missed_actions, unnecessary_actions or set_correction"),
        # judged sets the loop cannot read (no text) are skipped and counted in the run
        (_without_text, {"skipped/decision without text": 2.0}),
        # a set from a wider label space: learned on the labels the policy has, and counted
        (_foreign_label, {"skipped/set label not in the policy's labels (left out)": 1.0}),
    ],
)
def test_bad_set_feedback_in_the_loop_is_refused_or_skipped_and_counted(project, log, outcome):
    (project / "rewardloop.yaml").write_text(yaml_text())
    store = open_store(project)
    log(store)
    result = runner.invoke(app, ["loop", "run", "--once"])
    if isinstance(outcome, str):
        assert result.exit_code != 0
        assert outcome in " ".join(result.output.split()), result.output
        assert read_runs(store, policy="p") == []
        return
    assert result.exit_code == 0, result.output
    (run,) = read_runs(store, policy="p")
    assert {k: v for k, v in run.metrics.items() if k.startswith("skipped/")} == outcome


def test_rewardloop_train_makes_a_set_policy_from_the_store(project):
    (project / "rewardloop.yaml").write_text(yaml_text(training_options="{epochs: 80}"))
    store = open_store(project)
    log_app(store)
    dry = runner.invoke(app, ["train", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert f"judged sets: {len(TEXTS)} (total authority {len(TEXTS):.2f})" in dry.output
    result = runner.invoke(app, ["train"])
    assert result.exit_code == 0, result.output
    assert f"trained p with set_supervised on {len(TEXTS)} examples" in result.output
    (run,) = read_runs(store, policy="p")
    assert (run.status, run.learner, run.n_samples) == ("succeeded", "set_supervised", len(TEXTS))
    assert run.metrics["train_micro_f1"] > 0.9  # the judged sets, learned
    policy = MultiLabelPolicy.load(run.artifact_path)
    assert (policy.labels, policy.name) == (ACTIONS, "p")
    # the bandit learner improves it from the logged sets (training.init_from)
    again = runner.invoke(
        app, ["train", "--learner", "set_bandit", "--set", f"training.init_from={run.artifact_path}"]
    )
    assert again.exit_code == 0, again.output
    assert [r.learner for r in read_runs(store, policy="p")] == ["set_supervised", "set_bandit"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--learner", "ppo"], "training.learner: 'ppo' trains classifier policies and 'p' is a set "
                               "(learners of a set: set_supervised, set_bandit)"),
        (["--learner", "set_bandit"], "training.init_from: the set_bandit learner improves a trained policy; "
                                      "set it to a saved policy folder (e.g. one from `rewardloop train "
                                      "--learner set_supervised`)"),
    ],
)  # fmt: skip
def test_rewardloop_train_errors_for_a_set_policy_name_the_key(project, args, message):
    (project / "rewardloop.yaml").write_text(yaml_text(training_options="{}"))
    result = runner.invoke(app, ["train", *args])
    assert result.exit_code != 0
    assert message in " ".join(result.output.split()), result.output


def test_the_init_template_shows_a_set_policy_its_gate_and_its_learners():
    from rewardloop.config.template import render_template
    from rewardloop.learners import learner_options

    text = render_template(learner_options=learner_options())
    assert "  #   kind: set" in text and "  #   function: set_penalty" in text
    assert "    min_micro_f1: null  # set policies: golden micro F1" in text
    assert "    max_hamming_loss: null  # set policies: share of wrong (item, action) cells at most" in text
    assert "  #   set_supervised (set):" in text and "  #   set_bandit (set):" in text
