"""``rewardloop policies`` and ``rewardloop experiment`` end to end on a SQLite project."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from rewardloop.cli.main import app
from rewardloop.config.template import render_template

runner = CliRunner()


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "rewardloop.yaml").write_text(render_template(f"sqlite:///{tmp_path / 'rl.db'}"))
    for v in ("1", "2", "3"):
        (tmp_path / f"m{v}").mkdir()
        (tmp_path / f"m{v}" / "state.json").write_text(json.dumps({"w": v}))
    (tmp_path / "pass.json").write_text(
        '{"passed": true, "checks": [{"name": "min_accuracy", "passed": true}]}'
    )
    (tmp_path / "fail.json").write_text('{"passed": false, "checks": [{"name": "max_ece", "passed": false}]}')
    return tmp_path


class Ran:
    """A finished command: its exit code, and its output with rich's line wrapping undone."""

    def __init__(self, result):
        self.exit_code = result.exit_code
        self.raw = result.output
        self.output = " ".join(result.output.split())


def run(*args: str) -> Ran:
    return Ran(runner.invoke(app, list(args), catch_exceptions=False))


def test_policies_promote_rollback_history(project):
    assert (
        run("policies", "register", "intent", "m1", "--kind", "classifier", "--version", "1.0.0").exit_code
        == 0
    )
    assert run("policies", "register", "intent", "m2", "--kind", "classifier").exit_code == 0  # → 1.0.1
    assert run("policies", "activate", "intent@1.0.0", "-m", "seed").exit_code == 0

    refused = run("policies", "promote", "intent@1.0.1")
    assert refused.exit_code == 2 and "give --gate-report FILE" in refused.output
    failed = run("policies", "promote", "intent@1.0.1", "--gate-report", "fail.json")
    assert failed.exit_code == 2 and "did not pass (failed: max_ece)" in failed.output
    missing = run("policies", "promote", "intent@1.0.1", "--gate-report", "nope.json")
    assert missing.exit_code == 3 and "--gate-report: nope.json does not exist" in missing.output

    ok = run(
        "policies", "promote", "intent@1.0.1", "--gate-report", "pass.json", "--actor", "ann", "-m", "gate"
    )
    assert ok.exit_code == 0 and "1.0.0 → 1.0.1" in ok.output
    back = run("policies", "rollback", "intent", "--actor", "oncall", "-m", "errors up")
    assert back.exit_code == 0 and "1.0.1 → 1.0.0 (rolled back)" in back.output
    assert run("policies", "promote", "intent@1.0.1", "--force", "-m", "hotfix").exit_code == 0

    lines = [json.loads(x) for x in run("policies", "history", "intent", "--json").raw.splitlines()]
    assert [(x["action"], x["from"], x["to"], x["forced"]) for x in lines] == [
        ("activate", None, "1.0.0", False),
        ("promote", "1.0.0", "1.0.1", False),
        ("rollback", "1.0.1", "1.0.0", False),
        ("promote", "1.0.0", "1.0.1", True),
    ]
    assert lines[1]["gate_report"]["passed"] is True and lines[1]["actor"].startswith("ann (OS user ")

    listed = run("policies", "list")
    assert listed.exit_code == 0 and "2 version(s) of 1 policy(ies)" in listed.output
    (project / "registry" / "intent" / "1.0.0" / "state.json").write_text("tampered")
    shown = run("policies", "show", "intent@1.0.0")
    assert "does not match its checksum" in shown.output and "changed: state.json" in shown.output
    bad = run("policies", "rollback", "intent")
    assert bad.exit_code == 4 and "does not match its checksum" in bad.output  # an integrity error


def test_experiment_commands(project):
    run("policies", "register", "intent", "m1", "--kind", "classifier", "--version", "1.0.0")
    run("policies", "register", "intent", "m2", "--kind", "classifier", "--version", "1.1.0")
    run("policies", "activate", "intent@1.0.0")
    started = run("experiment", "start", "c1", "--policy", "intent", "--challenger", "1.1.0", "--salt", "x")
    assert (
        started.exit_code == 0
        and "challenger share 5%" in started.output
        and "5% → 25% → 50% → 100%" in started.output
    )
    again = run("experiment", "start", "c2", "--policy", "intent", "--challenger", "1.1.0")
    assert again.exit_code == 2 and "already has a running experiment (c1)" in again.output
    status = run("experiment", "status", "c1")
    assert status.exit_code == 0 and "waiting for samples" in status.output
    held = run("experiment", "advance", "c1")
    assert held.exit_code == 0 and held.output.startswith("held")
    assert "1 experiment(s)" in run("experiment", "status").output
    stopped = run("experiment", "stop", "c1", "-m", "done")
    assert stopped.exit_code == 0 and "serves its champion 1.0.0" in stopped.output
    bad = run("experiment", "start", "c3", "--policy", "intent", "--challenger", "1.1.0", "--ramp", "0.5,x")
    assert bad.exit_code == 2 and "--ramp: expected comma-separated shares" in bad.output
    unknown = run("experiment", "advance", "nope")
    assert unknown.exit_code == 3 and "no experiment named 'nope'" in unknown.output


