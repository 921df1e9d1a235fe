"""``rewardloop contributors board|impact``: the measurement recorded as runs and read back, as JSON
and as text; what cannot be measured exits 2 naming the key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from tests.loop.test_contributions import (
    _seed_labels,
    encoder,  # noqa: F401  (a fixture)
    project_dict,
)
from typer.testing import CliRunner

from rewardloop.cli.main import app
from rewardloop.store import Store

runner = CliRunner()


def _config(tmp_path: Path, store: Store, golden: bool = True) -> str:
    cfg = {"store": {"url": store.engine.url.render_as_string(hide_password=False)}}
    cfg |= project_dict(tmp_path, golden)
    if golden:
        cfg["evaluation"] = {"golden": "golden.jsonl"}  # relative to the project file
    out = tmp_path / "rewardloop.yaml"
    out.write_text(yaml.safe_dump(cfg))
    return str(out)


@pytest.mark.usefixtures("encoder")
def test_impact_then_board(store: Store, tmp_path: Path) -> None:
    _seed_labels(store)
    path = _config(tmp_path, store)
    result = runner.invoke(app, ["contributors", "board", "--project", "acme", "--json", "-c", path])
    assert result.exit_code == 0, result.output
    before = json.loads(result.output)
    assert [(r["rank"], r["totals"]["rater"], r["totals"]["feedback"]) for r in before["items"]] == [
        (1, "ann", 12),
        (2, "bob", 6),
        (3, "cat", 6),
    ]
    assert before["items"][1]["changed"]["n"] == 6 and before["impact"] == []
    result = runner.invoke(app, ["contributors", "impact", "--top-k", "1", "--json", "-c", path])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    (ann,) = report["contributors"]
    assert (ann["contributor"], ann["removed"], ann["examples"]) == ("ann", 12, 12)
    assert report["accuracy"]["n"] == 8 and ann["delta"]["n"] == 8
    after = json.loads(
        runner.invoke(app, ["contributors", "board", "--project", "acme", "--json", "-c", path]).output
    )
    assert [r["measurement"] for r in after["impact"]] == [report["measurement"]]
    text = runner.invoke(
        app, ["contributors", "board", "--project", "acme", "-c", path], env={"COLUMNS": "200"}
    )
    assert text.exit_code == 0 and "impact on intent" in text.output and "ann" in text.output
    runs = runner.invoke(app, ["runs", "list", "--json", "-c", path])
    assert len(json.loads(runs.output)["items"]) == 2  # the reference and the run without ann


def test_impact_without_a_golden_set_exits_2_naming_the_key(store: Store, tmp_path: Path) -> None:
    result = runner.invoke(app, ["contributors", "impact", "-c", _config(tmp_path, store, golden=False)])
    assert result.exit_code == 2
    assert "evaluation.golden" in result.output
