"""Golden files: both formats load; every bad file gets an error naming the line."""

from __future__ import annotations

import json

import pytest

from rewardloop.evaluation.golden import GoldenError, GoldenItem, GoldenSet, load_golden, write_golden


def _jsonl(tmp_path, rows, name="golden.jsonl"):
    path = tmp_path / name
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_jsonl_loads_every_field(tmp_path):
    path = _jsonl(
        tmp_path,
        [
            {"id": "e1", "text": "card stolen", "label": "fraud", "critical": True, "tags": ["money"]},
            {"text": "hello", "label": "other", "priority": "low", "category": "misc"},
            "",
            {"context": {"text": "my bill"}, "expected": "billing", "priority": "critical"},
        ],
    )
    g = load_golden(path)
    assert [i.id for i in g.items] == ["e1", "line-2", "line-4"]
    assert [i.label for i in g.items] == ["fraud", "other", "billing"]
    assert [i.critical for i in g.items] == [True, False, True]
    assert g.items[0].tags == ("money",)
    assert g.items[1].group == "misc" and g.items[0].group == "fraud"
    assert g.items[2].text == "my bill"
    assert g.labels == ["billing", "fraud", "other"]


def test_csv_loads_and_splits_tags(tmp_path):
    path = tmp_path / "golden.csv"
    path.write_text("id,text,label,critical,tags\na,card stolen,fraud,yes,money|urgent\nb,hi,other,0,\n")
    g = load_golden(path)
    assert g.items[0].tags == ("money", "urgent")
    assert g.items[0].critical and not g.items[1].critical
    assert g.items[1].line == 3


def test_round_trip(tmp_path):
    g = GoldenSet([GoldenItem("a", "x", "l1", critical=True, priority="high", category="c", tags=("t",))])
    again = load_golden(write_golden(g, tmp_path / "g.jsonl"))
    assert [(i.id, i.text, i.label, i.critical, i.priority, i.category, i.tags) for i in again.items] == [
        ("a", "x", "l1", True, "high", "c", ("t",))
    ]


BAD_JSONL = [
    ([{"id": "a", "text": "x"}], "line 1: missing 'label'"),
    ([{"id": "a", "label": "l"}], "line 1: missing 'text'"),
    (
        [{"id": "a", "text": "x", "label": "l"}, {"id": "a", "text": "y", "label": "l"}],
        "line 2: duplicate id 'a' (first on line 1)",
    ),
    ([{"text": "x", "label": "l"}, "{not json"], "line 2: not valid JSON"),
    ([{"text": "x", "label": "l"}, "[1, 2]"], "line 2: expected a JSON object"),
    ([{"text": "x", "label": "l", "critical": "maybe"}], "line 1: 'critical' must be true/false"),
    ([{"text": "x", "label": "l", "tags": [1]}], "line 1: 'tags' must be a list of strings"),
    ([{"text": "x", "label": "l", "lable": "m"}], "line 1: unknown field(s) 'lable'"),
    ([{"context": {"body": "x"}, "label": "l"}], "line 1: 'context' must be an object with a 'text' string"),
    ([""], "no golden items"),
]


@pytest.mark.parametrize(("rows", "message"), BAD_JSONL, ids=[m for _, m in BAD_JSONL])
def test_bad_jsonl_names_the_line(tmp_path, rows, message):
    with pytest.raises(GoldenError) as err:
        load_golden(_jsonl(tmp_path, rows))
    assert message in str(err.value)
    assert "golden.jsonl" in str(err.value)


BAD_CSV = [
    (
        "id,text,expected_label\na,x,l\n",
        "line 1 (header): no 'label' column (columns: id, text, expected_label)",
    ),
    ("id,label\na,l\n", "line 1 (header): no 'text' column"),
    ("id,text,label\na,x,l\na,y,l\n", "line 3: duplicate id 'a' (first on line 2)"),
    ("id,text,label\na,x,l,extra\n", "line 2: more values than header columns"),
    ("id,text,label\na,x,\n", "line 2: missing 'label'"),
    ("", "line 1: empty file"),
]


@pytest.mark.parametrize(("content", "message"), BAD_CSV, ids=[m for _, m in BAD_CSV])
def test_bad_csv_names_the_line(tmp_path, content, message):
    path = tmp_path / "golden.csv"
    path.write_text(content)
    with pytest.raises(GoldenError) as err:
        load_golden(path)
    assert message in str(err.value)


def test_unknown_label_names_the_line(tmp_path):
    path = _jsonl(tmp_path, [{"text": "x", "label": "fraud"}, {"text": "y", "label": "frod"}])
    with pytest.raises(
        GoldenError, match=r"line 2: label 'frod' is not one of the policy's labels \(fraud, other\)"
    ):
        load_golden(path, labels=["fraud", "other"])


def test_missing_file_and_format(tmp_path):
    with pytest.raises(GoldenError, match="no such file"):
        load_golden(tmp_path / "nope.jsonl")
    (tmp_path / "g.txt").write_text("x")
    with pytest.raises(GoldenError, match=r"unknown golden format '\.txt'"):
        load_golden(tmp_path / "g.txt")
