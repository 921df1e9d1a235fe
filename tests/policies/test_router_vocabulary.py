"""Arm statistics, leaderboard intervals and context features."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from rewardloop.policies.router import ArmStats, ContextFeatures, RouterInputError


def test_leaderboard_t_interval_hand_computed():
    s = ArmStats(reward_range=(0.0, 1.0))
    for r in (0.2, 0.4, 0.6):
        s.add("a", r)
    s.add("b", 0.9)
    rows = s.leaderboard(arms=["a", "b", "c"])
    # b has one pull: the whole range; c none: last, NaN mean
    assert [r.arm for r in rows] == ["b", "a", "c"]
    b, a, c = rows
    assert (b.pulls, b.mean, b.low, b.high) == (1, 0.9, 0.0, 1.0)
    half = stats.t.ppf(0.975, 2) * 0.2 / math.sqrt(3)  # sd of (0.2, 0.4, 0.6) is 0.2
    assert a.mean == pytest.approx(0.4) and a.low == pytest.approx(max(0.0, 0.4 - half))
    assert a.high == pytest.approx(min(1.0, 0.4 + half))
    assert c.pulls == 0 and math.isnan(c.mean)


def test_category_stats_are_separate_and_round_trip():
    s = ArmStats()
    s.add("a", 1.0, "billing")
    s.add("a", 0.0, "tech")
    s.add("b", 1.0, "tech")
    assert s.categories() == ["billing", "tech"]
    assert [(r.arm, r.mean) for r in s.leaderboard("tech")] == [("b", 1.0), ("a", 0.0)]
    assert {r.arm: r.pulls for r in s.leaderboard()} == {"a": 2, "b": 1}
    again = ArmStats.from_dict(s.to_dict())
    assert again.to_dict() == s.to_dict()


class FakeEncoder:
    dim = 3

    def encode(self, texts):
        return np.array([[len(t), 0.0, 1.0] for t in texts], dtype=np.float32)


def test_context_features_numeric_text_and_both():
    num = ContextFeatures("numeric", n_numeric=2)
    np.testing.assert_array_equal(num.transform(features=[1, 2]), [1.0, 2.0])
    text = ContextFeatures("text", encoder=FakeEncoder())
    assert text.dim == 3
    np.testing.assert_array_equal(text.transform(text="hello"), [5.0, 0.0, 1.0])
    both = ContextFeatures("both", n_numeric=1, encoder=FakeEncoder())
    X = both.transform_many([[7.0], [8.0]], ["ab", "abc"])
    np.testing.assert_array_equal(X, [[7.0, 2.0, 0.0, 1.0], [8.0, 3.0, 0.0, 1.0]])


@pytest.mark.parametrize(
    ("kwargs", "call", "field", "message"),
    [
        ({"mode": "image"}, None, "mode", "numeric, text or both"),
        ({"mode": "numeric"}, None, "n_numeric", ">= 1"),
        (
            {"mode": "numeric", "n_numeric": 2},
            dict(features=[[1.0]]),
            "features[0]",
            "expected 2 values, got 1",
        ),
        ({"mode": "numeric", "n_numeric": 2}, dict(features=[None]), "features[0]", "got none"),
        ({"mode": "text"}, dict(texts=["a", ""]), "text[1]", "is missing"),
    ],
)
def test_context_feature_errors(kwargs, call, field, message):
    with pytest.raises(RouterInputError, match=re_escape(message)) as err:
        f = ContextFeatures(**kwargs, encoder=FakeEncoder())
        f.transform_many(**call)
    assert err.value.field == field


def re_escape(s: str) -> str:
    import re

    return re.escape(s)
