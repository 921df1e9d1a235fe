"""`rewardloop learn`: its help, a clean error without a reward spec, and a run that verifies itself."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.loop._online import ARMS, POLICY, champion, decisions, thumbs
from typer.testing import CliRunner

from rewardloop.cli.main import app
from rewardloop.store import Store

runner = CliRunner()


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("REWARDLOOP_STORE__URL", raising=False)
    return tmp_path


def _yaml(root: Path, spec: bool = True) -> Path:
    rewards = (
        "rewards:\n  - name: thumbs\n    function: accuracy\ntraining:\n  reward_spec: thumbs\n"
        if spec
        else ""
    )
    path = root / "rewardloop.yaml"
    path.write_text(
        f"store:\n  url: sqlite:///{root / 'rl.db'}\n{rewards}"
        f"experiments:\n  registry_root: {root / 'registry'}\n"
        f"policies:\n  - name: {POLICY}\n    kind: router\n    labels: {ARMS}\n"
    )
    return path


def test_help_says_what_it_does():
    out = runner.invoke(app, ["learn", "--help"], terminal_width=200).output
    assert "apply each reward from /v1/feedback once" in out
    for option in ("--policy", "--every", "--interval", "--until-idle", "--verify"):
        assert option in out


def test_without_a_reward_spec_it_says_which_to_name(project: Path):
    result = runner.invoke(app, ["learn", "--policy", POLICY, "--config", str(_yaml(project, spec=False))])
    assert result.exit_code == 2
    assert "--reward-spec: name the reward spec" in result.output


def test_a_run_until_idle_applies_every_reward_and_verifies_against_a_replay(project: Path):
    path = _yaml(project)
    store = Store.open(f"sqlite:///{project / 'rl.db'}")
    champion(store, project)
    thumbs(store, decisions(store, 25))
    result = runner.invoke(
        app, ["learn", "-p", POLICY, "-c", str(path), "--until-idle", "--verify", "--every", "10"]
    )
    assert result.exit_code == 0, result.output
    assert "25 rewards applied" in result.output and "in 3 publishes" in result.output
    assert "offline replay of 25 rewarded decisions: largest difference" in result.output
    diff = float(result.output.rsplit("largest difference", 1)[1].split()[0])
    assert diff < 1e-9
