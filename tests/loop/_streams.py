"""Seeded outcome streams served through an experiment (shared by the experiment and canary tests)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rewardloop.loop.experiments import Experiments
from rewardloop.registry import Registry
from rewardloop.store import Store, write_decisions, write_rewards
from rewardloop.types import Decision, Reward


def serve_batch(
    ex: Experiments, name: str, rates: dict[str, float], rng: np.random.Generator, batch: int, latency: bool
) -> None:
    """``batch`` requests of random users through experiment ``name``; each variant's reward is 1 with
    probability ``rates[variant]`` (spec ``ctr``); ``latency``: log a N(20, 2) ms latency too."""
    exp = ex.get(name)
    decisions, rewards = [], []
    for uid in rng.integers(0, 50_000, size=batch):
        a = ex.assign(exp, f"user-{uid}")
        d = a.tag(
            Decision(
                policy="intent",
                policy_version=a.version,
                kind="classifier",
                actions=("on", "off"),
                action="on",
                action_dist=(0.9, 0.1),
                pscore=0.9,
                latency_ms=float(rng.normal(20, 2)) if latency else None,
            )
        )
        decisions.append(d)
        rewards.append(Reward(d.id, "ctr", 1, float(rng.random() < rates[a.variant])))
    write_decisions(ex.store, decisions)
    write_rewards(ex.store, rewards)


def seeded_registry(store: Store, tmp_path: Path, versions: tuple[str, ...]) -> Registry:
    """A registry of policy ``intent`` with one tiny artifact per version; the first is the champion."""
    reg = Registry(store, tmp_path / "registry")
    for i, v in enumerate(versions):
        art = tmp_path / f"art{i}"
        art.mkdir()
        (art / "state.json").write_text(f'{{"v": "{v}"}}')
        reg.register("intent", art, kind="classifier", version=v)
    reg.activate(f"intent@{versions[0]}", reason="seed model")
    return reg
