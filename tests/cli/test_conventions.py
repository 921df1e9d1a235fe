"""CLI conventions over every command: exit codes (0 ok, 1 check failed, 2 usage, 3 not found, 4 store or
runtime), ``--json`` that parses, choices for enum options, one meaning per short flag, no hard wrapping
on a pipe, ``runs list|show``."""

from __future__ import annotations

import json
import typing
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from rewardloop.cli.main import COMMANDS, app, load_command
from rewardloop.store import Store, finish_run, start_run, write_decisions
from rewardloop.types import TrainingRun, decision_from_dict

runner = CliRunner()


@pytest.fixture
def proj(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A project with two decisions, a registered version, a finished training run and a key."""
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path / 'rl.db'}"
    cfg = {
        "store": {"url": url},
        "policies": [{"name": "intent", "kind": "classifier", "labels": ["a", "b"]}],
        "experiments": {"registry_root": str(tmp_path / "registry")},
        "training": {"output_dir": str(tmp_path / "artifacts")},
    }
    (tmp_path / "rewardloop.yaml").write_text(yaml.safe_dump(cfg))
    store = Store.open(url)
    base = {"policy": "intent", "policy_version": "1", "kind": "classifier", "actions": ["a", "b"]}
    write_decisions(
        store,
        [
            decision_from_dict(
                {**base, "action": "a", "action_dist": [0.5, 0.5], "pscore": 0.5, "text": f"t{i}"}
            )
            for i in range(2)
        ],
    )
    run = start_run(store, TrainingRun(policy="intent", learner="supervised", n_samples=2))
    finish_run(store, run, {"train/loss": 0.25, "n_samples": 2.0}, artifact_path="/tmp/x")
    store.close()
    artifact = tmp_path / "artifact"
    artifact.mkdir()
    (artifact / "policy.json").write_text("{}")
    reg = runner.invoke(
        app, ["policies", "register", "intent", str(artifact), "--kind", "classifier", "--version", "0.1.0"]
    )
    assert reg.exit_code == 0, reg.output
    return {"run": run.id, "url": url}


# (arguments, exit code, what --json output must hold: a top-level key, or None when not JSON)
TABLE: list[tuple[list[str], int, str | None]] = [
    (["stats", "--json"], 0, "groups"),
    (["runs", "list", "--json"], 0, "items"),
    (["runs", "show", "{run}", "--json"], 0, "metrics"),
    (["policies", "list", "--json"], 0, "items"),
    (["policies", "show", "intent@0.1.0", "--json"], 0, "checksum"),
    (["keys", "list", "--json"], 0, "items"),
    (["feedback", "voids", "--json"], 0, "items"),
    (["experiment", "status", "--json"], 0, "items"),
    (["data", "where", "--json"], 0, "data_dir"),
    (["runs", "show", "000000"], 3, None),
    (["runs", "show", "abc"], 3, None),
    (["policies", "show", "intent@9.9.9"], 3, None),
    (["policies", "show", "nobody@champion"], 3, None),
    (["experiment", "status", "nope"], 3, None),
    (["keys", "revoke", "no-such-key"], 3, None),
    (["import", "decisions", "missing.jsonl"], 3, None),
    (["train", "--from-labels", "missing.csv"], 3, None),
    (["train", "--learner", "nope"], 2, None),
    (["policies", "register", "x", ".", "--kind", "bogus"], 2, None),
    (["keys", "create", "--name", "k", "--role", "boss"], 2, None),
    (["router", "train", "-p", "r", "-r", "s", "-o", "o", "--algorithm", "nope"], 2, None),
    (["runs", "list", "--status", "done"], 2, None),
    (["no-such-command"], 2, None),
]


@pytest.mark.parametrize(("args", "code", "key"), TABLE, ids=[" ".join(a) for a, _, _ in TABLE])
def test_exit_codes_and_json(proj: dict[str, str], args: list[str], code: int, key: str | None) -> None:
    result = runner.invoke(app, [a.format(**proj) for a in args])
    assert result.exit_code == code, result.output
    if key is not None:
        data = json.loads(result.stdout)
        assert key in data, data


def test_json_holds_the_values(proj: dict[str, str]) -> None:
    runs = json.loads(runner.invoke(app, ["runs", "list", "--json"]).stdout)["items"]
    assert [(r["id"], r["learner"], r["status"], r["metrics"]["train/loss"]) for r in runs] == [
        (proj["run"], "supervised", "succeeded", 0.25)
    ]
    one = json.loads(runner.invoke(app, ["runs", "show", proj["run"][:8], "--json"]).stdout)
    assert one["id"] == proj["run"] and one["artifact_path"] == "/tmp/x" and one["n_samples"] == 2
    stats = json.loads(runner.invoke(app, ["stats", "--json"]).stdout)
    assert stats["decisions"] == 2 and stats["groups"][0]["policy"] == "intent"
    versions = json.loads(runner.invoke(app, ["policies", "list", "--json"]).stdout)["items"]
    assert [(v["policy"], v["version"], v["kind"]) for v in versions] == [("intent", "0.1.0", "classifier")]


def test_a_store_that_cannot_open_exits_4(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    bad = {"store": {"url": "postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2"}}  # refused
    (tmp_path / "rewardloop.yaml").write_text(yaml.safe_dump(bad))
    for args in (["stats"], ["runs", "list"], ["keys", "list", "--json"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 4 and "store.url: cannot open" in result.output, (args, result.output)


def test_an_unexpected_error_exits_4_with_one_line(
    proj: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import rewardloop.store

    def broken(*_a: object, **_k: object) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(rewardloop.store, "store_stats", broken)
    result = runner.invoke(app, ["stats"])
    assert result.exit_code == 4 and "RuntimeError: disk on fire" in result.output


def _commands() -> list[tuple[str, typing.Any]]:
    out = []
    for name in COMMANDS:
        cmd = load_command(name)
        subs = getattr(cmd, "commands", None)
        out += [(f"{name} {n}", c) for n, c in subs.items()] if subs else [(name, cmd)]
    return out


def test_one_meaning_per_short_flag() -> None:
    meaning: dict[str, set[str]] = {}
    for _, cmd in _commands():
        for p in cmd.params:
            shorts = [o for o in p.opts if len(o) == 2 and o.startswith("-")]
            longs = [o for o in p.opts if o.startswith("--")]
            for s in shorts:
                meaning.setdefault(s, set()).update(longs)
    assert {s: ls for s, ls in meaning.items() if len(ls) > 1} == {}


@pytest.mark.parametrize(
    ("command", "option"),
    [
        ("train", "--learner"),
        ("router train", "--algorithm"),
        ("router train", "--weighting"),
        ("router train", "--features"),
        ("router train-gating", "--features"),
        ("keys create", "--role"),
        ("keys create", "--scope"),
        ("policies register", "--kind"),
        ("embed", "--backend"),
        ("ope", "--backend"),
        ("import", "--format"),
        ("export", "--format"),
        ("export", "--view"),
        ("serve", "--log-level"),
        ("runs list", "--status"),
    ],
)
def test_enum_options_are_choices(command: str, option: str) -> None:
    result = runner.invoke(app, [*command.split(), option, "not-a-choice"])  # converted before the rest
    assert result.exit_code == 2, result.output
    assert "'not-a-choice' is not one of" in result.output and "\n│" not in result.output  # plain, no panel


def test_the_choice_lists_are_the_maps_keys() -> None:
    from rewardloop.cli.router import RouterName
    from rewardloop.cli.serve import Role, Scope
    from rewardloop.cli.train import LearnerName
    from rewardloop.learners import GENERATOR_LEARNERS, LEARNERS, SET_LEARNERS
    from rewardloop.learners.bandits import ROUTERS
    from rewardloop.store.apikeys import ROLES, SCOPES

    assert set(typing.get_args(LearnerName)) == set(LEARNERS) | set(GENERATOR_LEARNERS) | set(SET_LEARNERS)
    assert list(typing.get_args(RouterName)) == list(ROUTERS)
    assert list(typing.get_args(Role)) == list(ROLES)
    assert [s.value for s in Scope] == list(SCOPES)


def test_no_hard_wrapping_when_stdout_is_not_a_tty(proj: dict[str, str]) -> None:
    long_learner = "a-learner-with-a-very-long-name-" * 5  # 160 characters
    store = Store.open(proj["url"])
    finish_run(store, start_run(store, TrainingRun(policy="intent", learner=long_learner)), {})
    store.close()
    result = runner.invoke(app, ["runs", "list"])
    assert result.exit_code == 0
    assert any(long_learner in line for line in result.stdout.splitlines()), result.stdout


# ------------------------------------------------------------------------------ train --from-labels


def _labels_project(tmp_path: Path, labels: list[str] | None = None, learner: str = "supervised") -> Path:
    policy: dict[str, typing.Any] = {"name": "intent", "kind": "classifier"}
    if labels:
        policy["labels"] = labels
    cfg = {
        "store": {"url": f"sqlite:///{tmp_path / 'rl.db'}"},
        "policies": [policy],
        "training": {"output_dir": str(tmp_path / "artifacts"), "learner": learner, "min_feedback": 1},
    }
    path = tmp_path / "rewardloop.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        (
            "l.jsonl",
            '{"text": "hi", "label": "a"}\n{"label": "b"}\n',
            "l.jsonl row 2: text: must be a non-empty",
        ),
        (
            "l.jsonl",
            '{"text": "hi", "label": "a"}\n{"text": "x", "label": "a", "weight": -1}\n',
            "row 2: weight: must be a positive number, got -1",
        ),
        ("l.csv", "text,label\nhi,a\nyo,\n", "l.csv row 2: label: must be a non-empty string"),
        (
            "l.jsonl",
            '{"text": "hi", "label": "zzz"}\n',
            "row 1: label: 'zzz' is not one of the policy's labels",
        ),
        ("l.jsonl", "[1, 2]\n", "line 1: expected a JSON object"),
        ("l.parquet", "", "give a .jsonl or .csv file"),
    ],
)
def test_from_labels_names_the_bad_row_counted_from_1(
    tmp_path: Path, name: str, content: str, message: str
) -> None:
    config = _labels_project(tmp_path, labels=["a", "b"])
    (tmp_path / name).write_text(content)
    result = runner.invoke(app, ["train", "-c", str(config), "--from-labels", str(tmp_path / name)])
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split()), result.output


def test_from_labels_refuses_an_rl_learner(tmp_path: Path) -> None:
    config = _labels_project(tmp_path, labels=["a", "b"], learner="crm")
    (tmp_path / "l.jsonl").write_text('{"text": "hi", "label": "a"}\n')
    result = runner.invoke(app, ["train", "-c", str(config), "--from-labels", str(tmp_path / "l.jsonl")])
    assert result.exit_code == 2
    assert "--from-labels trains a classifier with a supervised learner" in " ".join(result.output.split())


def test_from_labels_trains_a_first_model_and_records_the_run(tmp_path: Path) -> None:
    """No labels configured: they come from the file; the model learns the two intents."""
    import torch

    torch.set_num_threads(1)
    light = ["turn on the light", "lights on please", "switch the lamp on", "light up the room", "lamp on"]
    time_ = ["what time is it", "tell me the time", "what is the time now", "current time please", "the time"]
    rows = [{"text": t, "label": "light"} for t in light] + [{"text": t, "label": "time"} for t in time_]
    (tmp_path / "labels.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = _labels_project(tmp_path)
    dry = runner.invoke(
        app, ["train", "-c", str(config), "--from-labels", str(tmp_path / "labels.jsonl"), "--dry-run"]
    )
    assert dry.exit_code == 0 and "examples: 10" in dry.output and "nothing trained" in dry.output, dry.output
    result = runner.invoke(app, ["train", "-c", str(config), "--from-labels", str(tmp_path / "labels.jsonl")])
    assert result.exit_code == 0, result.output
    runs = json.loads(runner.invoke(app, ["runs", "list", "-c", str(config), "--json"]).stdout)["items"]
    assert len(runs) == 1 and runs[0]["status"] == "succeeded" and runs[0]["n_samples"] == 10
    assert runs[0]["config"]["training"]["from_labels"] == str(tmp_path / "labels.jsonl")
    assert runs[0]["metrics"]["train_accuracy"] >= 0.9
    from rewardloop.policies.classifier import ClassifierPolicy

    policy = ClassifierPolicy.load(Path(runs[0]["artifact_path"]))
    assert sorted(policy.labels) == ["light", "time"]
    assert list(policy.predict(["please switch on the lights", "what's the time"])) == ["light", "time"]


def test_an_error_message_is_printed_as_text_not_markup(capsys):
    from rewardloop.cli.common import fail

    exit_ = fail("compute.backend ray needs Ray: pip install 'rewardloop[ray]' ([bold]x[/bold])")
    assert exit_.exit_code == 2
    assert "pip install 'rewardloop[ray]' ([bold]x[/bold])" in capsys.readouterr().err
