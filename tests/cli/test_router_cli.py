"""``rewardloop router stats | leaderboard | train`` on a store with logged router decisions and rewards."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from rewardloop.cli.main import app
from rewardloop.learners.bandits import LinUCB, load_router
from rewardloop.store import read_runs, write_decisions, write_rewards
from rewardloop.types import Reward

runner = CliRunner()


@pytest.fixture
def logged(store, monkeypatch, tmp_path):
    """80 decisions of policy 'rag-router' over three agents, rewards of spec 'helpful' v1."""
    monkeypatch.setenv("REWARDLOOP_STORE__URL", store.engine.url.render_as_string(hide_password=False))
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    router = LinUCB(["naive", "agentic", "hybrid"], dim=2, alpha=1.0, random_state=0)
    decisions, rewards = [], []
    for t in range(80):
        x = rng.normal(size=2)
        d = router.act(x)
        r = float(rng.random() < {"naive": 0.2, "agentic": 0.7, "hybrid": 0.5}[d.arm])
        rec = d.to_record("rag-router", "1", features=x, metadata={"category": ["legal", "tax"][t % 2]})
        decisions.append(rec)
        rewards.append(Reward(decision_id=rec.id, spec="helpful", spec_version=1, value=r))
        router.learn(x, d.arm, r)
    write_decisions(store, decisions)
    write_rewards(store, rewards)
    return store


def test_stats_shows_each_category(logged):
    res = runner.invoke(app, ["router", "stats", "-p", "rag-router", "-r", "helpful:1"])
    assert res.exit_code == 0, res.output
    assert "legal" in res.output and "tax" in res.output and "agentic" in res.output
    assert "80 rewarded decisions of 80, 3 arms, 2 categories" in res.output


def test_leaderboard_from_store(logged):
    res = runner.invoke(app, ["router", "leaderboard", "-p", "rag-router", "-r", "helpful"])
    assert res.exit_code == 0, res.output
    assert "best: " in res.output and "95% interval" in res.output


def test_train_replays_logs_into_a_saved_router_and_records_the_run(logged, tmp_path):
    out = tmp_path / "trained"
    res = runner.invoke(
        app, ["router", "train", "-p", "rag-router", "-r", "helpful:1", "-o", str(out), "--alpha", "0.5"]
    )
    assert res.exit_code == 0, res.output
    assert "trained linucb on 80 logged decisions" in res.output
    router = load_router(out)
    assert sorted(router.arms_) == ["agentic", "hybrid", "naive"] and router.n_pulls_.sum() == 80
    runs = read_runs(logged, policy="rag-router")
    assert len(runs) == 1 and runs[0].status == "succeeded" and runs[0].artifact_path == str(out)
    res = runner.invoke(app, ["router", "leaderboard", "--router", str(out), "--category", "tax"])
    assert res.exit_code == 0 and "category tax" in res.output


def test_train_in_partitions_gives_the_one_pass_router(logged, tmp_path):
    base = ["router", "train", "-p", "rag-router", "-r", "helpful:1"]
    assert runner.invoke(app, [*base, "-o", str(tmp_path / "one")]).exit_code == 0
    res = runner.invoke(app, [*base, "-o", str(tmp_path / "parts"), "--partitions", "3"])
    assert res.exit_code == 0, res.output
    one, parts = load_router(tmp_path / "one"), load_router(tmp_path / "parts")
    np.testing.assert_allclose(parts.A_inv_, one.A_inv_, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(parts.theta_, one.theta_, rtol=1e-9, atol=1e-12)
    runs = read_runs(logged, policy="rag-router")
    assert [r.config["partitions"] for r in runs] == [1, 3] and runs[1].config["backend"] == "local"


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["router", "stats", "-p", "nobody", "-r", "helpful"], 3, "no router decisions of policy 'nobody'"),
        (["router", "stats", "-p", "rag-router", "-r", "other:2"], 2, "has a reward of spec 'other:2'"),
        (["router", "stats", "-p", "rag-router", "-r", "helpful:x"], 2, "version must be an integer"),
        (["router", "leaderboard"], 2, "give --policy and --reward-spec"),
        (["router", "leaderboard", "--router", "missing"], 2, "no saved router in missing"),
        (
            ["router", "train", "-p", "rag-router", "-r", "helpful", "-o", "x", "-a", "magic"],
            2,
            "'magic' is not one of 'linucb'",
        ),
        (
            ["router", "train", "-p", "rag-router", "-r", "helpful", "-o", "x", "--reward-range", "0,0.5"],
            2,
            "outside the declared reward range",
        ),
    ],
)
def test_bad_input_is_a_clean_error(logged, args, code, message):
    res = runner.invoke(app, args)
    assert res.exit_code == code, res.output
    assert message in res.output and "Traceback" not in res.output


def test_train_gating_from_traces_and_multilevel_feedback(store, monkeypatch, tmp_path):
    import math

    from rewardloop.policies.gating import GatingPolicy
    from rewardloop.store import write_feedback
    from rewardloop.types import Decision, Feedback, TraceStep

    monkeypatch.setenv("REWARDLOOP_STORE__URL", store.engine.url.render_as_string(hide_password=False))
    monkeypatch.chdir(tmp_path)
    experts = ["literal", "precedent"]
    decisions, feedback = [], []
    for t in range(40):
        e = experts[t % 2]
        d = Decision(
            policy="gate",
            policy_version="0",
            kind="router",
            actions=tuple(experts),
            action=e,
            action_dist=(0.5, 0.5),
            pscore=0.5,
            features=(1.0, 0.0),
            trace=(TraceStep("expert", e, math.log(0.5)),),
        )
        decisions.append(d)
        good = 5 if e == "precedent" else 1
        feedback.append(Feedback(decision_id=d.id, kind="multilevel", scale=(1, 5), scores={"clarity": good}))
    write_decisions(store, decisions)
    write_feedback(store, feedback)
    out = tmp_path / "gate"
    args = ["router", "train-gating", "-p", "gate", "-o", str(out), "--features", "numeric", "--epochs", "20"]
    res = runner.invoke(app, [*args, "--lr", "0.05", "--hidden", "4"])
    assert res.exit_code == 0, res.output
    assert "trained the gating policy on 40 logged decisions" in res.output
    gate = GatingPolicy.load(out)
    assert gate.probs([[1.0, 0.0]])[0, 1] > 0.6  # precedent, the expert the feedback scored higher
    assert read_runs(store, policy="gate")[0].learner == "gating.reinforce"
