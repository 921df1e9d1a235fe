"""Shared set-up of the online-learning tests: a registered LinUCB champion and a stream of its
decisions with feedback (thumbs), written the way the service writes them."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rewardloop.learners.bandits import LinUCB
from rewardloop.registry import Registry
from rewardloop.rewards import RewardSpec
from rewardloop.store import Store, write_decisions, write_feedback
from rewardloop.types import Decision, Feedback, new_id

POLICY = "route"
ARMS = ["naive", "agentic", "web"]
DIM = 3
SPEC = RewardSpec("thumbs", function="accuracy")


def champion(store: Store, root: Path) -> Registry:
    """A registry under ``root`` whose ``route`` champion (1.0.0) is a LinUCB at its priors."""
    registry = Registry(store, root / "registry")
    router = LinUCB(ARMS, dim=DIM, alpha=0.5, priors={"agentic": (0.6, 2)}, random_state=0)
    router.reset()
    folder = router.save(root / "artifact")
    registry.register(POLICY, folder, "router", version="1.0.0")
    registry.activate(f"{POLICY}@1.0.0", actor="test", reason="first")
    return registry


def decisions(store: Store, n: int, seed: int = 0, version: str = "1.0.0") -> list[Decision]:
    """``n`` logged decisions of ``route``@``version`` (uniform over the arms, numeric contexts)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        x = rng.normal(size=DIM)
        a = int(rng.integers(len(ARMS)))
        out.append(
            Decision(
                policy=POLICY,
                policy_version=version,
                kind="router",
                actions=tuple(ARMS),
                action=ARMS[a],
                action_dist=(1 / 3, 1 / 3, 1 / 3),
                pscore=1 / 3,
                features=tuple(float(v) for v in x),
                metadata={"category": "billing" if i % 2 else "tech"},
            )
        )
    write_decisions(store, out)
    return out


def thumbs(store: Store, ds: list[Decision], seed: int = 0, rater: str | None = None) -> list[Feedback]:
    """One thumbs rating per decision (up more often on ``agentic``), written in one transaction."""
    rng = np.random.default_rng(seed + 1)
    rows = [
        Feedback(
            decision_id=d.id,
            kind="rating",
            value=1.0 if rng.random() < (0.8 if d.action == "agentic" else 0.3) else -1.0,
            scale=(-1.0, 1.0),
            rater_id=rater or new_id(),
            authority=1.0,
        )
        for d in ds
    ]
    write_feedback(store, rows)
    return rows
