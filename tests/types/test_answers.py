"""The answer types' schema descriptions come from field metadata, never from parsing the source."""

import inspect

import pytest
from pydantic import TypeAdapter

from rewardloop.types.answers import Decided, ReviewQueueItem


@pytest.mark.parametrize("cls", [Decided, ReviewQueueItem])
def test_schema_build_reads_no_source(cls: type, monkeypatch: pytest.MonkeyPatch) -> None:
    # FastAPI builds a route's schema lazily in the request's thread; parsing source there fails on
    # CPython 3.11 when two threads parse at once ("AST constructor recursion depth mismatch").
    def no_source(*args: object, **kwargs: object) -> None:
        raise AssertionError("the schema build read the source")

    monkeypatch.setattr(inspect, "getsource", no_source)
    monkeypatch.setattr(inspect, "getsourcelines", no_source)
    properties = TypeAdapter(cls).json_schema()["properties"]
    assert properties["action"]["description"] == (
        "the action taken (a label, an arm, or the top candidate)" if cls is Decided else "the model's guess"
    )
    assert "description" not in properties["policy"]
