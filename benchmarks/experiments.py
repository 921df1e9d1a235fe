"""Experiments and A/B statistics: error rates under peeking, seeded canary outcomes, and speed.

Run: ``PYTHONPATH=src python benchmarks/experiments.py [--quick]``. Prints readable figures, then one
JSON line with ``msprt_fpr``, ``naive_z_fpr``, ``msprt_power``, ``good_promoted``, ``bad_rolled_back``,
``bad_max_share``, ``assign_us``, ``verdict_ms``, ``verdict_python_ms`` and ``verdict_speedup``.

1. Under H0 (both arms 20%), each simulated experiment is checked after every batch of 100 per arm,
   40 looks: how often does the mSPRT (always-valid) reject, vs a naive z-test at every look?
   And how often does the mSPRT detect a +5-point lift within those 40 looks (power)?
2. Seeded canaries on SQLite (good: 30% → 40%; bad: 40% → 25%), through ``Experiments.advance``
   with the registry: share promoted / rolled back, and the largest share a bad challenger reached.
3. Speed: one hash assignment; one verdict over 100k logged decisions (one SQL aggregate) against
   the reference of reading the rows back and aggregating in Python, measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from rewardloop.config.sections import ExperimentsConfig
from rewardloop.evaluation.abtest import msprt_proportions, two_proportion_z
from rewardloop.loop.assignment import stage_shares
from rewardloop.loop.experiments import Experiments, assign_variant
from rewardloop.registry import Registry
from rewardloop.store import Store, read_decisions, read_rewards, write_decisions, write_rewards
from rewardloop.types import Decision, Experiment, Reward


def peeking(p_a: float, p_b: float, n_sims: int, looks: int = 40, batch: int = 100, seed: int = 0):
    rng = np.random.default_rng(seed)
    s_a = rng.binomial(batch, p_a, size=(n_sims, looks)).cumsum(1)  # (n_sims, looks)
    s_b = rng.binomial(batch, p_b, size=(n_sims, looks)).cumsum(1)
    seq = naive = 0
    for i in range(n_sims):
        prev, hit_seq, hit_naive = 1.0, False, False
        for k in range(looks):
            n = batch * (k + 1)
            r = msprt_proportions(int(s_a[i, k]), n, int(s_b[i, k]), n, tau=0.05, prev_p=prev)
            prev, hit_seq = r.p_value, hit_seq or r.reject
            hit_naive = hit_naive or two_proportion_z(int(s_a[i, k]), n, int(s_b[i, k]), n).p_value < 0.05
        seq += hit_seq
        naive += hit_naive
    return seq / n_sims, naive / n_sims


def _registry(store: Store, root: Path) -> Registry:
    reg = Registry(store, root / "registry")
    for v in ("1.0.0", "1.1.0"):
        art = root / f"art-{v}"
        art.mkdir()
        (art / "state.json").write_text(json.dumps({"v": v}))
        reg.register("intent", art, kind="classifier", version=v)
    reg.activate("intent@1.0.0")
    return reg


def _decision(version: str, rng: np.random.Generator) -> Decision:
    return Decision(
        policy="intent",
        policy_version=version,
        kind="classifier",
        actions=("on", "off"),
        action="on",
        action_dist=(0.9, 0.1),
        pscore=0.9,
        latency_ms=float(rng.normal(20, 2)),
    )


def canary(rates: dict[str, float], seed: int, batch: int = 500) -> tuple[str, float, int]:
    """One seeded canary on a fresh SQLite store: (final action, largest challenger share, decisions)."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        store = Store.open(f"sqlite:///{root / 'rl.db'}")
        ex = Experiments(store, _registry(store, root), ExperimentsConfig(min_samples=100, max_samples=3000))
        ex.start("canary", "intent", challenger="1.1.0", salt=f"seed-{seed}")
        rng = np.random.default_rng(seed)
        top, served, action = 0.05, 0, "held"
        for _ in range(60):
            exp = ex.get("canary")
            ds, rs = [], []
            for uid in rng.integers(0, 100_000, size=batch):
                a = ex.assign(exp, f"user-{uid}")
                d = a.tag(_decision(a.version, rng))
                ds.append(d)
                rs.append(Reward(d.id, "ctr", 1, float(rng.random() < rates[a.variant])))
            write_decisions(store, ds)
            write_rewards(store, rs)
            served += batch
            step = ex.advance("canary")
            action = step.action
            top = max(top, step.experiment.shares["challenger"] if action != "promoted" else 0.5)
            if action in ("promoted", "rolled_back"):
                break
        store.close()
        return action, top, served


