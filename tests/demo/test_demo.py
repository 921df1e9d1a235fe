"""A shortened demo, end to end on real data: the loop closes and the bad challenger is stopped."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from rewardloop.cli.main import app
from rewardloop.store import Store, read_decisions, read_runs
from rewardloop.store.review import review_counts

runner = CliRunner()


def run_demo(out) -> tuple[str, dict]:
    result = runner.invoke(app, ["demo", "--small", "--rounds", "3", "--traffic", "150", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return result.output, json.loads(result.output.strip().splitlines()[-1])


def test_shortened_demo_runs_the_whole_loop_and_reruns_identically(tmp_path):
    torch.set_num_threads(1)
    out = tmp_path / "demo"
    output, summary = run_demo(out)
    _, again = run_demo(tmp_path / "again")
    assert {k: v for k, v in again.items() if k != "seconds"} == {
        k: v for k, v in summary.items() if k != "seconds"
    }
    assert summary["rounds"] == 3
    assert summary["bad_challenger_promoted"] is False
    assert 0.0 < summary["seed_golden_acc"] <= 1.0
    # the ceiling the loop is measured against: supervision with every true label of the same texts
    assert summary["golden_acc_full_labels"] > summary["seed_golden_acc"]
    room = summary["golden_acc_full_labels"] - summary["seed_golden_acc"]
    gain = (summary["final_golden_acc"] - summary["seed_golden_acc"]) / room
    assert summary["gain_captured"] == pytest.approx(gain, abs=1e-3)
    assert 0 <= summary["rounds_without_promotion"] <= 3
    assert "stopped at the gate" in output
    assert (out / "report.html").read_text().count("<img") == 3

    store = Store.open(f"sqlite:///{out / 'rewardloop.db'}", migrate=False)
    served = read_decisions(store, policy="intent", include_feedback=True)
    assert len(served) == 3 * 150
    assert all(d.pscore > 0 and d.variant_share in (None, 0.5, 1.0) for d in served)
    assert sum(len(f) for f in served.feedback.values()) > 100
    assert review_counts(store, "default")["resolved"] > 0
    assert len(read_decisions(store, policy="agent_router")) == 3 * 150
    runs = read_runs(store, policy="intent")
    assert any("shuffled" in r.learner for r in runs) and all(r.status == "succeeded" for r in runs)
