"""init, import/log, stats and export as a user runs them."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from rewardloop.cli.main import app

runner = CliRunner()


def decision_line(i: int, **changes) -> str:
    row = {
        "id": f"d{i}",
        "policy": "intent",
        "policy_version": "1",
        "kind": "classifier",
        "actions": ["on", "off"],
        "action": "on",
        "action_dist": [0.8, 0.2],
        "pscore": 0.8,
        "text": f"lights on {i}",
    }
    return json.dumps({**row, **changes})


@pytest.fixture
def project_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("REWARDLOOP_STORE__URL", raising=False)
    result = runner.invoke(app, ["init"])
    assert result.exit_code == 0, result.output
    assert "database ready" in result.output
    return tmp_path


def test_init_writes_a_valid_commented_file(project_dir):
    text = (project_dir / "rewardloop.yaml").read_text()
    assert "store:" in text and "# SQLAlchemy URL" in text
    assert (project_dir / "rewardloop.db").exists()
    again = runner.invoke(app, ["init"])
    assert "exists; keeping it" in again.output


def test_invalid_yaml_names_the_key(project_dir):
    (project_dir / "rewardloop.yaml").write_text("review:\n  confidence_below: 2\nservice:\n  prot: 1\n")
    result = runner.invoke(app, ["stats"])
    assert result.exit_code == 2
    assert "review.confidence_below" in result.output
    assert "service.prot" in result.output


def test_import_refuses_a_file_with_a_bad_row_and_stores_nothing(project_dir):
    lines = [decision_line(i) for i in range(5)]
    lines[3] = decision_line(3, action="dim")
    (project_dir / "d.jsonl").write_text("\n".join(lines) + "\n")
    result = runner.invoke(app, ["import", "decisions", "d.jsonl"])
    assert result.exit_code == 2
    assert "row 3: action: 'dim' is not among the candidate actions" in result.output
    assert "nothing was stored" in result.output
    stats = runner.invoke(app, ["stats"])
    assert "0 decisions" in stats.output

    ok = runner.invoke(app, ["import", "decisions", "d.jsonl", "--skip-invalid"])
    assert ok.exit_code == 0
    assert "4 stored, 0 duplicates skipped, 1 invalid (skipped)" in ok.output
    again = runner.invoke(app, ["log", "decisions", "d.jsonl", "--skip-invalid"])
    assert "0 stored, 4 duplicates skipped" in again.output


def test_feedback_import_stats_and_exports(project_dir):
    (project_dir / "d.csv").write_text(
        "id,policy,policy_version,kind,actions,action,action_dist,pscore,text\n"
        + "".join(
            f'd{i},intent,1,classifier,"[""on"",""off""]",on,"[0.8, 0.2]",0.8,lights {i}\n' for i in range(4)
        )
    )
    assert runner.invoke(app, ["import", "decisions", "d.csv"]).exit_code == 0
    fb = [
        {"decision_id": "d0", "kind": "correction", "label": "off", "rater_id": "ann"},
        {"decision_id": "d1", "kind": "rating", "value": 5, "scale": [1, 5]},
    ]
    (project_dir / "f.jsonl").write_text("\n".join(json.dumps(f) for f in fb))
    result = runner.invoke(app, ["import", "feedback", "f.jsonl"])
    assert "2 stored" in result.output
    stats = runner.invoke(app, ["stats"])
    assert "4 decisions, feedback coverage 50.0%" in stats.output
    assert "correction 1, rating 1" in stats.output

    out = runner.invoke(app, ["export", "all.parquet"])
    assert "wrote 4 decision rows" in out.output
    out = runner.invoke(app, ["export", "chat.jsonl", "--view", "openai"])
    assert "wrote 2 chat examples" in out.output
    chats = [json.loads(x) for x in (project_dir / "chat.jsonl").read_text().splitlines()]
    assert [c["messages"][2]["content"] for c in chats] == ["off", "on"]
    out = runner.invoke(app, ["export", "pairs.jsonl", "--view", "pairs"])
    assert "wrote 1 preference pairs" in out.output
    bad = runner.invoke(app, ["export", "pairs.csv", "--view", "pairs"])
    assert bad.exit_code == 2 and "writes JSON lines" in bad.output


def test_missing_file_and_unknown_format(project_dir):
    assert "no such file" in runner.invoke(app, ["import", "decisions", "nope.jsonl"]).output
    (project_dir / "x.txt").write_text("")
    assert "cannot tell the format" in runner.invoke(app, ["import", "decisions", "x.txt"]).output
