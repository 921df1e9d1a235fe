"""Training data in TRL's SFT, DPO and KTO shapes, and as a Hugging Face ``datasets`` folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rewardloop.cli.main import app
from rewardloop.loop.exports import DatasetExportError, dpo_rows, kto_rows, save_dataset, sft_rows
from rewardloop.policies.generator import DEFAULT_SYSTEM, classifier_system
from rewardloop.types import DecisionBatch, decision_from_dict, feedback_from_dict

runner = CliRunner()


#: Two classifier decisions (one corrected on→off, one approved 5 of 5) and a generator answer rated down.
DECISIONS = [
    {"id": "c0", "text": "lights 0", "policy": "intent", "kind": "classifier", "actions": ["on", "off"]},
    {"id": "c1", "text": "lights 1", "policy": "intent", "kind": "classifier", "actions": ["on", "off"]},
    {"id": "g0", "text": "capital of France?", "policy": "chat", "kind": "generator", "actions": ["Paris"]},
]
FEEDBACK = [
    {"decision_id": "c0", "kind": "correction", "label": "off"},
    {"decision_id": "c1", "kind": "rating", "value": 5, "scale": [1, 5]},
    {"decision_id": "g0", "kind": "rating", "value": 0, "scale": [0, 1]},
]


def logged(row: dict[str, object]) -> dict[str, object]:
    """A decision row of DECISIONS, logged: the first action chosen with the probability the table implies."""
    dist = [0.8, 0.2] if row["kind"] == "classifier" else [1.0]
    return {**row, "policy_version": "1", "action": row["actions"][0], "action_dist": dist, "pscore": dist[0]}  # type: ignore[index]


def batch() -> DecisionBatch:
    decisions = [decision_from_dict(logged(r)) for r in DECISIONS]
    feedback = [feedback_from_dict({**f, "id": f"f{i}"}) for i, f in enumerate(FEEDBACK)]
    return DecisionBatch(decisions, {f.decision_id: [f] for f in feedback}, {})


def chat(system: str, user: str, answer: str) -> dict[str, object]:
    roles = (("system", system), ("user", user), ("assistant", answer))
    return {"messages": [{"role": r, "content": c} for r, c in roles]}


def test_sft_rows_are_conversations_ending_in_the_right_answer() -> None:
    system = classifier_system(("on", "off"))
    assert list(sft_rows(batch())) == [chat(system, "lights 0", "off"), chat(system, "lights 1", "on")]


def test_dpo_rows_pair_the_correction_over_the_logged_answer() -> None:
    (row,) = dpo_rows(batch())
    assert row["chosen"] == [{"role": "assistant", "content": "off"}]
    assert row["rejected"] == [{"role": "assistant", "content": "on"}]
    assert row["prompt"][-1] == {"role": "user", "content": "lights 0"}


def test_kto_rows_label_each_answer_desirable_or_not() -> None:
    rows = list(kto_rows(batch()))
    got = [(r["prompt"][-1]["content"], r["completion"][0]["content"], r["label"]) for r in rows]
    assert got == [
        ("lights 0", "off", True),
        ("lights 0", "on", False),
        ("lights 1", "on", True),
        ("capital of France?", "Paris", False),
    ]
    assert rows[-1]["prompt"][0] == {"role": "system", "content": DEFAULT_SYSTEM}


def test_trl_recognises_the_shapes() -> None:
    from trl.data_utils import is_conversational

    for rows in (sft_rows(batch()), dpo_rows(batch()), kto_rows(batch())):
        assert all(is_conversational(r) for r in rows)


def test_a_dataset_folder_loads_back(tmp_path: Path) -> None:
    from datasets import load_from_disk

    n = save_dataset(kto_rows(batch()), tmp_path / "kto")
    ds = load_from_disk(str(tmp_path / "kto"))
    assert n == 4 and len(ds) == 4 and set(ds.column_names) == {"prompt", "completion", "label"}
    assert ds[3]["label"] is False and ds[0]["completion"] == [{"role": "assistant", "content": "off"}]
    with pytest.raises(DatasetExportError, match="no rows to export"):
        save_dataset([], tmp_path / "empty")


def test_export_cli_writes_trl_views_and_a_datasets_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datasets import load_from_disk

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("REWARDLOOP_STORE__URL", raising=False)
    assert runner.invoke(app, ["init"]).exit_code == 0
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(logged(r)) + "\n" for r in DECISIONS))
    assert runner.invoke(app, ["import", "decisions", "d.jsonl"]).exit_code == 0
    (tmp_path / "f.jsonl").write_text("".join(json.dumps(f) + "\n" for f in FEEDBACK))
    assert runner.invoke(app, ["import", "feedback", "f.jsonl"]).exit_code == 0

    out = runner.invoke(app, ["export", "sft.jsonl", "--view", "sft"])
    assert out.exit_code == 0 and "wrote 2 SFT conversations" in out.output, out.output
    lines = [json.loads(x) for x in (tmp_path / "sft.jsonl").read_text().splitlines()]
    assert sorted(m["messages"][-1]["content"] for m in lines) == ["off", "on"]
    out = runner.invoke(app, ["export", "kto_ds", "--view", "kto", "--format", "hf"])
    assert out.exit_code == 0 and "wrote 4 KTO rows" in out.output, out.output
    assert sorted(load_from_disk(str(tmp_path / "kto_ds"))["label"]) == [False, False, True, True]
    again = runner.invoke(app, ["export", "kto_ds", "--view", "kto", "--format", "hf"])
    assert again.exit_code == 2 and "exists" in again.output
    bad = runner.invoke(app, ["export", "dpo.csv", "--view", "dpo"])
    assert bad.exit_code == 2 and "writes JSON lines" in bad.output
