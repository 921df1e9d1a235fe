"""One contract, every router: params round-trip, fit returns self, learned attributes end in _, seeds."""

from __future__ import annotations

import dataclasses

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


@pytest.mark.parametrize("name", sorted(ROUTERS))
def test_every_hyperparameter_has_a_help_text(name):
    cls = ROUTERS[name]
    params = _make(name).get_params()
    helps = cls.help()
    assert set(helps) == set(params) - {"arms"}
    assert all(text.strip() for text in helps.values())
    assert {f.name for f in dataclasses.fields(cls) if f.init} == set(params)


@pytest.mark.parametrize("name", sorted(ROUTERS))
def test_numpy_scalar_hyperparameters_save_as_plain_numbers(name, tmp_path):
    # parameters read from arrays (np.int64, np.float64) pass the range checks and save as JSON
    cls = ROUTERS[name]
    kw = {"random_state": np.int64(4), "n_draws": np.int64(8)} if name.endswith("thompson") else {}
    if cls.needs_context:
        kw |= {"dim": np.int64(3), "l2": np.float64(0.5)}
    router = cls(["a", "b"], **kw)
    router.act(np.zeros(3) if cls.needs_context else None)
    params = router.get_params()
    assert all(not isinstance(v, np.generic) for v in params.values())
    restored = type(router).load(router.save(tmp_path / name))
    assert restored.get_params() == params
