"""One contract, every router: params round-trip, fit returns self, learned attributes end in _, seeds."""

from __future__ import annotations

import numpy as np
import pytest

from rewardloop.learners.bandits import ROUTERS


def _make(name, seed=0):
    cls = ROUTERS[name]
    if cls.needs_context:
        return cls(["a", "b", "c"], dim=3, random_state=seed)
    return cls(["a", "b", "c"], random_state=seed)


@pytest.mark.parametrize("name", sorted(ROUTERS))
def test_router_contract(name):
    cls = ROUTERS[name]
    router = _make(name)
    assert cls.algorithm == name
    # __init__ stores, it does not compute: no learned state before first use
    assert not hasattr(router, "arms_")
    params = router.get_params()
    assert cls(**params).get_params() == params
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 3))
    arms = rng.choice(["a", "b", "c"], size=30)
    out = router.fit(X if cls.needs_context else None, arms, rng.random(30))
    assert out is router
    for attr in ("arms_", "n_pulls_", "stats_", "rng_"):
        assert hasattr(router, attr)
    assert router.n_pulls_.sum() == 30
    # the same seed gives the same decisions
    a, b = _make(name, seed=5), _make(name, seed=5)
    xs = rng.normal(size=(20, 3))
    assert [a.act(x).arm for x in xs] == [b.act(x).arm for x in xs]
