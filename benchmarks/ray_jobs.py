"""Offline jobs on local Ray against the local backend, in the same run: equal results, Ray's overheads.

1. Embedding backfill. ``--texts`` Home Assistant intent texts (the bundled data set) logged as decisions
   in a scratch SQLite store; ``backfill_embeddings`` writes their MiniLM embeddings to Parquet on the
   local backend (one process, ``threads_per_worker`` = 1 torch thread) and on a local Ray with
   ``--workers`` actors of 1 thread each (Ray Data ``map_batches``, the encoder loaded once per actor).
   The two files must be equal bitwise. Reported: texts/s of each, the local backend's **milliseconds
   per text on one core** (the per-core cost docs/scaling.md builds on), ``ray.init`` seconds, and Ray's
   overhead: its wall time minus the local time divided by the workers (what ideal scaling would take).
2. Bootstrap OPE. ``--rounds`` logged rounds × 10 actions, IPW/SNIPW/DM/DR with ``--resamples``
   bootstrap resamples in ``--partitions`` parts: local (one after another) and Ray tasks; the reports
   must be equal. Reported: seconds of each and the local **nanoseconds per (round × resample) per
   core**.

Run: ``PYTHONPATH=src python benchmarks/ray_jobs.py [--texts 2000] [--workers 2]``. On this shared
2-core machine Ray cannot beat one process by much: the point is the equality and the overheads. The
last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from rewardloop.config import ComputeConfig
from rewardloop.datasets.intents import load_intent_pairs
from rewardloop.evaluation.ope import evaluate_off_policy
from rewardloop.loop.compute import ComputeBackend, backfill_embeddings, read_embeddings
from rewardloop.store import Store, write_decisions
from rewardloop.types.records import Decision


def _store(folder: Path, n_texts: int) -> Store:
    texts = [text for text, _ in load_intent_pairs()][:n_texts]
    store = Store.open(f"sqlite:///{folder / 'bench.db'}")
    logged = {"policy": "intent", "policy_version": "1", "kind": "classifier", "actions": ("a", "b")}
    write_decisions(
        store, [Decision(**logged, action="a", action_dist=(0.5, 0.5), pscore=0.5, text=t) for t in texts]
    )
    return store


def backfill(folder: Path, n_texts: int, workers: int) -> dict[str, Any]:
    store = _store(folder, n_texts)
    local = backfill_embeddings(store, folder / "local.parquet", ComputeBackend(ComputeConfig()))
    t0 = time.perf_counter()
    with ComputeBackend(ComputeConfig(backend="ray", workers=workers)) as ray_backend:
        init_s = time.perf_counter() - t0
        on_ray = backfill_embeddings(store, folder / "ray.parquet", ray_backend)
    store.close()
    ids, vectors = read_embeddings(local.path)
    ray_ids, ray_vectors = read_embeddings(on_ray.path)
    ideal = local.seconds / workers
    return {
        "texts": local.n_texts,
        "embed_equal": ids == ray_ids and bool(np.array_equal(vectors, ray_vectors)),
        "embed_local_s": round(local.seconds, 2),
        "embed_ray_s": round(on_ray.seconds, 2),
        "embed_local_texts_per_s": round(local.n_texts / local.seconds, 1),
        "embed_ray_texts_per_s": round(on_ray.n_texts / on_ray.seconds, 1),
        "embed_ms_per_text_per_core": round(1000 * local.seconds / local.n_texts, 2),
        "ray_init_s": round(init_s, 2),
        "embed_ray_overhead_s": round(on_ray.seconds - ideal, 2),
    }


def bootstrap(n_rounds: int, n_resamples: int, partitions: int) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    action = rng.integers(0, 10, n_rounds)
    logs = {
        "reward": (rng.random(n_rounds) < 0.1 + 0.05 * action).astype(float),
        "action": action,
        "pscore": np.full(n_rounds, 0.1),
        "action_dist": rng.dirichlet(np.ones(10), n_rounds),
        "estimated_rewards_by_reg_model": rng.random((n_rounds, 10)),
    }
    reports, seconds = [], []
    for name in ("local", "ray"):
        with ComputeBackend(ComputeConfig(backend=name, bootstrap_partitions=partitions)) as backend:
            t0 = time.perf_counter()
            reports.append(
                evaluate_off_policy(
                    **logs, n_bootstrap_samples=n_resamples, random_state=0, resample=backend.bootstrap_means
                )
            )
            seconds.append(time.perf_counter() - t0)
    n_estimators = len(reports[0].estimates)
    return {
        "bootstrap_equal": reports[0] == reports[1],
        "bootstrap_local_s": round(seconds[0], 2),
        "bootstrap_ray_s": round(seconds[1], 2),
        "bootstrap_ns_per_round_resample_per_core": round(
            1e9 * seconds[0] / (n_rounds * n_resamples * n_estimators), 2
        ),
        "bootstrap_rounds": n_rounds,
        "bootstrap_resamples": n_resamples,
        "bootstrap_partitions": partitions,
    }


#: option → (default, help)
OPTIONS = {
    "--texts": (2000, "logged texts to embed"),
    "--workers": (2, "Ray actors"),
    "--rounds": (100_000, "logged rounds of the bootstrap"),
    "--resamples": (1000, "bootstrap resamples"),
    "--partitions": (4, "bootstrap partitions"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for flag, (default, help_text) in OPTIONS.items():
        parser.add_argument(flag, type=int, default=default, help=help_text)
    args = parser.parse_args()
    print(f"machine load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (timings scale with it)")
    with tempfile.TemporaryDirectory() as tmp:
        out = backfill(Path(tmp), args.texts, args.workers)
    print(
        f"backfill of {out['texts']} texts: local {out['embed_local_s']} s "
        f"({out['embed_ms_per_text_per_core']} ms a text on one core), Ray {out['embed_ray_s']} s on "
        f"{args.workers} actors (init {out['ray_init_s']} s, {out['embed_ray_overhead_s']} s over ideal "
        f"scaling); equal: {out['embed_equal']}"
    )
    out |= bootstrap(args.rounds, args.resamples, args.partitions)
    print(
        f"bootstrap {args.rounds} rounds × {args.resamples} resamples in {args.partitions} parts: local "
        f"{out['bootstrap_local_s']} s, Ray {out['bootstrap_ray_s']} s; equal: {out['bootstrap_equal']}"
    )
    out |= {"workers": args.workers, "load_average": round(os.getloadavg()[0], 2)}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
