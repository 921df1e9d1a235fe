"""Helpers for the router tests: a snapshot of everything a router holds."""

from __future__ import annotations

import copy
import json
from typing import Any

import numpy as np

from rewardloop.learners.bandits import BanditRouter


def snapshot(router: BanditRouter) -> dict[str, Any]:
    """Every piece of a router's state, copied: arrays, arms, priors, statistics and random state."""
    router._ensure()
    return {
        "arrays": {k: v.copy() for k, v in router._state_arrays().items()},
        "n_pulls": router.n_pulls_.copy(),
        "arms": list(router.arms_),
        "priors": dict(router.arm_priors_),
        "retired": list(router.retired_),
        "stats": json.dumps(router.stats_.to_dict(), sort_keys=True),
        "rng": copy.deepcopy(router.rng_.bit_generator.state),
    }


def assert_same_state(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert a.keys() == b.keys()
    for k in a["arrays"]:
        np.testing.assert_array_equal(a["arrays"][k], b["arrays"][k], err_msg=k)
    np.testing.assert_array_equal(a["n_pulls"], b["n_pulls"])
    for k in ("arms", "priors", "retired", "stats", "rng"):
        assert a[k] == b[k], k


import pytest  # noqa: E402


@pytest.fixture
def snap():
    """``snap(router)`` copies the router's whole state; ``snap.same(a, b)`` asserts two copies equal."""

    class Snap:
        def __call__(self, router: BanditRouter) -> dict[str, Any]:
            return snapshot(router)

        same = staticmethod(assert_same_state)

    return Snap()
