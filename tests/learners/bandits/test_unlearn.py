"""``unlearn`` takes back one ``learn`` exactly: for every router, learning rewards and taking one back
equals never having learned it (state arrays, pulls, leaderboard)."""

from __future__ import annotations

import numpy as np
import pytest

from rewardloop.learners.bandits import ROUTERS
from rewardloop.loop.online_learner import max_abs_diff
from rewardloop.policies.router import RouterInputError

ARMS = ["a", "b", "c"]


def _router(name: str):  # type: ignore[no-untyped-def]
    cls = ROUTERS[name]
    kw = {"dim": 2} if cls.needs_context else {}
    router = cls(ARMS, random_state=0, **kw)
    router.reset()
    return router


@pytest.mark.parametrize("name", sorted(ROUTERS))
def test_unlearn_takes_back_exactly_one_learn(name: str):
    rng = np.random.default_rng(0)
    rows = [(rng.normal(size=2), ARMS[i % 3], float(rng.random()), "x" if i % 2 else None) for i in range(12)]
    with_all, without = _router(name), _router(name)
    for i, (x, arm, r, cat) in enumerate(rows):
        with_all.learn(x, arm, r, cat)
        if i != 4:
            without.learn(x, arm, r, cat)
    x, arm, r, cat = rows[4]
    with_all.unlearn(x, arm, r, cat)
    assert max_abs_diff(with_all, without) < 1e-12
    for category in (None, "x"):
        got, want = with_all.leaderboard(category), without.leaderboard(category)
        assert [(r.arm, r.pulls) for r in got] == [(r.arm, r.pulls) for r in want]
        assert [r.mean for r in got] == pytest.approx([r.mean for r in want], abs=1e-12)


def test_unlearn_checks_its_input_before_changing_anything():
    router = _router("linucb")
    router.learn([1.0, 0.0], "a", 1.0)
    before = router.theta_.copy()
    with pytest.raises(RouterInputError, match="outside the declared reward range"):
        router.unlearn([1.0, 0.0], "a", 2.0)
    with pytest.raises(RouterInputError, match="unknown arm"):
        router.unlearn([1.0, 0.0], "z", 1.0)
    assert np.array_equal(router.theta_, before)
