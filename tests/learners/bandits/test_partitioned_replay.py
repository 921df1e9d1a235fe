"""Replay over partitions of the log: every router's state equals the one-pass replay to 1e-9.

The partitions' statistics run in turn here; tests/loop/test_partitioned_replay_ray.py runs them as
Ray tasks.
"""

from __future__ import annotations

import numpy as np
import pytest

from rewardloop.learners.bandits import ROUTERS, BetaThompson, LinUCB, RouterInputError
from rewardloop.learners.bandits._partition import in_turn, split_rows
from rewardloop.learners.bandits.replay import LoggedRows

from .conftest import snapshot

ARMS = ["a", "b", "c", "d"]


def seeded_log(n: int = 500, dim: int = 3, seed: int = 0) -> LoggedRows:
    """A log of ``n`` rounds by a uniform policy; half logged by another policy (so weights vary)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, dim))
    arms = [ARMS[i] for i in rng.integers(0, len(ARMS), n)]
    truth = {a: rng.normal(size=dim) for a in ARMS}
    p = np.array([1 / (1 + np.exp(-X[i] @ truth[a])) for i, a in enumerate(arms)])
    return LoggedRows(
        X=X,
        arms=arms,
        rewards=(rng.random(n) < p).astype(float),
        pscore=rng.uniform(0.1, 0.5, n),
        n_actions=np.full(n, float(len(ARMS))),
        policies=["router" if i % 2 else "old" for i in range(n)],
        categories=[f"c{i % 3}" for i in range(n)],
    )


def make(name: str):
    cls = ROUTERS[name]
    kw = {"random_state": 0, "priors": {"b": (0.6, 4.0)}}
    return cls(ARMS, **kw) if not cls.needs_context else cls(ARMS, dim=3, **kw)


def assert_close_state(a, b, tol=1e-9):
    sa, sb = snapshot(a), snapshot(b)
    for k in sa["arrays"]:
        np.testing.assert_allclose(sa["arrays"][k], sb["arrays"][k], rtol=tol, atol=tol, err_msg=k)
    np.testing.assert_array_equal(sa["n_pulls"], sb["n_pulls"])
    assert sa["arms"] == sb["arms"] and sa["stats"] == sb["stats"]  # statistics: computed on the whole log


@pytest.mark.parametrize("name", sorted(ROUTERS))
@pytest.mark.parametrize("partitions", [2, 7])
def test_partitioned_replay_equals_one_replay(name, partitions):
    rows = seeded_log()
    one = make(name).fit(rows, own_policy="router")
    parts = make(name).fit(rows, own_policy="router", partitions=partitions, map_parts=in_turn)
    assert_close_state(parts, one)
    assert parts.replay_report_ == one.replay_report_ and parts.history_ == one.history_


@pytest.mark.parametrize("name", sorted(ROUTERS))
def test_one_partition_is_bitwise_the_classic_replay(name):
    rows = seeded_log(n=80)
    classic = make(name).fit(rows)
    again = make(name).fit(rows, partitions=1)
    assert_close_state(again, classic, tol=0.0)


def test_partitions_from_a_saved_state_add_to_it():
    rows = seeded_log(n=300)
    start = LinUCB(ARMS, dim=3).fit(seeded_log(n=50, seed=1))
    one = LinUCB(ARMS, dim=3).fit(rows, policy=start)
    parts = LinUCB(ARMS, dim=3).fit(rows, policy=start, partitions=4, map_parts=in_turn)
    assert_close_state(parts, one)


def test_beta_sums_hand_computed():
    router = BetaThompson(["a", "b"])
    rows = LoggedRows(
        X=None,
        arms=["a", "b", "a", "a"],
        rewards=np.array([1.0, 0.0, 1.0, 0.5]),
        pscore=np.full(4, 0.5),
        n_actions=np.full(4, 2.0),
        policies=["r"] * 4,
        categories=[None] * 4,
    )
    router.fit(rows, own_policy="r", partitions=3, map_parts=in_turn)
    assert router.alpha_.tolist() == [1 + 2.5, 1.0] and router.beta_.tolist() == [1 + 0.5, 2.0]


def test_more_partitions_than_rows_and_bad_counts():
    rows = seeded_log(n=3)
    one = make("linucb").fit(rows)
    assert_close_state(make("linucb").fit(rows, partitions=8, map_parts=in_turn), one)
    parts = split_rows((np.zeros((3, 1)), np.arange(3), np.zeros(3), np.ones(3)), 2)
    assert [len(p[1]) for p in parts] == [1, 2]
    with pytest.raises(RouterInputError, match="partitions: must be at least 1"):
        split_rows((None, np.arange(3), np.zeros(3), np.ones(3)), 0)


def test_a_bad_row_is_named_by_its_index_in_the_whole_log_and_changes_nothing():
    rows = seeded_log(n=40)
    bad = LoggedRows(**{**rows.__dict__, "rewards": np.where(np.arange(40) == 33, 2.0, rows.rewards)})
    router = make("linucb").reset()
    before = snapshot(router)
    with pytest.raises(RouterInputError, match=r"rewards\[33\]"):
        router.partial_fit(bad.X, bad.arms, bad.rewards, partitions=4, map_parts=in_turn)
    assert snapshot(router)["arrays"].keys() == before["arrays"].keys()
    for k, v in snapshot(router)["arrays"].items():
        np.testing.assert_array_equal(v, before["arrays"][k])
