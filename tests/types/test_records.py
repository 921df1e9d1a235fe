"""Every validation rule of the records, as a table of bad inputs and the messages they get."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest

from rewardloop.types import (
    Decision,
    Feedback,
    RecordError,
    Reward,
    TraceStep,
    decision_from_dict,
    feedback_from_dict,
    record_to_dict,
)

GOOD_DECISION = dict(
    policy="intent",
    policy_version="1",
    kind="classifier",
    actions=("on", "off", "dim"),
    action="on",
    action_dist=(0.7, 0.2, 0.1),
    pscore=0.7,
)


def decision(**changes):
    return Decision(**{**GOOD_DECISION, **changes})


def test_good_decision_defaults():
    d = decision(text="lights on")
    assert d.confidence == 0.7  # the chosen action's probability
    assert d.action_index == 0
    assert d.created_at.tzinfo is not None
    assert len(d.id) == 32


@pytest.mark.parametrize(
    ("changes", "field", "reason"),
    [
        ({"action_dist": (0.7, 0.2, 0.2)}, "action_dist", "must sum to 1"),
        ({"action_dist": (0.7, 0.3)}, "action_dist", "has 2 probabilities for 3 actions"),
        ({"action_dist": (1.2, -0.1, -0.1)}, "action_dist", "must be in [0, 1]"),
        ({"action_dist": (math.nan, 0.5, 0.5)}, "action_dist", "must be in [0, 1]"),
        ({"pscore": 0.2}, "pscore", "is not the chosen action's probability"),
        ({"pscore": 0.0, "action_dist": (0.0, 0.9, 0.1)}, "pscore", "must be > 0"),
        ({"pscore": math.inf}, "pscore", "must be finite"),
        ({"action": "toggle"}, "action", "is not among the candidate actions"),
        ({"actions": ()}, "actions", "at least one action"),
        ({"actions": ("on", "on", "dim")}, "actions", "must not repeat"),
        ({"policy": " "}, "policy", "non-empty"),
        ({"kind": "regressor"}, "kind", "must be one of classifier, router, reranker"),
        ({"confidence": 1.5}, "confidence", "must be in [0, 1]"),
        ({"latency_ms": -1.0}, "latency_ms", "must be >= 0"),
        ({"features": (1.0, math.nan)}, "features", "must be finite"),
        ({"candidates": ("a", "b")}, "candidates", "has 2 texts for 3 actions"),
        ({"ranking": ("off", "on", "dim")}, "ranking", "must start with the chosen action"),
        ({"ranking": ("on", "off")}, "ranking", "must order exactly the candidate actions"),
        ({"variant_share": 0.0}, "variant_share", "must be > 0"),
        ({"created_at": "yesterday"}, "created_at", "must be a datetime"),
    ],
)
def test_bad_decisions_name_the_field(changes, field, reason):
    with pytest.raises(RecordError) as err:
        decision(**changes)
    assert err.value.field == field
    assert reason in err.value.reason


def test_pscore_within_tolerance_and_sum_within_1e6():
    assert decision(action_dist=(0.7, 0.2, 0.1000005), pscore=0.7000004).pscore == 0.7000004
    with pytest.raises(RecordError, match="must sum to 1"):
        decision(action_dist=(0.7, 0.2, 0.100002))


def test_trace_steps_are_log_probabilities():
    d = decision(trace=(TraceStep("expert", "literal", math.log(0.5)), TraceStep("graph", "n3", 0.0)))
    assert d.trace[0].logp == pytest.approx(-0.6931471805599453)
    with pytest.raises(RecordError, match=r"trace.logp: a log-probability must be <= 0"):
        TraceStep("expert", "literal", 0.3)


def test_naive_time_is_taken_as_utc():
    d = decision(created_at=datetime(2026, 1, 1, 12, 0))
    assert d.created_at == datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("kwargs", "field", "reason"),
    [
        ({"kind": "rating", "value": 6, "scale": (1, 5)}, "value", "outside the declared scale [1.0, 5.0]"),
        ({"kind": "rating", "value": 3}, "scale", "must declare its scale"),
        ({"kind": "rating", "scale": (1, 5)}, "value", "is required for rating"),
        ({"kind": "rating", "value": 3, "scale": (5, 1)}, "scale", "low must be below high"),
        ({"kind": "rating", "value": math.nan, "scale": (1, 5)}, "value", "must be finite"),
        ({"kind": "implicit", "value": 2}, "value", "outside the declared scale [0.0, 1.0]"),
        ({"kind": "correction"}, "label", "is required for correction"),
        ({"kind": "preference", "preferred": "a"}, "preferred", "needs both preferred and rejected"),
        ({"kind": "preference", "preferred": "a", "rejected": "a"}, "rejected", "two distinct items"),
        ({"kind": "multilevel", "scale": (0, 1)}, "scores", "at least one named score"),
        ({"kind": "multilevel", "scores": {"retrieval": 2}, "scale": (0, 1)}, "scores.retrieval", "outside"),
        ({"kind": "rating", "value": 1, "scale": (0, 1), "authority": 1.5}, "authority", "must be in [0, 1]"),
        ({"kind": "rating", "value": 1, "scale": (0, 1), "source": "guess"}, "source", "must be one of"),
        ({"kind": "thumbs"}, "kind", "must be one of rating, correction"),
    ],
)
def test_bad_feedback_names_the_field(kwargs, field, reason):
    with pytest.raises(RecordError) as err:
        Feedback(decision_id="d1", **kwargs)
    assert err.value.field == field
    assert reason in err.value.reason


def test_good_feedback_of_every_kind():
    assert Feedback(decision_id="d", kind="rating", value=4, scale=(1, 5)).value == 4.0
    assert Feedback(decision_id="d", kind="implicit", value=1).scale == (0.0, 1.0)
    assert Feedback(decision_id="d", kind="correction", label="off").label == "off"
    assert Feedback(decision_id="d", kind="preference", preferred="a", rejected="b").rejected == "b"
    ml = Feedback(decision_id="d", kind="multilevel", scores={"retrieval": 0.5, "reasoning": 1}, scale=(0, 1))
    assert ml.scores == {"retrieval": 0.5, "reasoning": 1.0}


def test_reward_checks():
    with pytest.raises(RecordError, match="spec_version: must be >= 1"):
        Reward(decision_id="d", spec="s", spec_version=0, value=1.0)
    with pytest.raises(RecordError, match="value: must be finite"):
        Reward(decision_id="d", spec="s", spec_version=1, value=math.nan)


def test_parse_round_trip_and_errors():
    d = decision(text="hi", metadata={"user_id": "u1"}, trace=(TraceStep("e", "a", -0.1),))
    again = decision_from_dict(record_to_dict(d))
    assert again == d
    f = Feedback(decision_id="d", kind="rating", value=4, scale=(1, 5), rater_id="r")
    assert feedback_from_dict(record_to_dict(f)) == f
    with pytest.raises(RecordError, match="colour: is not a field of Decision"):
        decision_from_dict({**GOOD_DECISION, "colour": "red"})
    with pytest.raises(RecordError, match="pscore: is required"):
        decision_from_dict({k: v for k, v in GOOD_DECISION.items() if k != "pscore"})
    with pytest.raises(RecordError, match="actions: must be a list"):
        decision_from_dict({**GOOD_DECISION, "actions": "on"})
    with pytest.raises(RecordError, match="created_at: must be an ISO-8601 time"):
        decision_from_dict({**GOOD_DECISION, "created_at": "noon"})