def test_promote_refuses_a_gate_report_for_another_version(project):
    """Issue 13, item 13: a report for 0.1.2 does not promote 0.1.1."""
    for v, m in (("0.1.0", "m1"), ("0.1.1", "m2"), ("0.1.2", "m3")):
        run("policies", "register", "news", m, "--kind", "classifier", "--version", v)
    run("policies", "activate", "news@0.1.0")
    report = {"passed": True, "candidate": "news@0.1.2", "champion": "news@0.1.0", "checks": []}
    (project / "gate_012.json").write_text(json.dumps(report))
    wrong = run("policies", "promote", "news@0.1.1", "--gate-report", "gate_012.json")
    assert wrong.exit_code == 2 and "the report is for news@0.1.2, not news@0.1.1" in wrong.output
    forced = run("policies", "promote", "news@0.1.1", "--gate-report", "gate_012.json", "--force")
    assert forced.exit_code == 2
    ok = run("policies", "promote", "news@0.1.2", "--gate-report", "gate_012.json")
    assert ok.exit_code == 0
    lines = [json.loads(x) for x in run("policies", "history", "news", "--json").raw.splitlines()]
    assert lines[-1]["gate_report"]["candidate"] == "news@0.1.2" and lines[-1]["to"] == "0.1.2"


def test_actor_is_recorded_with_the_os_user(project):
    """Issue 13, item 4: --actor is free text; the OS user is recorded beside it."""
    import getpass

    run("policies", "register", "intent", "m1", "--kind", "classifier", "--version", "1.0.0")
    run("policies", "activate", "intent@1.0.0", "--actor", "the-ceo")
    (line,) = [json.loads(x) for x in run("policies", "history", "intent", "--json").raw.splitlines()]
    assert line["actor"] == f"the-ceo (OS user {getpass.getuser()})"


def test_rollback_stops_the_running_experiment_and_stop_says_what_is_served(project):
    """Issue 13, item 12: a rollback while an experiment runs stops it (saying so, in its log and the
    alias history); `experiment stop` reports the champion actually served."""
    from rewardloop.config import load_config
    from rewardloop.loop.experiments import Experiments
    from rewardloop.registry import Registry
    from rewardloop.store import Store

    for v, m in (("1.0.0", "m1"), ("1.0.1", "m2"), ("1.0.2", "m3")):
        run("policies", "register", "news", m, "--kind", "classifier", "--version", v)
    run("policies", "activate", "news@1.0.0")
    run("policies", "promote", "news@1.0.1", "--force")
    started = run("experiment", "start", "e1", "--policy", "news", "--challenger", "1.0.2")
    assert started.exit_code == 0
    back = run("policies", "rollback", "news", "-m", "errors up")
    assert back.exit_code == 0, back.output
    assert "stopped experiment e1" in back.output and "1.0.1 → 1.0.0 (rolled back)" in back.output
    cfg = load_config(project / "rewardloop.yaml")
    store = Store.open(cfg.store.url)
    reg = Registry(store, cfg.experiments.registry_root)
    exp = Experiments(store, reg).get("e1")
    assert exp.status == "stopped"
    assert "rolled back 1.0.1 → 1.0.0: errors up" in exp.verdict["log"][-1]["reason"]
    assert reg.aliases("news") == {"champion": "1.0.0"}  # the challenger alias went with it
    last = reg.history("news")[-1]
    assert (last.action, last.to_version) == (
        "rollback",
        "1.0.0",
    ) and "stopped running experiment" in last.reason
    store.close()
    # An experiment stopped by hand after a rollback names the champion actually served.
    run("policies", "promote", "news@1.0.1", "--force")
    run("experiment", "start", "e2", "--policy", "news", "--challenger", "1.0.2")
    store = Store.open(cfg.store.url)
    Registry(store, cfg.experiments.registry_root).rollback("news")  # a rollback that stops nothing
    store.close()
    stopped = run("experiment", "stop", "e2")
    assert "serves its champion 1.0.0 (the experiment's champion was 1.0.1)" in stopped.output
