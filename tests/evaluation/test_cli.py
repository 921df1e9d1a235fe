"""``rewardloop eval``, ``gate`` and ``monitor`` end to end: reports out, exit codes, clean errors."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
import yaml
from tests.evaluation._evaluation_data import MONITOR_NOW, fill_monitor_logs
from typer.testing import CliRunner

from rewardloop.cli.evaluate import PolicyLoadError, load_policy_for_eval
from rewardloop.cli.main import app
from rewardloop.store import Store

LABELS = ["fraud", "billing", "other"]
ITEMS = (
    [{"id": f"f{i}", "text": f"card stolen {i}", "label": "fraud", "critical": True} for i in range(10)]
    + [{"id": f"b{i}", "text": f"my bill {i}", "label": "billing", "tags": ["money"]} for i in range(10)]
    + [{"id": f"o{i}", "text": f"hello {i}", "label": "other"} for i in range(10)]
)

runner = CliRunner()


def _golden(tmp_path, items=ITEMS):
    path = tmp_path / "golden.jsonl"
    path.write_text("".join(json.dumps(i) + "\n" for i in items))
    return path


def _policy(tmp_path, name, wrong_fraud=0, wrong_other=0):
    """A predictions folder answering every golden text; the first few of a class answered 'billing'."""
    folder = tmp_path / name
    folder.mkdir()
    (folder / "labels.json").write_text(json.dumps(LABELS))
    lines = []
    for item in ITEMS:
        k = int(item["id"][1:])
        label = item["label"]
        if (label == "fraud" and k < wrong_fraud) or (label == "other" and k < wrong_other):
            label = "billing"
        proba = [0.05, 0.05, 0.05]
        proba[LABELS.index(label)] = 0.9
        lines.append(json.dumps({"text": item["text"], "proba": proba, "latency_ms": 10.0 + k}))
    (folder / "predictions.jsonl").write_text("\n".join(lines) + "\n")
    return folder


def _config(tmp_path, **gate):
    path = tmp_path / "rewardloop.yaml"
    cfg = {
        "store": {"url": f"sqlite:///{tmp_path / 'rl.db'}"},
        "evaluation": {
            "golden": str(_golden(tmp_path)),
            "report_dir": str(tmp_path / "reports"),
            "gate": gate,
        },
    }
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_eval_writes_reports(tmp_path):
    pol = _policy(tmp_path, "v2", wrong_other=3)
    res = runner.invoke(
        app, ["eval", "--golden", str(_golden(tmp_path)), "--policy", str(pol), "-o", str(tmp_path / "out")]
    )
    assert res.exit_code == 0, res.output
    assert "90.0%" in res.output and "misclassified (3)" in res.output
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["accuracy"] == pytest.approx(0.9) and report["critical_accuracy"] == 1.0
    assert report["latency_ms"]["p50"] == pytest.approx(14.5)
    assert (tmp_path / "out" / "report.html").exists() and (
        tmp_path / "out" / "report_reliability.png"
    ).exists()


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda items: [*items, items[0]], "line 31: duplicate id 'f0' (first on line 1)"),
        (lambda items: [*items[:2], {"id": "x", "text": "t"}], "line 3: missing 'label'"),
        (
            lambda items: [*items[:1], {"id": "x", "text": "card stolen 1", "label": "fruad"}],
            "line 2: label 'fruad'",
        ),
    ],
)
def test_eval_bad_golden_is_a_clean_error(tmp_path, mutate, message):
    pol = _policy(tmp_path, "v2")
    res = runner.invoke(
        app, ["eval", "--golden", str(_golden(tmp_path, mutate(ITEMS))), "--policy", str(pol)]
    )
    assert res.exit_code == 2
    assert message in " ".join(res.output.split())
    assert "Traceback" not in res.output


def test_policy_loader_errors(tmp_path):
    with pytest.raises(PolicyLoadError, match="neither NAME@VERSION"):
        load_policy_for_eval(str(tmp_path / "nowhere"))
    folder = tmp_path / "p"
    folder.mkdir()
    with pytest.raises(PolicyLoadError, match=r"missing labels\.json"):
        load_policy_for_eval(str(folder))
    (folder / "labels.json").write_text('["a", "b"]')
    (folder / "predictions.jsonl").write_text('{"text": "x", "proba": [1.0]}\n')
    with pytest.raises(PolicyLoadError, match=r"predictions.jsonl line 1: 'proba' must list 2 probabilities"):
        load_policy_for_eval(str(folder))


def test_gate_fails_candidate_worse_on_critical_class(tmp_path):
    config = _config(tmp_path, min_accuracy=0.9, min_critical_accuracy=0.98, max_class_drop=0.05)
    champ = _policy(tmp_path, "v1", wrong_other=2)
    worse = _policy(tmp_path, "v2", wrong_fraud=1)
    out_json, out_md = tmp_path / "gate.json", tmp_path / "gate.md"
    res = runner.invoke(
        app,
        [
            "gate",
            "-c",
            str(config),
            "--candidate",
            str(worse),
            "--champion",
            str(champ),
            "--json-out",
            str(out_json),
            "--md-out",
            str(out_md),
        ],
    )
    assert res.exit_code == 1, res.output
    report = json.loads(out_json.read_text())
    assert report["passed"] is False
    failed = sorted(c["name"] for c in report["checks"] if not c["passed"])
    assert failed == ["critical_accuracy", "max_class_drop"]
    assert "## Release gate: FAILED" in out_md.read_text()


def test_gate_passes_better_candidate_from_saved_reports(tmp_path):
    config = _config(tmp_path, min_accuracy=0.9, min_critical_accuracy=0.98, max_class_drop=0.05, max_ece=0.2)
    for name, wrong in (("v1", 2), ("v2", 0)):
        res = runner.invoke(
            app,
            [
                "eval",
                "-c",
                str(config),
                "--policy",
                str(_policy(tmp_path, name, wrong_other=wrong)),
                "-o",
                str(tmp_path / name / "rep"),
            ],
        )
        assert res.exit_code == 0, res.output
    res = runner.invoke(
        app,
        [
            "gate",
            "-c",
            str(config),
            "--candidate",
            str(tmp_path / "v2" / "rep" / "report.json"),
            "--champion",
            str(tmp_path / "v1" / "rep" / "report.json"),
        ],
    )
    assert res.exit_code == 0, res.output
    assert "Release gate: PASSED" in res.output and "gate passed (4 checks)" in res.output


def test_gate_reads_an_ope_estimate(tmp_path):
    config = _config(tmp_path, min_ope_lower_vs_champion=0.0)
    cand = _policy(tmp_path, "v2")
    ope = tmp_path / "ope.json"
    ope.write_text(
        json.dumps({"estimator": "dr", "value": 0.31, "lower": 0.29, "upper": 0.33, "champion_value": 0.30})
    )
    res = runner.invoke(app, ["gate", "-c", str(config), "--candidate", str(cand), "--ope", str(ope)])
    assert res.exit_code == 1 and "ope_lower_vs_champion" in res.output
    ope.write_text(json.dumps({"value": 0.31}))
    res = runner.invoke(app, ["gate", "-c", str(config), "--candidate", str(cand), "--ope", str(ope)])
    assert res.exit_code == 2 and "expected JSON with value, lower, upper, champion_value" in res.output


def test_monitor_command_exit_code_and_json(tmp_path):
    config = _config(tmp_path)
    store = Store.open(f"sqlite:///{tmp_path / 'rl.db'}")
    fill_monitor_logs(store)
    store.close()
    at = ["monitor", "-c", str(config), "--now", MONITOR_NOW.isoformat(), "--json"]
    res = runner.invoke(app, [*at, "--no-drift"])
    assert res.exit_code == 1, res.output
    body = json.loads(res.output)
    assert len(body["alerts"]) == 4
    # with the drift checks (the default), the one-category take-over is also a label-mix shift
    res = runner.invoke(app, at)
    alerts = {(a["version"], a["check"]) for a in json.loads(res.output)["alerts"]}
    assert res.exit_code == 1 and len(alerts) == 5 and ("1", "label_psi") in alerts
    assert json.loads(res.output)["text"].startswith("rewardloop monitor: 5 alert(s)")
    quiet = runner.invoke(
        app, ["monitor", "-c", str(config), "--now", datetime(2020, 1, 1, tzinfo=UTC).isoformat()]
    )
    assert quiet.exit_code == 0 and "0 alert(s)" in quiet.output
    bad = runner.invoke(app, ["monitor", "-c", str(config), "--now", "yesterday"])
    assert bad.exit_code == 2 and "--now: not an ISO time" in bad.output


def test_gate_reads_an_ope_report(tmp_path):
    import numpy as np

    from rewardloop.evaluation.ope import evaluate_off_policy

    config = _config(tmp_path, min_ope_lower_vs_champion=-0.5, ope_estimator="snipw")
    rng = np.random.default_rng(0)
    action = rng.integers(0, 2, 400)
    report = evaluate_off_policy(
        reward=(action == 0).astype(float),
        action=action,
        pscore=np.full(400, 0.5),
        action_dist=np.tile([0.9, 0.1], (400, 1)),
        n_bootstrap_samples=200,
    )
    path = tmp_path / "ope.json"
    path.write_text(json.dumps(report.to_dict() | {"champion_value": 0.5}))
    res = runner.invoke(
        app, ["gate", "-c", str(config), "--candidate", str(_policy(tmp_path, "v2")), "--ope", str(path)]
    )
    assert res.exit_code == 0, res.output
    assert f"snipw {report.estimates['snipw'].value:.4f}" in res.output
    config = _config(tmp_path, min_ope_lower_vs_champion=0.0, ope_estimator="dr")
    res = runner.invoke(
        app, ["gate", "-c", str(config), "--candidate", str(tmp_path / "v2"), "--ope", str(path)]
    )
    assert res.exit_code == 2 and "no 'dr' estimate (have: ipw, snipw)" in " ".join(res.output.split())
