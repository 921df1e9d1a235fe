"""State saves to router.json + state.npz and restores exactly: the restored router decides identically."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rewardloop.learners.bandits import (
    BetaThompson,
    EpsilonGreedy,
    LinearThompson,
    LinUCB,
    RouterInputError,
    Softmax,
    load_router,
)


def _make(cls):
    if cls is BetaThompson:
        return cls(["a", "b", "c"], priors={"b": (0.6, 3)}, random_state=3)
    return cls(["a", "b", "c"], dim=4, priors={"b": (0.6, 3)}, random_state=3)


@pytest.mark.parametrize("cls", [LinUCB, LinearThompson, EpsilonGreedy, Softmax, BetaThompson])
def test_restored_router_decides_and_learns_identically(cls, tmp_path, snap):
    rng = np.random.default_rng(0)
    router = _make(cls)
    for _ in range(30):
        x = rng.normal(size=4)
        d = router.act(x)
        router.learn(x, d.arm, float(rng.random()), category=str(rng.integers(2)))
    router.add_arm("d", prior=(0.4, 1))
    router.retire_arm("a")
    router.save(tmp_path / "r")
    restored = load_router(tmp_path / "r")
    assert type(restored) is cls
    snap.same(snap(router), snap(restored))
    for _ in range(20):
        x = rng.normal(size=4)
        d1, d2 = router.act(x), restored.act(x)
        assert d1.arm == d2.arm
        np.testing.assert_array_equal(d1.action_dist, d2.action_dist)
        np.testing.assert_array_equal(d1.scores, d2.scores)
        router.learn(x, d1.arm, 0.5)
        restored.learn(x, d2.arm, 0.5)
    snap.same(snap(router), snap(restored))


def test_saved_files_are_json_and_plain_npz(tmp_path):
    router = LinUCB(["a", "b"], dim=2, alpha=0.3, priors={"a": (0.5, 2)})
    router.learn([1.0, 2.0], "a", 1.0, category="billing")
    router.save(tmp_path)
    meta = json.loads((tmp_path / "router.json").read_text())
    assert meta["algorithm"] == "linucb" and meta["format"] == 1
    assert meta["params"]["alpha"] == 0.3 and meta["params"]["dim"] == 2
    assert meta["arms"] == ["a", "b"] and meta["arm_priors"]["a"] == [0.5, 2.0]
    assert meta["stats"]["by_category"] == {"billing": {"a": [1, 1.0, 1.0]}}
    with np.load(tmp_path / "state.npz", allow_pickle=False) as z:
        assert sorted(z.files) == ["A_inv", "n_pulls", "theta"]
        assert z["A_inv"].shape == (2, 3, 3)


def test_loading_the_wrong_class_or_folder_is_a_clear_error(tmp_path):
    LinUCB(["a"], dim=1).save(tmp_path / "u")
    with pytest.raises(RouterInputError, match="holds a 'linucb' router, not 'softmax'"):
        Softmax.load(tmp_path / "u")
    with pytest.raises(RouterInputError, match="no saved router"):
        load_router(tmp_path / "missing")


def test_deep_copy_is_an_independent_working_router():
    import copy

    router = LinUCB(["a", "b"], dim=2, alpha=1.0)
    router.learn([1.0, 0.0], "a", 1.0)
    twin = copy.deepcopy(router)
    twin.learn([0.0, 1.0], "b", 1.0)  # must change the twin's decisions, not the original's
    x = np.array([0.0, 1.0, 1.0])
    for r in (router, twin):
        width = np.sqrt(np.einsum("i,kij,j->k", x, r.A_inv_, x))
        np.testing.assert_allclose(r.act(x[:2]).scores, r.theta_ @ x + width)
    assert not np.array_equal(router.A_inv_[1], twin.A_inv_[1])
