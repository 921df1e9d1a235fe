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
3. Hyperparameter sweep. ``--sweep-texts`` intent texts logged with a label correction each; a
   ``--trials``-trial sweep of the supervised learner (lr log-uniform, hidden width, epochs) with
   ``rewardloop.loop.sweep.run_sweep``: every trial fitted on the training split, scored on the
   validation split, recorded as a TrainingRun; on the local backend and as Ray Tune trials (2 at
   once, one CPU each, each worker process reused from trial to trial). The trials and their scores
   must be equal. Reported: seconds of each and their ratio, the local seconds per trial, Ray's
   start and Ray's overhead over ideal scaling (local time / workers); then ``--probe-trials``
   empty trials (read the job, train nothing) on Ray, with a fresh worker each and with reused
   workers: the seconds a trial costs beyond its training either way, and the CPU a worker spends
   to start (Ray's worker, then torch and rewardloop imported to read the job).
4. Partitioned replay. ``--replay-rounds`` logged rounds (32 features, 10 arms, half from another
   policy, so importance-weighted) replayed into LinUCB in one pass and in ``--partitions`` parts as
   Ray tasks; the states must agree to 1e-9. Reported: seconds of each, the largest difference and
   the local **nanoseconds per (round × feature²)**, the cost of the ridge sums.

Run: ``PYTHONPATH=src python benchmarks/ray_jobs.py [--texts 2000] [--workers 2] [--jobs sweep,replay]``
(``--jobs``: which of backfill, bootstrap, sweep, replay to run; all by default). On this shared
2-core machine Ray cannot beat one process by much: the point is the equality and the overheads. The
last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from rewardloop.config import ComputeConfig, parse_config
from rewardloop.datasets.intents import load_intent_pairs
from rewardloop.evaluation.ope import evaluate_off_policy
from rewardloop.learners.bandits import LinUCB
from rewardloop.learners.bandits.replay import LoggedRows
from rewardloop.learners.search_space import parse_space
from rewardloop.loop.compute import ComputeBackend, backfill_embeddings, read_embeddings
from rewardloop.loop.sweep import SweepJob, SweepResult, prepare_job, run_sweep
from rewardloop.loop.training import read_window, resolve_plan, start_policy
from rewardloop.store import Store, write_decisions, write_feedback
from rewardloop.types.records import Decision, Feedback


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


def _sweep_store(folder: Path, n_texts: int) -> tuple[Store, list[str]]:
    pairs = load_intent_pairs()
    rng = np.random.default_rng(0)
    chosen = [pairs[i] for i in rng.choice(len(pairs), size=min(n_texts, len(pairs)), replace=False)]
    labels = sorted({label for _, label in chosen})
    store = Store.open(f"sqlite:///{folder / 'sweep.db'}")
    uniform = tuple(1 / len(labels) for _ in labels)
    logged: dict[str, Any] = {"policy": "intent", "policy_version": "1", "kind": "classifier"}
    logged |= {"actions": tuple(labels), "action": labels[0], "action_dist": uniform, "pscore": uniform[0]}
    # Fixed ids: the validation split hashes them, so every run splits alike.
    decisions = [Decision(**logged, id=f"{i:032x}", text=text) for i, (text, _) in enumerate(chosen)]
    write_decisions(store, decisions)
    write_feedback(
        store,
        [
            Feedback(decision_id=d.id, kind="correction", label=label)
            for d, (_, label) in zip(decisions, chosen, strict=True)
        ],
    )
    return store, labels


def _empty_trial(job: SweepJob, i: int) -> dict[str, Any]:
    """A trial that reads the job and trains nothing: its process and the CPU that process had used
    before it (a fresh worker's start: Ray's worker, then torch and rewardloop imported to read the job)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"trial": i, "pid": os.getpid(), "cpu_s": usage.ru_utime + usage.ru_stime}


def _tune_overheads(backend: ComputeBackend, job: SweepJob, n_probe: int) -> dict[str, Any]:
    """Seconds a Tune trial costs beyond its training, with a fresh worker a trial and with reused ones."""
    out: dict[str, Any] = {}
    for label, reuse in (("fresh", False), ("reused", True)):
        t0 = time.perf_counter()
        probes = backend.map_trials(_empty_trial, job, n_probe, reuse_workers=reuse)
        out[f"sweep_tune_trial_overhead_s_{label}"] = round((time.perf_counter() - t0) / n_probe, 2)
        first: dict[int, float] = {}
        for p in probes:
            first.setdefault(p["pid"], p["cpu_s"])
        out[f"sweep_tune_worker_processes_{label}"] = len(first)
        if not reuse:
            out["sweep_worker_start_cpu_s"] = round(float(np.median(list(first.values()))), 2)
    return out


def sweep(folder: Path, n_texts: int, n_trials: int, workers: int, n_probe: int) -> dict[str, Any]:
    store, labels = _sweep_store(folder, n_texts)
    results: dict[str, SweepResult] = {}
    out: dict[str, Any] = {}
    for name in ("local", "ray"):
        cfg = parse_config(
            {
                "policies": [{"name": "intent", "kind": "classifier", "labels": labels}],
                "training": {"learner": "supervised", "output_dir": str(folder / name), "batch_size": 32},
            },
            "bench",
        )
        plan = resolve_plan(cfg, folder)
        batch, policy = read_window(store, plan), start_policy(plan)
        space = parse_space(
            type(plan.config), {"lr": "loguniform:1e-3:3e-2", "hidden": "choice:0,64", "epochs": "int:5:20"}
        )
        t0 = time.perf_counter()
        with ComputeBackend(ComputeConfig(backend=name, workers=workers)) as backend:
            if name == "ray":
                out["sweep_ray_init_s"] = round(time.perf_counter() - t0, 2)
            results[name] = run_sweep(store, plan, batch, policy, space, backend, n_trials=n_trials, seed=0)
            if name == "ray" and n_probe:
                job = prepare_job(
                    plan,
                    batch,
                    policy,
                    space.sample(n_probe, 0),
                    validation_share=0.2,
                    seed=0,
                    threads=1,
                    training_dump={},
                    sweep_config={},
                )
                out |= _tune_overheads(backend, job, n_probe)
    store.close()
    local, on_ray = results["local"], results["ray"]
    same = [t.hyperparameters for t in local.trials] == [t.hyperparameters for t in on_ray.trials]
    return {
        "sweep_trials": n_trials,
        "sweep_examples": local.n_train + local.n_validation,
        "sweep_equal": same and local.scores() == on_ray.scores() and local.best == on_ray.best,
        "sweep_best_score": local.best_trial.score,
        "sweep_local_s": round(local.seconds, 2),
        "sweep_ray_s": round(on_ray.seconds, 2),
        "sweep_ray_vs_local": round(on_ray.seconds / local.seconds, 2),
        "sweep_local_s_per_trial": round(local.seconds / n_trials, 3),
        "sweep_ray_overhead_s": round(on_ray.seconds - local.seconds / workers, 2),
        **out,
        "sweep_load_average": round(os.getloadavg()[0], 2),
    }


def replay(n_rounds: int, partitions: int, dim: int = 32, n_arms: int = 10) -> dict[str, Any]:
    rng = np.random.default_rng(1)
    arms = [f"arm{k}" for k in range(n_arms)]
    X = rng.normal(size=(n_rounds, dim))
    rows = LoggedRows(
        X=X,
        arms=[arms[k] for k in rng.integers(0, n_arms, n_rounds)],
        rewards=rng.random(n_rounds),
        pscore=rng.uniform(0.05, 0.2, n_rounds),
        n_actions=np.full(n_rounds, float(n_arms)),
        policies=["old" if i % 2 else "router" for i in range(n_rounds)],
        categories=[None] * n_rounds,
    )
    t0 = time.perf_counter()
    one = LinUCB(arms, dim=dim).fit(rows, own_policy="router")
    local_s = time.perf_counter() - t0
    with ComputeBackend(ComputeConfig(backend="ray")) as backend:
        t0 = time.perf_counter()
        parts = LinUCB(arms, dim=dim).fit(
            rows, own_policy="router", partitions=partitions, map_parts=backend.map_parts
        )
        ray_s = time.perf_counter() - t0
    diff = max(
        float(np.max(np.abs(parts.A_inv_ - one.A_inv_))), float(np.max(np.abs(parts.theta_ - one.theta_)))
    )
    return {
        "replay_rounds": n_rounds,
        "replay_partitions": partitions,
        "replay_equal": diff <= 1e-9 and parts.stats_.to_dict() == one.stats_.to_dict(),
        "replay_max_abs_diff": diff,
        "replay_local_s": round(local_s, 3),
        "replay_ray_s": round(ray_s, 3),
        "replay_ns_per_round_feature2": round(1e9 * local_s / (n_rounds * (dim + 1) ** 2), 3),
    }


#: option → (default, help)
OPTIONS = {
    "--texts": (2000, "logged texts to embed"),
    "--workers": (2, "Ray actors"),
    "--rounds": (100_000, "logged rounds of the bootstrap"),
    "--resamples": (1000, "bootstrap resamples"),
    "--partitions": (4, "bootstrap and replay partitions"),
    "--sweep-texts": (600, "logged, labelled texts of the sweep"),
    "--trials": (16, "sweep trials"),
    "--replay-rounds": (200_000, "logged rounds of the partitioned replay"),
    "--probe-trials": (4, "empty Tune trials timed with fresh and with reused workers (0: none)"),
}


def _run_backfill(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        out = backfill(Path(tmp), args.texts, args.workers)
    ideal = f"{out['embed_ray_overhead_s']} s over ideal scaling"
    print(
        f"backfill of {out['texts']} texts: local {out['embed_local_s']} s "
        f"({out['embed_ms_per_text_per_core']} ms a text on one core), Ray {out['embed_ray_s']} s on "
        f"{args.workers} actors (init {out['ray_init_s']} s, {ideal}); equal: {out['embed_equal']}"
    )
    return out


def _run_bootstrap(args: argparse.Namespace) -> dict[str, Any]:
    out = bootstrap(args.rounds, args.resamples, args.partitions)
    print(
        f"bootstrap {args.rounds} rounds × {args.resamples} resamples in {args.partitions} parts: local "
        f"{out['bootstrap_local_s']} s, Ray {out['bootstrap_ray_s']} s; equal: {out['bootstrap_equal']}"
    )
    return out


def _run_sweep(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        out = sweep(Path(tmp), args.sweep_texts, args.trials, args.workers, args.probe_trials)
    print(
        f"sweep of {args.trials} trials on {out['sweep_examples']} examples: local {out['sweep_local_s']} s "
        f"({out['sweep_local_s_per_trial']} s a trial), Ray Tune {out['sweep_ray_s']} s on {args.workers} "
        f"workers ({out['sweep_ray_vs_local']}× local; Ray start {out['sweep_ray_init_s']} s, "
        f"{out['sweep_ray_overhead_s']} s over ideal scaling); equal: {out['sweep_equal']}"
    )
    if args.probe_trials:
        print(
            f"  Tune's cost of an empty trial (reads the job, trains nothing), {args.probe_trials} trials: "
            f"{out['sweep_tune_trial_overhead_s_fresh']} s with a fresh worker each "
            f"({out['sweep_tune_worker_processes_fresh']} processes, each "
            f"{out['sweep_worker_start_cpu_s']} s of CPU to start), "
            f"{out['sweep_tune_trial_overhead_s_reused']} s with reused workers "
            f"({out['sweep_tune_worker_processes_reused']} processes)"
        )
    return out


def _run_replay(args: argparse.Namespace) -> dict[str, Any]:
    out = replay(args.replay_rounds, args.partitions)
    print(
        f"replay of {args.replay_rounds} rounds into LinUCB: one pass {out['replay_local_s']} s, "
        f"{args.partitions} Ray tasks {out['replay_ray_s']} s; max |diff| {out['replay_max_abs_diff']:.1e}, "
        f"equal to 1e-9: {out['replay_equal']}"
    )
    return out


JOBS = {"backfill": _run_backfill, "bootstrap": _run_bootstrap, "sweep": _run_sweep, "replay": _run_replay}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for flag, (default, help_text) in OPTIONS.items():
        parser.add_argument(flag, type=int, default=default, help=help_text)
    parser.add_argument(
        "--jobs", default=",".join(JOBS), help=f"comma-separated jobs to run, of {', '.join(JOBS)}"
    )
    args = parser.parse_args()
    jobs = [j.strip() for j in args.jobs.split(",") if j.strip()]
    unknown = [j for j in jobs if j not in JOBS]
    if unknown or not jobs:
        parser.error(f"--jobs: unknown job {unknown[0]!r}" if unknown else "--jobs: name at least one job")
    print(f"machine load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (timings scale with it)")
    out: dict[str, Any] = {"started_utc": datetime.now(UTC).isoformat(timespec="seconds")}
    for job in jobs:
        out |= JOBS[job](args)
    out |= {"workers": args.workers, "load_average": round(os.getloadavg()[0], 2)}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
