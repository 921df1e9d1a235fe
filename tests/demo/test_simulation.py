from __future__ import annotations

import numpy as np
import pytest

from rewardloop.demo.simulation import (
    DEFAULT_AGENTS,
    FeedbackSimulator,
    Rater,
    agent_reward,
    reviewer_feedback,
)
from rewardloop.types import Decision


def decisions(n: int, action: str = "on") -> list[Decision]:
    dist = (0.9, 0.1) if action == "on" else (0.1, 0.9)
    return [
        Decision(
            id=f"d{i}",
            policy="p",
            policy_version="1",
            kind="classifier",
            actions=("on", "off"),
            action=action,
            action_dist=dist,
            pscore=0.9,
        )
        for i in range(n)
    ]


def test_a_perfect_rater_tells_the_truth_and_corrects_every_mistake():
    sim = FeedbackSimulator([Rater("ann", 0.9, reliability=1.0, correct_rate=1.0)], rate=1.0, seed=0)
    ds = decisions(4)
    truth = {"d0": "on", "d1": "off", "d2": "on", "d3": "off"}
    fb = sim.feedback(ds, truth)
    ratings = {f.decision_id: f.value for f in fb if f.kind == "rating"}
    assert ratings == {"d0": 1.0, "d1": -1.0, "d2": 1.0, "d3": -1.0}
    assert {(f.decision_id, f.label) for f in fb if f.kind == "correction"} == {("d1", "off"), ("d3", "off")}
    assert all(f.authority == 0.9 and f.rater_id == "ann" for f in fb)


def test_reliability_and_rate_are_honoured_statistically():
    sim = FeedbackSimulator([Rater("x", 0.5, reliability=0.8)], rate=0.5, seed=1)
    ds = decisions(4000)
    fb = sim.feedback(ds, {d.id: "on" for d in ds})
    assert len(fb) / 4000 == pytest.approx(0.5, abs=0.03)
    assert np.mean([f.value == 1.0 for f in fb]) == pytest.approx(0.8, abs=0.03)


def test_same_seed_same_feedback():
    ds = decisions(50)
    truth = {d.id: "off" for d in ds}
    a = FeedbackSimulator(seed=3).feedback(ds, truth)
    b = FeedbackSimulator(seed=3).feedback(ds, truth)
    assert [(f.decision_id, f.kind, f.value, f.rater_id) for f in a] == [
        (f.decision_id, f.kind, f.value, f.rater_id) for f in b
    ]


def test_reviewer_and_agents():
    f = reviewer_feedback(decisions(1)[0], "off")
    assert (f.kind, f.label, f.authority) == ("correction", "off", 1.0)
    rng = np.random.default_rng(0)
    hybrid = DEFAULT_AGENTS[2]
    wins = np.mean([agent_reward(hybrid, "timers", rng) for _ in range(2000)])
    assert wins == pytest.approx(0.9, abs=0.03)
    assert hybrid.success_probability("unknown") == 0.6
