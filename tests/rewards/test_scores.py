"""The one feedback → [0, 1] score: hand-computed cases, and its three readers agree."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from rewardloop.learners.gating import rollup_multilevel
from rewardloop.rewards import RewardSpec, compile_feedback
from rewardloop.rewards.scores import decision_score, feedback_score, latest_per_rater, level_rollup
from rewardloop.service import panels
from rewardloop.types import Decision, Feedback

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _decision() -> Decision:
    return Decision(
        policy="p", policy_version="1", kind="router", actions=("a", "b"), action="a",
        action_dist=(0.5, 0.5), pscore=0.5, id="d1",
    )  # fmt: skip


def _fb(minutes: int, **kw) -> Feedback:
    return Feedback(decision_id="d1", created_at=T0 + timedelta(minutes=minutes), **kw)


def test_level_rollup_by_hand():
    # levels: retrieval (1 + 0) / 2 = 0.5, synthesis 1; weights 3 : 1 → (1.5 + 1) / 4
    assert level_rollup({"retrieval.p": 1.0, "retrieval.r": 0.0, "synthesis": 1.0}) == 0.75
    assert (
        level_rollup(
            {"retrieval.p": 1.0, "retrieval.r": 0.0, "synthesis": 1.0}, {"retrieval": 3, "synthesis": 1}
        )
        == 0.625
    )
    assert level_rollup({"x": 1.0}, {"y": 1}) is None  # no weighted level scored
    assert level_rollup({"x": 1.0, "y": 0.0}, {"x": 1, "z": 5}) == 1.0  # unscored weighted level left out


def test_feedback_score_table():
    d = _decision()
    assert feedback_score(d, _fb(0, kind="correction", label="a")) == 1.0
    assert feedback_score(d, _fb(0, kind="correction", label="b")) == 0.0
    assert feedback_score(d, _fb(0, kind="rating", value=4, scale=(1, 5))) == 0.75
    assert feedback_score(d, _fb(0, kind="implicit", value=0)) == 0.0
    assert feedback_score(d, _fb(0, kind="preference", preferred="a", rejected="b")) == 1.0
    assert feedback_score(d, _fb(0, kind="preference", preferred="x", rejected="y")) is None
    multi = _fb(0, kind="multilevel", scores={"r.p": 4, "r.q": 0, "s": 4}, scale=(0, 4))
    assert feedback_score(d, multi) == 0.75  # (0.5 + 1) / 2
    assert feedback_score(d, multi, kinds=("rating",)) is None
    assert feedback_score(None, _fb(0, kind="correction", label="a")) is None  # needs the decision


def test_a_rater_counts_once_with_their_latest_row():
    rows = [
        _fb(0, kind="rating", value=1, scale=(0, 1), rater_id="ann", authority=1.0),
        _fb(5, kind="rating", value=0, scale=(0, 1), rater_id="ann", authority=1.0),  # replaces ann's first
        _fb(1, kind="rating", value=1, scale=(0, 1), authority=0.5),  # no rater id: stands alone
        _fb(2, kind="rating", value=1, scale=(0, 1), rater_id="bob", authority=0.0),  # authority 0: no say
    ]
    assert [f.created_at.minute for f in latest_per_rater(rows)] == [1, 2, 5]
    # (0.5·1 + 1·0) / 1.5
    assert decision_score(_decision(), rows) == pytest.approx(1 / 3)
    assert decision_score(_decision(), rows[3:]) is None


def test_compiler_dashboard_and_gating_read_the_same_score():
    d = _decision()
    rows = [
        _fb(0, kind="multilevel", scores={"retrieval.p": 3, "retrieval.r": 1, "synthesis": 2}, scale=(1, 3),
            rater_id="ann", authority=1.0),
        _fb(1, kind="rating", value=2, scale=(1, 5), rater_id="bob", authority=0.5),
        _fb(2, kind="rating", value=5, scale=(1, 5), rater_id="bob", authority=0.5),
    ]  # fmt: skip
    # ann: retrieval (1 + 0) / 2 = 0.5, synthesis 0.5 → 0.5; bob's latest: 1.0; (1·0.5 + 0.5·1) / 1.5
    expected = (0.5 + 0.5) / 1.5
    compiled = compile_feedback([d], {"d1": rows}, RewardSpec("s", function="accuracy")).rewards[0].value
    assert compiled == pytest.approx(expected)
    assert panels.decision_score(d, rows) == pytest.approx(expected)
    assert rollup_multilevel(rows) == pytest.approx(expected)
    assert decision_score(d, rows) == pytest.approx(expected)
