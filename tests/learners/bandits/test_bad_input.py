"""Bad input: a clear error naming what was wrong, and the router's state unchanged."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rewardloop.learners.bandits import (
    BetaThompson,
    EpsilonGreedy,
    LinearThompson,
    LinUCB,
    RouterInputError,
    Softmax,
)

X = [0.5, -0.5, 1.0]

# NaN and inf contexts make numpy warn on their way to the refusal; the warnings are expected here.
pytestmark = pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")

LEARN_CASES = [
    # (description, args, kwargs, field, message)
    ("unknown arm", (X, "nope", 1.0), {}, "arm", "unknown arm 'nope'; arms are"),
    ("retired arm", (X, "gone", 1.0), {}, "arm", "'gone' is retired"),
    ("short context", ([1.0, 2.0], "a", 1.0), {}, "context", r"expected shape \(3,\), got \(2,\)"),
    ("matrix context", ([X, X], "a", 1.0), {}, "context", r"expected shape \(3,\), got \(2, 3\)"),
    ("text context", ("abc", "a", 1.0), {}, "context", "must be 3 numbers"),
    ("NaN context", ([1.0, math.nan, 0.0], "a", 1.0), {}, "context", "must be finite"),
    ("inf context", ([1.0, math.inf, 0.0], "a", 1.0), {}, "context", "must be finite"),
    (
        "reward above range",
        (X, "a", 1.5),
        {},
        "reward",
        r"1.5 is outside the declared reward range \[0.0, 1.0\]",
    ),
    ("reward below range", (X, "a", -0.1), {}, "reward", "outside the declared reward range"),
    ("NaN reward", (X, "a", math.nan), {}, "reward", "nan is outside"),
    ("text reward", (X, "a", "good"), {}, "reward", "must be a number"),
    ("zero weight", (X, "a", 1.0), {"weight": 0.0}, "weight", "must be a finite number > 0"),
]


def _routers():
    out = []
    for cls in (LinUCB, LinearThompson, EpsilonGreedy, Softmax):
        r = cls(["a", "b", "gone"], dim=3, random_state=0)
        r.learn(X, "a", 1.0)
        r.retire_arm("gone")
        out.append(r)
    return out


@pytest.mark.parametrize(
    ("case", "args", "kwargs", "field", "message"), LEARN_CASES, ids=[c[0] for c in LEARN_CASES]
)
def test_bad_learn_input_leaves_state_unchanged(case, args, kwargs, field, message, snap):
    for router in _routers():
        before = snap(router)
        with pytest.raises(RouterInputError, match=message) as err:
            router.learn(*args, **kwargs)
        assert err.value.field == field
        snap.same(before, snap(router))


@pytest.mark.parametrize(
    ("x", "message"),
    [([1.0], "expected shape"), ([math.nan, 0, 0], "must be finite"), (None, "expected shape")],
)
def test_bad_act_input_leaves_state_unchanged(x, message, snap):
    for router in _routers():
        before = snap(router)
        with pytest.raises(RouterInputError, match=message):
            router.act(x)
        snap.same(before, snap(router))


BATCH_CASES = [
    ("unknown arm in row 2", dict(arms=["a", "b", "zz"]), "arms[2]", "unknown arm 'zz'"),
    ("NaN context in row 1", dict(X=[[0, 0, 0], [math.nan, 0, 0], [0, 0, 0]]), "X[1]", "must be finite"),
    ("wrong width", dict(X=np.zeros((3, 2))), "X", r"expected shape \(3, 3\)"),
    ("reward out of range in row 0", dict(rewards=[2.0, 0, 0]), "rewards[0]", "outside the declared"),
    ("NaN reward", dict(rewards=[0, math.nan, 0]), "rewards[1]", "outside the declared"),
    ("negative weight", dict(sample_weight=[1, -1, 1]), "sample_weight[1]", "finite and > 0"),
    ("index out of range", dict(arms=np.array([0, 1, 7])), "arms[2]", "out of range"),
    ("length mismatch", dict(arms=["a", "b"]), "arms", "one arm per reward"),
]


@pytest.mark.parametrize(("case", "change", "field", "message"), BATCH_CASES, ids=[c[0] for c in BATCH_CASES])
def test_bad_batch_leaves_state_unchanged(case, change, field, message, snap):
    router = _routers()[0]
    args = {"X": np.zeros((3, 3)), "arms": ["a", "b", "a"], "rewards": [0.0, 1.0, 0.5], "sample_weight": None}
    args.update(change)
    before = snap(router)
    with pytest.raises(RouterInputError, match=message) as err:
        router.partial_fit(**args)
    assert err.value.field == field
    snap.same(before, snap(router))


@pytest.mark.parametrize(
    ("kwargs", "field", "message"),
    [
        (dict(arms=[]), "arms", "non-empty"),
        (dict(arms=["a", "a"]), "arms", "must not repeat"),
        (dict(priors={"zz": (0.5, 1)}), "priors.zz", "no such arm"),
        (dict(priors={"a": (2.0, 1)}), "priors.a", "outside the reward range"),
        (dict(priors={"a": (0.5, -1)}), "priors.a", "strength must be >= 0"),
        (dict(priors={"a": "high"}), "priors.a", "a prior is"),
        (dict(reward_range=(1, 0)), "reward_range", "low < high"),
        (dict(dim=0), "dim", ">= 1"),
        (dict(alpha=-1.0), "alpha", ">= 0"),
        (dict(fit_intercept=False, priors={"a": (0.5, 1)}), "priors.a", "need fit_intercept"),
    ],
)
def test_bad_hyperparameters_name_the_field(kwargs, field, message):
    args = {"arms": ["a", "b"], "dim": 3, **kwargs}
    with pytest.raises(RouterInputError, match=message) as err:
        LinUCB(**args).act([0.0] * 3)
    assert err.value.field == field


@pytest.mark.parametrize(
    ("cls", "kwargs", "field", "message"),
    [
        (LinUCB, dict(l2=0.0), "l2", "must be > 0, got 0.0"),
        (LinUCB, dict(dim=2.5), "dim", "must be an integer >= 1, got 2.5"),
        (EpsilonGreedy, dict(epsilon=1.5), "epsilon", r"must be in \[0, 1\], got 1.5"),
        (EpsilonGreedy, dict(epsilon="high"), "epsilon", r"must be in \[0, 1\], got 'high'"),
        (Softmax, dict(temperature=0.0), "temperature", "must be > 0, got 0.0"),
        (LinearThompson, dict(v=math.inf), "v", "must be > 0, got inf"),
        (LinearThompson, dict(n_draws=2.0), "n_draws", "must be an integer >= 0, got 2.0"),
        (LinearThompson, dict(pscore_rtol=1), "pscore_rtol", r"must be in \(0, 1\), got 1"),
        (BetaThompson, dict(n_draws=-1), "n_draws", "must be an integer >= 0, got -1"),
    ],
)
def test_every_hyperparameter_is_checked_against_its_range(cls, kwargs, field, message):
    # the same declared check for every router (not a string fed to np.isfinite: a TypeError before)
    args = {"dim": 3, **kwargs} if cls.needs_context else kwargs
    with pytest.raises(RouterInputError, match=message) as err:
        cls(["a", "b"], **args).reset()
    assert err.value.field == field


def test_unknown_hyperparameter_is_a_type_error():
    # what router_loop turns into "options: cannot build the ... router"
    with pytest.raises(TypeError, match="alpha"):
        EpsilonGreedy(["a", "b"], dim=3, alpha=1.0)


def test_arm_management_errors(snap):
    router = BetaThompson(["a"], random_state=0)
    before = snap(router)
    with pytest.raises(RouterInputError, match="already an arm"):
        router.add_arm("a")
    with pytest.raises(RouterInputError, match="last arm"):
        router.retire_arm("a")
    with pytest.raises(RouterInputError, match=r"prior mean 3\.0 is outside"):
        router.add_arm("b", prior=(3.0, 1))
    snap.same(before, snap(router))
