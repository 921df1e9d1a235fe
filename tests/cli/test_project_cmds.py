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
    assert "row 4: action: 'dim' is not among the candidate actions" in result.output  # from 1
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


# ----------------------------------------------------------------- issue 13: imports that can be trusted


def feedback_file(path, n: int, bad_row: int | None = None, **bad) -> None:
    """``n`` implicit-feedback rows without ids on decisions d0..d9; row ``bad_row`` changed by ``bad``."""
    rows = [{"decision_id": f"d{i % 10}", "kind": "implicit", "value": i % 2} for i in range(n)]
    if bad_row is not None:
        rows[bad_row] = {**rows[bad_row], **bad}
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.fixture
def on_store(store, tmp_path, monkeypatch):
    """A project whose store is the ``store`` fixture's (SQLite and PostgreSQL), with decisions d0..d9."""
    monkeypatch.chdir(tmp_path)
    url = store.engine.url.render_as_string(hide_password=False)
    monkeypatch.setenv("REWARDLOOP_STORE__URL", url)
    (tmp_path / "d.jsonl").write_text("\n".join(decision_line(i) for i in range(10)) + "\n")
    assert runner.invoke(app, ["import", "decisions", "d.jsonl"]).exit_code == 0
    return store


def feedback_count(store) -> int:
    from sqlalchemy import func, select

    from rewardloop.store.tables import FeedbackRow

    with store.engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(FeedbackRow)))


@pytest.fixture
def small_chunks(monkeypatch):
    """Imports step 500 rows at a time (as 5,000 do in the 12k-row files of the issue)."""
    import rewardloop.store.imports as imports

    monkeypatch.setattr(imports, "IMPORT_CHUNK", 500)


def test_feedback_import_is_all_or_nothing_and_idempotent(on_store, tmp_path, small_chunks):
    # Was: a 12k file whose row 11,000 names an unknown decision stored 10,000 rows (two committed
    # chunks), and re-running after fixing it held 22,002. Here: 1,200 rows, chunks of 500.
    feedback_file(tmp_path / "f.jsonl", 1_200, 1_100, decision_id="nope")
    bad = runner.invoke(app, ["import", "feedback", "f.jsonl"])
    assert bad.exit_code == 2
    assert "row 1101: decision_id: no decision 'nope' in the store" in bad.output
    assert "nothing was stored" in bad.output
    assert feedback_count(on_store) == 0
    feedback_file(tmp_path / "f.jsonl", 1_200)
    ok = runner.invoke(app, ["import", "feedback", "f.jsonl"])
    assert "1200 stored, 0 duplicates skipped" in ok.output, ok.output
    again = runner.invoke(app, ["import", "feedback", "f.jsonl"])
    assert "0 stored, 1200 duplicates skipped" in again.output, again.output
    assert feedback_count(on_store) == 1_200


def test_text_as_an_object_deep_in_the_file_stores_nothing_and_names_the_row(
    on_store, tmp_path, small_chunks
):
    # Was: 10,003 rows stored, then a sqlite3.ProgrammingError with no row number.
    rows = [json.loads(decision_line(100 + i)) for i in range(1_101)]
    rows[1_100]["text"] = {"an": "object"}
    (tmp_path / "big.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = runner.invoke(app, ["import", "decisions", "big.jsonl"])
    assert result.exit_code == 2
    assert "row 1101: text: must be a string, got dict" in result.output
    from rewardloop.store import store_stats

    assert store_stats(on_store).decisions == 10


def test_import_refuses_a_correction_label_the_policy_does_not_have(on_store, tmp_path):
    (tmp_path / "c.jsonl").write_text(json.dumps({"decision_id": "d1", "kind": "correction", "label": "onn"}))
    result = runner.invoke(app, ["import", "feedback", "c.jsonl"])
    assert result.exit_code == 2
    assert "label: 'onn' is not one of the policy's labels (on, off)" in result.output
    assert feedback_count(on_store) == 0


def test_import_stamps_receipt_time_and_keeps_the_client_time(on_store, tmp_path):
    row = {"decision_id": "d1", "kind": "implicit", "value": 1, "created_at": "9999-01-01T00:00:00+00:00"}
    (tmp_path / "t.jsonl").write_text(json.dumps(row))
    assert runner.invoke(app, ["import", "feedback", "t.jsonl"]).exit_code == 0
    from rewardloop.store import read_feedback

    (f,) = read_feedback(on_store)
    assert f.client_time is not None and f.client_time.year == 9999
    assert f.created_at.year < 9999


KILLER = """
import os, sys
import rewardloop.store.imports as imports
imports.IMPORT_CHUNK = 500
real = imports.insert_feedback
calls = []
def dying(conn, rows):
    calls.append(len(rows))
    if len(calls) == 2:  # the first chunk is written (in the transaction); die in the second
        os._exit(9)
    return real(conn, rows)
imports.insert_feedback = dying
from rewardloop.cli.main import app
sys.argv = ["rewardloop", "import", "feedback", "f.jsonl"]
app()
"""


def test_an_import_killed_midway_leaves_nothing_and_a_rerun_stores_each_row_once(on_store, tmp_path):
    # Was: each committed chunk stayed, and a rerun stored fresh uuids beside them (60,000 duplicates).
    import os
    import subprocess
    import sys
    from pathlib import Path

    feedback_file(tmp_path / "f.jsonl", 1_400)
    src = Path(__file__).resolve().parents[2] / "src"
    env = {**os.environ, "PYTHONPATH": str(src)}
    killed = subprocess.run([sys.executable, "-c", KILLER], cwd=tmp_path, env=env, capture_output=True)
    assert killed.returncode == 9, killed.stderr.decode()
    assert feedback_count(on_store) == 0
    ok = runner.invoke(app, ["import", "feedback", "f.jsonl"])
    assert "1400 stored, 0 duplicates skipped" in ok.output, ok.output
    assert feedback_count(on_store) == 1_400


def test_init_template_names_the_store_and_service_bounds(project_dir):
    text = (project_dir / "rewardloop.yaml").read_text()
    assert "max_actions: 1000  # most candidate actions one decision may list" in text
    assert "max_in_flight: 256" in text and "body_timeout_s: 10.0" in text