def verdict_speed(n: int) -> tuple[float, float]:
    """Median ms of one verdict over n logged decisions, and of the read-back-in-Python reference."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        store = Store.open(f"sqlite:///{root / 'rl.db'}")
        ex = Experiments(store, _registry(store, root), ExperimentsConfig())
        exp = ex.start("speed", "intent", challenger="1.1.0", salt="s", ramp=[0.5, 1.0])
        rng = np.random.default_rng(0)
        ds, rs = [], []
        for i in range(n):
            a = ex.assign(exp, f"u{i}")
            d = a.tag(_decision(a.version, rng))
            ds.append(d)
            rs.append(Reward(d.id, "ctr", 1, float(rng.random() < 0.3)))
        write_decisions(store, ds)
        write_rewards(store, rs)
        sql, ref = [], []
        for _ in range(5):
            t = time.perf_counter()
            ex.evaluate("speed")
            sql.append((time.perf_counter() - t) * 1e3)
            t = time.perf_counter()
            batch = read_decisions(store, policy="intent")
            rewards = {r.decision_id: r.value for r in read_rewards(store, "ctr", 1, policy="intent")}
            counts: dict[str, list[float]] = {}
            for d in batch:
                counts.setdefault(d.variant or "", []).append(rewards.get(d.id, float("nan")))
            ref.append((time.perf_counter() - t) * 1e3)
        store.close()
        return statistics.median(sql), statistics.median(ref)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer simulations (a smoke run)")
    args = ap.parse_args()
    n_sims, n_seeds, n_rows = (300, 3, 20_000) if args.quick else (2000, 10, 100_000)

    t0 = time.perf_counter()
    fpr_seq, fpr_naive = peeking(0.2, 0.2, n_sims)
    power, _ = peeking(0.2, 0.25, n_sims // 2, seed=1)
    print(f"peeking, 40 looks x 100/arm, {n_sims} null simulations ({time.perf_counter() - t0:.1f} s):")
    print(
        f"  false-positive rate  mSPRT {fpr_seq:.3f}   naive z at every look {fpr_naive:.3f}   (alpha 0.05)"
    )
    print(f"  power at +5 points   mSPRT {power:.3f}")

    good = [canary({"champion": 0.30, "challenger": 0.40}, s) for s in range(n_seeds)]
    bad = [canary({"champion": 0.40, "challenger": 0.25}, s) for s in range(n_seeds)]
    good_promoted = sum(a == "promoted" for a, _, _ in good) / n_seeds
    bad_rolled = sum(a == "rolled_back" for a, _, _ in bad) / n_seeds
    bad_top = max(t for _, t, _ in bad)
    print(f"seeded canaries on SQLite, {n_seeds} seeds each:")
    good_n = statistics.median(n for *_, n in good)
    bad_n = statistics.median(n for *_, n in bad)
    print(f"  better challenger promoted {good_promoted:.0%}  (median {good_n:.0f} decisions)")
    print(
        f"  worse challenger rolled back {bad_rolled:.0%}  (median {bad_n:.0f} decisions, "
        f"largest share reached {bad_top:.0%})"
    )

    e = Experiment(
        name="e",
        policy="p",
        variants={"champion": "1", "challenger": "2"},
        shares=stage_shares(["champion", "challenger"], 0.25),
        salt="s",
    )
    ids = [f"user-{i}" for i in range(200_000)]
    t = time.perf_counter()
    for u in ids:
        assign_variant(e, u)
    assign_us = (time.perf_counter() - t) / len(ids) * 1e6
    print(f"assignment: {assign_us:.2f} µs per unit (sha256, pure Python)")

    sql_ms, ref_ms = verdict_speed(n_rows)
    print(
        f"verdict over {n_rows:,} logged decisions: {sql_ms:.1f} ms (one SQL aggregate) vs {ref_ms:.1f} ms "
        f"reading rows back into Python: {ref_ms / sql_ms:.1f}x"
    )
    print(
        json.dumps(
            {
                "msprt_fpr": fpr_seq,
                "naive_z_fpr": fpr_naive,
                "msprt_power": power,
                "good_promoted": good_promoted,
                "bad_rolled_back": bad_rolled,
                "bad_max_share": bad_top,
                "assign_us": round(assign_us, 3),
                "verdict_ms": round(sql_ms, 2),
                "verdict_python_ms": round(ref_ms, 2),
                "verdict_speedup": round(ref_ms / sql_ms, 2),
            }
        )
    )


if __name__ == "__main__":
    sys.exit(main())
