"""The online learner: each reward once, in log order, revised and withdrawn exactly, resumed after a
kill at every step, and equal to an offline replay of the same log to 1e-9 (SQLite and PostgreSQL)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from tests.loop._online import ARMS, POLICY, SPEC, champion, decisions, thumbs

from rewardloop.config.faults import EXIT_CODE
from rewardloop.loop.online_learner import (
    OnlineError,
    OnlineLearner,
    max_abs_diff,
    published_router,
    replay_lineage,
)
from rewardloop.store import Store, write_feedback
from rewardloop.store.online import (
    LOG_START,
    OnlineConflict,
    applied_count,
    read_events,
    read_lineage,
    read_state,
)
from rewardloop.store.voids import void_feedback
from rewardloop.types import Feedback


def learner(store: Store, registry, **kw) -> OnlineLearner:  # type: ignore[no-untyped-def]
    return OnlineLearner(store, registry, POLICY, SPEC, **{"publish_every": 25, **kw})


def replay_diff(store: Store, registry) -> tuple[float, int]:  # type: ignore[no-untyped-def]
    replayed, n = replay_lineage(store, registry, POLICY, "1.0.0", SPEC, {})
    return max_abs_diff(published_router(store, POLICY, "1.0.0"), replayed), n


def test_every_reward_once_and_the_state_equals_a_replay(store: Store, tmp_path: Path):
    registry = champion(store, tmp_path)
    ds = decisions(store, 120)
    thumbs(store, ds[:80])
    lrn = learner(store, registry)
    published = []
    summary = lrn.run(until_idle=True, on_publish=published.append)
    assert summary.events == 80 and summary.changed == 80 and summary.rewards == 80
    assert [p.state_version for p in published] == list(range(1, len(published) + 1))
    assert sum(p.changed for p in published) == 80
    assert applied_count(store, POLICY, "1.0.0") == 80
    diff, n = replay_diff(store, registry)
    assert n == 80 and diff < 1e-9
    # More feedback later: the learner goes on from its position, not from the start.
    thumbs(store, ds[80:], seed=5)
    again = learner(store, registry).run(until_idle=True)
    assert again.events == 40 and again.rewards == 120
    assert replay_diff(store, registry)[0] < 1e-9
    state = published_router(store, POLICY, "1.0.0")
    assert state.n_pulls_.sum() == 120  # each reward counted once


def test_more_feedback_revises_and_a_void_withdraws_the_reward_exactly(store: Store, tmp_path: Path):
    registry = champion(store, tmp_path)
    ds = decisions(store, 30)
    first = thumbs(store, ds)
    learner(store, registry).run(until_idle=True)
    # A second rater disagrees on ten decisions: their rewards change from 1 or 0 to 0.5.
    write_feedback(
        store,
        [
            Feedback(
                decision_id=f.decision_id, kind="rating", value=-f.value, scale=(-1.0, 1.0), rater_id="b"
            )
            for f in first[:10]
        ],
    )
    void_feedback(store, first[20].id, reason="spam", actor="test")
    summary = learner(store, registry).run(until_idle=True)
    assert summary.events == 11 and summary.changed == 11 and summary.rewards == 29
    diff, n = replay_diff(store, registry)
    assert n == 29 and diff < 1e-9
    assert published_router(store, POLICY, "1.0.0").n_pulls_.sum() == 29
    row = published_router(store, POLICY, "1.0.0").leaderboard()
    assert sum(r.pulls for r in row) == 29


def test_events_are_read_in_log_order_from_a_position(store: Store, tmp_path: Path):
    champion(store, tmp_path)
    ds = decisions(store, 10)
    thumbs(store, ds[:4])
    thumbs(store, ds[4:], seed=3)
    events = read_events(store, POLICY, "1.0.0", LOG_START, limit=100)
    assert len(events) == 10
    positions = [e.position for e in events]
    assert positions == sorted(positions) and len(set(positions)) == 10
    assert read_events(store, POLICY, "1.0.0", positions[5], limit=100) == events[6:]
    assert read_events(store, POLICY, "other", LOG_START) == []


def test_a_second_learner_on_the_same_lineage_is_refused(store: Store, tmp_path: Path):
    registry = champion(store, tmp_path)
    ds = decisions(store, 10)
    one, two = learner(store, registry), learner(store, registry)
    thumbs(store, ds)
    one.step()
    two.step()
    assert one.publish() is not None
    with pytest.raises(OnlineConflict, match="another learner published"):
        two.publish()
    lineage = read_lineage(store, POLICY, "1.0.0")
    assert lineage is not None and lineage.state_version == 1 and lineage.rewards == 10


def test_a_version_that_is_not_a_bandit_router_is_refused(store: Store, tmp_path: Path):
    registry = champion(store, tmp_path)
    with pytest.raises(OnlineError, match=r"route@2.0.0 is not registered \(known: 1.0.0\)"):
        learner(store, registry, version="2.0.0")
    (tmp_path / "gate").mkdir()
    (tmp_path / "gate" / "gating.json").write_text("{}")
    registry.register(POLICY, tmp_path / "gate", "router", version="2.0.0")
    with pytest.raises(OnlineError, match=r"route@2\.0\.0 is not a bandit router"):
        learner(store, registry, version="2.0.0")


def test_publish_cadence_by_count(sqlite_store: Store, tmp_path: Path):
    registry = champion(sqlite_store, tmp_path)
    thumbs(sqlite_store, decisions(sqlite_store, 100))
    published: list = []
    learner(sqlite_store, registry, publish_every=10, batch_size=10, publish_interval_s=60).run(
        until_idle=True, on_publish=published.append
    )
    assert [p.changed for p in published] == [10] * 10


# ------------------------------------------------------------------------------------- crash safety

FAULTS = ["online_read", "online_applied", "online_publishing", "online_published"]


def _learn(cwd: Path, fault: str | None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(["src", os.environ.get("PYTHONPATH", "")])}
    env.pop("REWARDLOOP_FAULT", None)
    if fault is not None:
        env["REWARDLOOP_FAULT"] = fault
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "rewardloop",
            "learn",
            "--policy",
            POLICY,
            "--config",
            str(cwd / "rl.yaml"),
            "--until-idle",
            "--every",
            "7",
            "--batch",
            "9",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=Path(__file__).resolve().parents[2],
        timeout=120,
    )


@pytest.mark.parametrize("fault", FAULTS)
def test_a_learner_killed_at_any_step_resumes_with_each_reward_once(store: Store, tmp_path: Path, fault: str):
    url = store.engine.url.render_as_string(hide_password=False)
    registry = champion(store, tmp_path)
    (tmp_path / "rl.yaml").write_text(
        f"store:\n  url: '{url}'\nrewards:\n  - name: thumbs\n    function: accuracy\n"
        f"training:\n  reward_spec: thumbs\nexperiments:\n  registry_root: '{registry.root}'\n"
        f"policies:\n  - name: {POLICY}\n    kind: router\n    labels: {ARMS}\n"
    )
    ds = decisions(store, 40)
    thumbs(store, ds)
    killed = _learn(tmp_path, fault)
    assert killed.returncode == EXIT_CODE, killed.stderr
    before = read_lineage(store, POLICY, "1.0.0")
    assert before is not None
    # Killed inside the publish transaction: nothing of that publish is stored.
    assert before.state_version == (1 if fault == "online_published" else 0)
    done = _learn(tmp_path, None)
    assert done.returncode == 0, done.stderr
    assert "40 rewarded decisions" in done.stdout
    lineage = read_lineage(store, POLICY, "1.0.0")
    assert lineage is not None and lineage.rewards == 40 and lineage.events == 40
    assert applied_count(store, POLICY, "1.0.0") == 40
    state = read_state(store, POLICY, "1.0.0")
    assert state is not None and state.rewards == 40
    assert published_router(store, POLICY, "1.0.0").n_pulls_.sum() == 40
    assert replay_diff(store, registry)[0] < 1e-9
    assert np.isfinite(published_router(store, POLICY, "1.0.0").theta_).all()
