"""``rewardloop feedback void`` and ``voids`` (issue 13, item 11)."""

from __future__ import annotations

import getpass
import json

from typer.testing import CliRunner

from rewardloop.cli.main import app

runner = CliRunner()


def test_void_records_who_when_why_and_refuses_a_second_void(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("REWARDLOOP_STORE__URL", raising=False)
    assert runner.invoke(app, ["init"]).exit_code == 0
    decision = {
        "id": "d1",
        "policy": "news",
        "policy_version": "1",
        "kind": "classifier",
        "actions": ["sport", "politics"],
        "action": "sport",
        "action_dist": [0.8, 0.2],
        "pscore": 0.8,
    }
    (tmp_path / "d.jsonl").write_text(json.dumps(decision))
    (tmp_path / "f.jsonl").write_text(
        json.dumps({"id": "f1", "decision_id": "d1", "kind": "correction", "label": "sport"})
    )
    assert runner.invoke(app, ["import", "decisions", "d.jsonl"]).exit_code == 0
    assert runner.invoke(app, ["import", "feedback", "f.jsonl"]).exit_code == 0
    missing = runner.invoke(app, ["feedback", "void", "f1"])
    assert missing.exit_code == 2 and "--reason" in missing.output
    done = runner.invoke(
        app, ["feedback", "void", "f1", "--reason", "rater was testing", "--actor", "lead-7"]
    )
    assert done.exit_code == 0, done.output
    assert f"by lead-7 (OS user {getpass.getuser()}): rater was testing" in done.output
    again = runner.invoke(app, ["feedback", "void", "f1", "--reason", "again"])
    assert again.exit_code == 2 and "voided already" in again.output
    listed = runner.invoke(app, ["feedback", "voids"])
    assert "f1" in listed.output and "rater" in listed.output
    stats = runner.invoke(app, ["stats"])
    assert stats.exit_code == 0
