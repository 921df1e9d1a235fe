"""`rewardloop rewards compile`, `rewardloop rm train` and `rewardloop rm score`."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from typer.testing import CliRunner

from rewardloop.cli.main import app
from rewardloop.store import Store, read_rewards, read_runs, write_decisions, write_feedback
from rewardloop.types import Decision, Feedback

runner = CliRunner()

POS = ["great", "lovely", "wonderful", "excellent", "happy", "superb", "delightful", "brilliant"]
NEG = ["awful", "terrible", "horrible", "sad", "dreadful", "poor", "miserable", "disgusting"]


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "rewardloop.yaml").write_text(
        "store:\n  url: sqlite:///rl.db\nrewards:\n  - name: thumbs\n    function: accuracy\n"
    )
    return tmp_path


def test_compile_command_writes_rewards(project):
    store = Store.open(f"sqlite:///{project / 'rl.db'}")
    d = Decision(
        id="d1",
        policy="p",
        policy_version="1",
        kind="classifier",
        actions=("a", "b"),
        action="a",
        action_dist=(0.5, 0.5),
        pscore=0.5,
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    write_decisions(store, [d])
    write_feedback(store, [Feedback(decision_id="d1", kind="rating", value=1, scale=(-1, 1))])
    result = runner.invoke(app, ["rewards", "compile", "--spec", "thumbs"])
    assert result.exit_code == 0, result.output
    assert "1 rewards written" in result.output
    assert [r.value for r in read_rewards(store, "thumbs", 1)] == [1.0]


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["rewards", "compile", "--spec", "nope"], 3, "no reward spec named 'nope' (known: thumbs)"),
        (["rewards", "compile", "--until", "soon"], 2, "--until: not an ISO time"),
        (
            ["rewards", "compile", "--since", "2026-03-02", "--until", "2026-03-01T12:00Z"],
            2,
            "--until: 2026-03-01 12:00:00+00:00 is before since (2026-03-02 00:00:00+00:00)",
        ),
        (["rm", "score", "missing-dir", "--prompt", "q", "a"], 3, "not a reward-model folder"),
        (["rm", "score", ".", "--prompt", "q"], 2, "no candidates"),
        (["rm", "train", "-o", "m", "--source", "nofile.jsonl"], 3, "nofile.jsonl: no such file"),
        (["rm", "train", "-o", "m", "--source", "store"], 2, "--source store needs --spec"),
    ],
)
def test_clean_errors(project, args, code, message):
    result = runner.invoke(app, args)
    assert result.exit_code == code
    assert message in " ".join(result.output.split())
    assert "Traceback" not in result.output


def _write_ratings(path, n):
    rows = []
    for i in range(n):
        good = i % 2 == 0
        words = (POS if good else NEG)[i % 8], (POS if good else NEG)[(i // 2) % 8]
        rows.append(
            {
                "prompt": "How was your day?",
                "answer": f"a {words[0]} and {words[1]} day",
                "rating": 3 if good else -3,
            }
        )
    path.write_text("\n".join(json.dumps(r) for r in rows))


def test_train_refuses_too_few_samples_and_logs_the_failed_run(project):
    _write_ratings(project / "few.jsonl", 12)
    result = runner.invoke(app, ["rm", "train", "-o", "m", "--source", "few.jsonl"])
    assert result.exit_code == 2
    assert "needs at least 50 rated samples (min_samples); it has 12" in " ".join(result.output.split())
    runs = read_runs(Store.open(f"sqlite:///{project / 'rl.db'}"))
    assert [(r.learner, r.status, r.n_samples) for r in runs] == [("embedding_lr", "failed", 12)]


def test_train_then_score(project):
    pytest.importorskip("torch").set_num_threads(1)
    _write_ratings(project / "ratings.jsonl", 64)
    result = runner.invoke(app, ["rm", "train", "-o", "model", "--source", "ratings.jsonl"])
    assert result.exit_code == 0, result.output
    assert "saved lr reward model" in result.output and "roc_auc" in result.output
    runs = read_runs(Store.open(f"sqlite:///{project / 'rl.db'}"))
    assert runs[0].status == "succeeded" and runs[0].artifact_path.endswith("model")
    assert runs[0].metrics["n_train"] == 51.0
    scored = runner.invoke(
        app,
        [
            "rm",
            "score",
            "model",
            "--prompt",
            "How was your day?",
            "a dreadful sad day",
            "a wonderful happy day",
            "--top-k",
            "1",
        ],
    )
    assert scored.exit_code == 0, scored.output
    assert "wonderful" in scored.output and "dreadful" not in scored.output


@pytest.mark.slow
def test_train_pairwise_from_jsonl(project):
    pytest.importorskip("torch").set_num_threads(1)
    rows = [
        {"prompt": "How was your day?", "chosen": f"a {p} day", "rejected": f"a {n} day", "weight": 0.9}
        for p, n in zip(POS, NEG, strict=True)
    ]
    (project / "pairs.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    result = runner.invoke(
        app, ["rm", "train", "-o", "bt", "--model", "pairwise", "--source", "pairs.jsonl", "--steps", "1"]
    )
    assert result.exit_code == 0, result.output
    assert "saved pairwise reward model" in result.output and "pairwise_accuracy" in result.output
    runs = read_runs(Store.open(f"sqlite:///{project / 'rl.db'}"))
    assert (runs[0].learner, runs[0].status, runs[0].n_samples) == ("pairwise_bt", "succeeded", 6)
