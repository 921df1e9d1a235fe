"""``rewardloop import decisions FILE --estimate-propensities``: logs without propensities (old VW or
home-grown logs) get them from a behaviour policy fitted on the file, marked as estimated."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from rewardloop.cli.main import app
from rewardloop.config import load_config
from rewardloop.evaluation.ope.propensity import ESTIMATED
from rewardloop.store import Store, read_decisions

runner = CliRunner()
ARMS = ["small", "large"]


@pytest.fixture
def project_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("REWARDLOOP_STORE__URL", raising=False)
    assert runner.invoke(app, ["init"]).exit_code == 0
    return tmp_path


def _log(path: Path, n: int = 600, seed: int = 0) -> np.ndarray:
    """A router log without propensities; the logging policy was P(large | x) = sigmoid(2 x0 - 0.5)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 2))
    p_large = 1 / (1 + np.exp(-(2 * X[:, 0] - 0.5)))
    chose = rng.random(n) < p_large
    with path.open("w") as f:
        for i in range(n):
            row = {
                "id": f"r{i}",
                "policy": "router",
                "policy_version": "1",
                "kind": "router",
                "actions": ARMS,
                "action": ARMS[int(chose[i])],
                "features": X[i].tolist(),
            }
            f.write(json.dumps(row) + "\n")
    return np.where(chose, p_large, 1 - p_large)


def _stored(project_dir: Path) -> list:
    store = Store.open(load_config(project_dir / "rewardloop.yaml").store.url)
    try:
        return sorted(read_decisions(store, policy="router"), key=lambda d: int(d.id[1:]))
    finally:
        store.close()


def test_missing_propensities_are_estimated_marked_and_close_to_the_truth(project_dir: Path) -> None:
    true = _log(project_dir / "old.jsonl")
    refused = runner.invoke(app, ["import", "decisions", "old.jsonl"])
    assert refused.exit_code == 2 and "action_dist: is required" in refused.output  # no propensity, no row
    assert "--estimate-propensities" in refused.output
    result = runner.invoke(app, ["import", "decisions", "old.jsonl", "--estimate-propensities"])
    assert result.exit_code == 0, result.output
    assert "estimated the propensities of 600 of 600 decisions" in result.output
    assert "effective sample size" in result.output and "600 stored" in result.output
    stored = _stored(project_dir)
    assert len(stored) == 600
    assert all(d.metadata["propensity"] == ESTIMATED for d in stored)
    got = np.array([d.pscore for d in stored])
    assert np.abs(got - true).mean() < 0.03  # the logistic fit recovers the logging policy
    assert all(
        abs(sum(d.action_dist) - 1) < 1e-9 and d.pscore == d.action_dist[ARMS.index(d.action)] for d in stored
    )
    again = runner.invoke(app, ["import", "decisions", "old.jsonl", "--estimate-propensities"])
    assert again.exit_code == 0 and "0 stored, 600 duplicates skipped" in again.output


def test_rows_with_logged_propensities_are_kept_as_they_are(project_dir: Path) -> None:
    _log(project_dir / "old.jsonl", n=200)
    lines = (project_dir / "old.jsonl").read_text().splitlines()
    first = json.loads(lines[0])
    first.update(action_dist=[0.5, 0.5], pscore=0.5)
    (project_dir / "old.jsonl").write_text("\n".join([json.dumps(first), *lines[1:]]) + "\n")
    result = runner.invoke(app, ["import", "decisions", "old.jsonl", "--estimate-propensities"])
    assert result.exit_code == 0 and "199 of 200 decisions" in result.output
    kept = _stored(project_dir)[0]
    assert kept.pscore == 0.5 and "propensity" not in kept.metadata


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"features": None}, "row 3: features: needed to estimate its propensity"),
        ({"features": [1.0]}, "row 3: features: 1 values, the group's rows have 2"),
        ({"features": ["a", "b"]}, "row 3: features: must be numbers"),
        ({"action": "medium"}, "row 3: action: 'medium' is not among its actions"),
    ],
)
def test_rows_that_cannot_be_estimated_are_named_and_nothing_is_stored(
    project_dir: Path, change: dict, message: str
) -> None:
    _log(project_dir / "old.jsonl", n=20)
    lines = (project_dir / "old.jsonl").read_text().splitlines()
    row = {**json.loads(lines[2]), **change}
    (project_dir / "old.jsonl").write_text("\n".join([*lines[:2], json.dumps(row), *lines[3:]]) + "\n")
    result = runner.invoke(app, ["import", "decisions", "old.jsonl", "--estimate-propensities"])
    assert result.exit_code == 2 and message in result.output.replace("\n", " ")
    assert _stored(project_dir) == []


def test_feedback_imports_refuse_the_flag(project_dir: Path) -> None:
    (project_dir / "fb.jsonl").write_text('{"decision_id": "r0", "kind": "rating", "value": 1}\n')
    result = runner.invoke(app, ["import", "feedback", "fb.jsonl", "--estimate-propensities"])
    assert result.exit_code == 2 and "only for `import decisions`" in result.output
