"""DSJSON (Vowpal Wabbit / Personalizer joined events): import, OPE on the imported log, export, and VW
reads both the file and the export with its own DSJSON parser (``--dsjson``)."""

from __future__ import annotations

import random

import numpy as np
import orjson
import pytest

from rewardloop.evaluation.ope.report import evaluate_off_policy
from rewardloop.store import Store
from rewardloop.store.dsjson import read_dsjson, write_dsjson
from rewardloop.store.insights import recent_decisions
from rewardloop.store.writing import write_decisions, write_feedback
from rewardloop.types import RecordError

vw = pytest.importorskip("vowpalwabbit")  # the `bench` extra


def vw_file(n: int = 120, seed: int = 0) -> list[str]:
    """Events of an epsilon-greedy logger over 3 actions in VW's DSJSON schema (cost −1 = reward 1)."""
    rng = random.Random(seed)
    lines = []
    for i in range(n):
        x = rng.random()
        best = 1 if x < 0.5 else 2
        dist = {a: 0.1 for a in (1, 2, 3)}
        dist[best] = 0.8
        chosen = rng.choices([1, 2, 3], weights=[dist[1], dist[2], dist[3]])[0]
        ranked = [chosen, *(a for a in (1, 2, 3) if a != chosen)]
        event = {
            "_label_cost": -1.0 if chosen == best else 0.0,
            "_label_probability": dist[chosen],
            "_label_Action": chosen,
            "_labelIndex": chosen - 1,
            "Timestamp": f"2024-01-01T00:{i // 60:02d}:{i % 60:02d}.0000000Z",
            "Version": "1",
            "EventId": f"ev{i}",
            "a": ranked,
            "c": {"shared": {"x": x}, "_multi": [{"act": {"id": f"a{a}"}} for a in (1, 2, 3)]},
            "p": [dist[a] for a in ranked],
            "VWState": {"m": "seed/0"},
        }
        lines.append(orjson.dumps(event).decode())
    return lines


def vw_reads(lines: list[str]) -> tuple[int, float]:
    """VW's own DSJSON parser learns every line; (examples, VW's summed loss)."""
    ws = vw.Workspace("--cb_explore_adf --dsjson --quiet")
    for line in lines:
        examples = ws.parse(line)
        ws.learn(examples)
        ws.finish_example(examples)
    out = (int(ws.get_weighted_examples()), float(ws.get_sum_loss()))
    ws.finish()
    return out


def test_dsjson_round_trip_with_ope(store: Store) -> None:
    lines = vw_file()
    assert vw_reads(lines)[0] == 120
    events = read_dsjson(lines, policy="personalizer")
    d0 = events.decisions[0]
    first = orjson.loads(lines[0])
    assert d0.id == "ev0" and d0.actions == ("1", "2", "3") and d0.action == str(first["_label_Action"])
    assert d0.pscore == first["_label_probability"] and sum(d0.action_dist) == pytest.approx(1.0)
    assert write_decisions(store, events.decisions).written == 120
    assert write_feedback(store, events.feedback).written == 120

    batch = recent_decisions(store, "default", policy="personalizer")
    by_id = {d.id: d for d in batch.decisions}
    reward = {fs[0].decision_id: fs[0].value for fs in batch.feedback.values()}
    ids = [f"ev{i}" for i in range(120)]
    action = np.array([by_id[i].action_index for i in ids])
    pscore = np.array([by_id[i].pscore for i in ids])
    r = np.array([reward[i] for i in ids], dtype=float)
    # OPE of "always action 1" on the imported log: IPW by hand is mean(r·1[a=1]/p).
    target = np.tile([1.0, 0.0, 0.0], (120, 1))
    report = evaluate_off_policy(
        reward=r, action=action, pscore=pscore, action_dist=target, n_bootstrap_samples=50
    )
    assert report.value("ipw").value == pytest.approx(float(np.mean(r * (action == 0) / pscore)))

    exported = [line.decode() for line in write_dsjson((by_id[i], reward[i]) for i in ids)]
    assert vw_reads(exported) == vw_reads(lines)  # VW reads the export back, and learns the same
    for before, after in zip(lines, exported, strict=True):
        a, b = orjson.loads(before), orjson.loads(after)
        keys = ("_label_cost", "_label_probability", "_label_Action", "_labelIndex", "EventId", "a", "p", "c")
        assert {k: b[k] for k in keys} == {k: a[k] for k in keys}


@pytest.mark.parametrize(
    ("line", "field"),
    [
        ("not json", "line"),
        ("[1, 2]", "line"),
        ('{"EventId": "e", "p": [1.0], "c": {}}', "a"),
        ('{"EventId": "e", "a": [1, 1], "p": [0.5, 0.5], "c": {}}', "a"),
        ('{"EventId": "e", "a": [1], "p": [1.0], "c": {}, "Timestamp": "yesterday"}', "Timestamp"),
        ('{"EventId": "e", "a": [1, 2], "p": [0.9, 0.1], "c": {}, "_label_probability": 2}', "pscore"),
    ],
)
def test_bad_dsjson_lines_are_refused_naming_field_and_row(line: str, field: str) -> None:
    good = vw_file(1)[0]
    with pytest.raises(RecordError) as err:
        read_dsjson([good, "", line], policy="p")
    assert err.value.field == field and err.value.row == 3


def test_cli_imports_and_exports_dsjson(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from typer.testing import CliRunner

    from rewardloop.cli.main import app

    runner = CliRunner()
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("REWARDLOOP_STORE__URL", raising=False)
    assert runner.invoke(app, ["init"]).exit_code == 0
    lines = vw_file(30)
    (tmp_path / "log.json").write_text("\n".join(lines) + "\n")
    args = ["import", "decisions", "log.json", "--format", "dsjson", "--policy", "pz"]
    done = runner.invoke(app, args)
    assert done.exit_code == 0, done.output
    assert "decisions: 30 stored" in done.output and "rewards: 30 stored" in done.output
    again = runner.invoke(app, args)
    assert "decisions: 0 stored, 30 duplicates skipped" in again.output
    refused = runner.invoke(app, ["import", "feedback", "log.json", "--format", "dsjson"])
    assert refused.exit_code != 0 and "--policy NAME" in " ".join(refused.output.split())
    out = runner.invoke(app, ["export", "out.jsonl", "--view", "dsjson", "--policy", "pz"])
    assert out.exit_code == 0, out.output
    exported = (tmp_path / "out.jsonl").read_text().splitlines()
    assert vw_reads(exported) == vw_reads(lines)
    assert sorted(orjson.loads(x)["EventId"] for x in exported) == sorted(f"ev{i}" for i in range(30))
