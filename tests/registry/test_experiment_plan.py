"""``rewardloop experiment start --plan``: decisions and days an effect needs at the current traffic."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from tests.registry.test_cli import project  # noqa: F401  (the fixture)
from tests.registry.test_cli import run as run_cli

from rewardloop.evaluation.variance import current_traffic
from rewardloop.store import Store, write_decisions, write_feedback
from rewardloop.types.records import Decision, Feedback, utcnow


def run(*args: str):
    """The command's result, its output with the table's box characters and line wrapping undone."""
    ran = run_cli(*args)
    ran.output = " ".join(re.sub(r"[\u2500-\u257f]", " ", ran.raw).split())
    return ran


def _log(path, n=700, right_every=10):
    """n decisions over the last 7 days (100 a day); the first 100 get implicit feedback, 1 in 10 right."""
    store = Store.open(f"sqlite:///{path / 'rl.db'}")
    now = utcnow()
    ds = [
        Decision(
            policy="intent",
            policy_version="1",
            kind="classifier",
            actions=("a", "b"),
            action="a",
            action_dist=(0.9, 0.1),
            pscore=0.9,
            created_at=now - timedelta(days=7) + timedelta(minutes=1 + (7 * 24 * 60 - 2) * i / n),
        )
        for i in range(n)
    ]
    write_decisions(store, ds)
    fb = [
        Feedback(decision_id=d.id, kind="implicit", value=int(i % right_every == 0))
        for i, d in enumerate(ds[:100])
    ]
    write_feedback(store, fb)
    return store


def test_plan_with_a_given_base_rate_and_no_traffic(project):  # noqa: F811
    res = run("experiment", "start", "p1", "--policy", "intent", "--challenger", "1.1.0", "--plan",
              "--base-rate", "0.1", "--mde", "0.02")  # fmt: skip
    assert res.exit_code == 0, res.output
    # per variant 3,841 at every share (Fleiss' formula); in all n / min(share, 1 - share)
    assert "5% 3,841 76,820 never (no traffic)" in res.output
    assert "50% 3,841 7,682 never (no traffic)" in res.output
    assert "success rate 0.100 (given)" in res.output
    assert "0 experiment(s)" in run("experiment", "status").output  # nothing was started


def test_plan_measures_traffic_and_success_rate(project):  # noqa: F811
    store = _log(project)
    t = current_traffic(store, "intent")
    assert (t.decisions, t.outcomes, t.success_rate) == (700, 100, 0.1)
    assert t.decisions_per_day == pytest.approx(100.0)
    store.close()
    res = run(
        "experiment",
        "start",
        "p1",
        "--policy",
        "intent",
        "--challenger",
        "1.1.0",
        "--plan",
        "--ramp",
        "0.5,1",
    )
    assert res.exit_code == 0, res.output
    assert "50% 3,841 7,682 76.8" in res.output
    assert "100 decisions a day" in res.output and "from 100 feedback outcomes" in res.output


def test_plan_errors(project):  # noqa: F811
    none = run("experiment", "start", "p1", "--policy", "intent", "--challenger", "1.1.0", "--plan")
    assert none.exit_code == 2 and "--base-rate: 'intent' has no feedback outcomes" in none.output
    bad = run("experiment", "start", "p1", "--policy", "intent", "--challenger", "1.1.0", "--plan",
              "--base-rate", "0.99", "--mde", "0.05")  # fmt: skip
    assert bad.exit_code == 2 and "--plan: mde: must be non-zero and keep the rate in (0, 1)" in bad.output
    with pytest.raises(ValueError, match="days: must be > 0"):
        current_traffic(None, "intent", days=0)
