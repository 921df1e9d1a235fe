"""``rewardloop eval`` batches by default (one text per call took minutes); ``--batch-size 1`` still works,
and the configured encoder backend reaches the shared encoder."""

from __future__ import annotations

import json
import re

import pytest
import yaml
from typer.testing import CliRunner

from rewardloop.cli.evaluate import EVAL_BATCH_SIZE, PrecomputedPolicy
from rewardloop.cli.main import app
from rewardloop.encoders import default_backend, set_default_backend

runner = CliRunner()
LABELS = ["a", "b"]


@pytest.fixture
def golden_and_policy(tmp_path):
    texts = [f"text {i}" for i in range(150)]
    golden = tmp_path / "golden.jsonl"
    golden.write_text("".join(json.dumps({"id": t, "text": t, "label": "a"}) + "\n" for t in texts))
    folder = tmp_path / "pol"
    folder.mkdir()
    (folder / "labels.json").write_text(json.dumps(LABELS))
    (folder / "predictions.jsonl").write_text(
        "".join(json.dumps({"text": t, "proba": [0.8, 0.2]}) + "\n" for t in texts)
    )
    return golden, folder


def _calls(monkeypatch) -> list[int]:
    sizes: list[int] = []
    original = PrecomputedPolicy.predict_proba_with_latency

    def spy(self, texts):
        sizes.append(len(texts))
        return original(self, texts)

    monkeypatch.setattr(PrecomputedPolicy, "predict_proba_with_latency", spy)
    return sizes


@pytest.mark.parametrize(
    ("args", "expected"),
    [([], [EVAL_BATCH_SIZE, EVAL_BATCH_SIZE, 150 - 2 * EVAL_BATCH_SIZE]), (["--batch-size", "1"], [1] * 150)],
)
def test_eval_batches_by_default(tmp_path, monkeypatch, golden_and_policy, args, expected):
    golden, folder = golden_and_policy
    sizes = _calls(monkeypatch)
    res = runner.invoke(
        app, ["eval", "-g", str(golden), "--policy", str(folder), "-o", str(tmp_path / "out"), *args]
    )
    assert res.exit_code == 0, res.output
    assert sizes == expected
    assert json.loads((tmp_path / "out" / "report.json").read_text())["accuracy"] == 1.0


def test_eval_refuses_a_batch_size_below_one(tmp_path, golden_and_policy):
    golden, folder = golden_and_policy
    res = runner.invoke(app, ["eval", "-g", str(golden), "--policy", str(folder), "--batch-size", "0"])
    assert res.exit_code == 2 and "batch-size" in res.output


def test_project_config_sets_the_encoder_backend(tmp_path, golden_and_policy):
    golden, folder = golden_and_policy
    cfg = tmp_path / "rewardloop.yaml"
    cfg.write_text(yaml.safe_dump({"encoder": {"backend": "onnx"}}))
    try:
        res = runner.invoke(
            app, ["eval", "-c", str(cfg), "-g", str(golden), "--policy", str(folder), "-o", str(tmp_path)]
        )
        assert res.exit_code == 0, res.output
        assert default_backend() == "onnx"
    finally:
        set_default_backend(None)
    cfg.write_text(yaml.safe_dump({"encoder": {"backend": "tpu"}}))
    res = runner.invoke(app, ["eval", "-c", str(cfg), "-g", str(golden), "--policy", str(folder)])
    assert res.exit_code == 2 and "encoder.backend" in res.output


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "expected a JSON object, got list"),
        ('{"text": "x"}', 'expected {"text": ..., "proba": [...]}'),
        ('{"text": "x", "proba": [1.0]}', "'proba' must list 2 probabilities"),
    ],
)
def test_predictions_file_errors_name_the_line(golden_and_policy, line, message):
    from rewardloop.cli.evaluate import PolicyLoadError, _predictions_policy

    _, folder = golden_and_policy
    with (folder / "predictions.jsonl").open("a") as fh:  # after the fixture's 150 good lines
        fh.write(line + "\n")
    with pytest.raises(PolicyLoadError, match=re.escape(f"predictions.jsonl line 151: {message}")):
        _predictions_policy(str(folder))
