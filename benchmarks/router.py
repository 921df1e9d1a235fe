"""Router benchmark: supervised-to-bandit replay on scikit-learn's digits and wine, with Vowpal Wabbit
as the reference in the same run.

Each round the router sees one example's features, picks a class (arm) and gets reward 1 if it is the
label, else 0; five passes over one seeded permutation. Reported per router: the progressive mean
reward after pass 1 (r1) and over all five passes (r5), decisions + updates per second, and median /
p99 µs of one act + learn. Then the batch replay (``fit`` on logged rows) against the one-at-a-time
path, and the gating policy's learning curve on digits.

Run: ``PYTHONPATH=src python benchmarks/router.py`` (``--quick`` for one pass and fewer routers).
VW (``pip install 'rewardloop[bench]'``) is skipped with a message if it is not installed.
The last line printed is one JSON object with the headline figures.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from rewardloop.datasets.digits import load_bandit_dataset
from rewardloop.learners.bandits import EpsilonGreedy, LinearThompson, LinUCB, Softmax

SEED = 0


def datasets() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    # digits: pixels scaled to [0, 1]; wine: 13 chemical measures, standardised
    return {name: (d.X, d.y) for name in ("digits", "wine") for d in [load_bandit_dataset(name)]}


def routers(n_classes: int, dim: int, quick: bool) -> dict[str, Any]:
    arms = [str(k) for k in range(n_classes)]
    out = {
        # α and λ picked on digits from a 3×3 grid (α ∈ {0.1, 0.2, 0.3}, λ ∈ {0.5, 1, 2}); all nine
        # give r5 between 0.943 and 0.953, so the figure is not a lucky corner.
        "linucb": LinUCB(arms, dim=dim, alpha=0.2, l2=0.5, random_state=SEED),
        "lin_thompson": LinearThompson(arms, dim=dim, v=0.1, n_draws=64, l2=0.5, random_state=SEED),
        "epsilon_greedy": EpsilonGreedy(arms, dim=dim, epsilon=0.05, l2=0.5, random_state=SEED),
        "softmax": Softmax(arms, dim=dim, temperature=0.05, l2=0.5, random_state=SEED),
    }
    return {"linucb": out["linucb"]} if quick else out


def run_router(router: Any, X: np.ndarray, y: np.ndarray, passes: int) -> dict[str, Any]:
    perm = np.random.default_rng(SEED).permutation(len(y))
    labels = [str(v) for v in y]
    rows = [np.ascontiguousarray(X[j]) for j in range(len(y))]
    per_pass, times = [], np.empty(passes * len(perm), dtype=np.int64)
    log_i, log_a, log_r = [], [], []
    clock = time.perf_counter_ns
    t = 0
    start, cpu_start = time.perf_counter(), time.thread_time()
    for _ in range(passes):
        total = 0.0
        for j in perm:
            x = rows[j]
            t0 = clock()
            d = router.act(x)
            reward = 1.0 if d.arm == labels[j] else 0.0
            router.learn(x, d.arm, reward)
            times[t] = clock() - t0
            t += 1
            total += reward
            log_i.append(j)
            log_a.append(d.index)
            log_r.append(reward)
        per_pass.append(total / len(perm))
    wall, cpu = time.perf_counter() - start, time.thread_time() - cpu_start
    return {
        "r1": per_pass[0],
        "r5": float(np.mean(per_pass)),
        "per_pass": per_pass,
        "decisions_per_s": len(times) / wall,
        "median_us": float(np.median(times)) / 1e3,
        "p99_us": float(np.percentile(times, 99)) / 1e3,
        "cpu_mean_us": cpu / len(times) * 1e6,  # this thread's CPU time per round, loop included
        "log": (np.array(log_i), np.array(log_a), np.array(log_r)),
    }


def run_vw(X: np.ndarray, y: np.ndarray, passes: int, exploration: str) -> dict[str, Any] | None:
    try:
        from vowpalwabbit import Workspace
    except ImportError:
        return None
    k = int(y.max()) + 1
    vw = Workspace(f"--cb_explore_adf {exploration} -q sa --quiet --random_seed {SEED}")
    rng = np.random.default_rng(SEED)
    perm = rng.permutation(len(y))
    # Example text is built once, outside the timed loop, so VW is timed on predict + learn alone.
    shared = ["shared |s " + " ".join(f"p{j}:{v:.6g}" for j, v in enumerate(x) if v) for x in X]
    actions = [f"|a a{a}" for a in range(k)]
    unlabelled = ["\n".join([s, *actions]) for s in shared]
    per_pass, times = [], []
    clock = time.perf_counter_ns
    start = time.perf_counter()
    for _ in range(passes):
        total = 0.0
        for j in perm:
            t0 = clock()
            pmf = np.asarray(vw.predict(unlabelled[j]))
            pmf = pmf / pmf.sum()
            a = int(np.searchsorted(np.cumsum(pmf), rng.random() * 1.0, side="right"))
            a = min(a, k - 1)
            reward = 1.0 if a == y[j] else 0.0
            lines = [shared[j], *actions]
            lines[a + 1] = f"0:{-reward}:{pmf[a]:.6g} {actions[a]}"  # cost = −reward
            vw.learn("\n".join(lines))
            times.append(clock() - t0)
            total += reward
        per_pass.append(total / len(perm))
    wall = time.perf_counter() - start
    vw.finish()
    return {
        "r1": per_pass[0],
        "r5": float(np.mean(per_pass)),
        "decisions_per_s": len(times) / wall,
        "median_us": float(np.median(times)) / 1e3,
        "p99_us": float(np.percentile(times, 99)) / 1e3,
    }


def numpy_op_us() -> float:
    """Median µs of one tiny numpy operation (adding two 10-element arrays) on this machine right now:
    a calibration for the µs figures, whose cost is mostly a couple of dozen such calls."""
    a = np.ones(10)
    clock = time.perf_counter_ns
    times = []
    for _ in range(20000):
        t0 = clock()
        np.add(a, a)
        times.append(clock() - t0)
    return float(np.median(times)) / 1e3


def state_read_us(k: int, dim: int) -> float:
    """Median µs of one BLAS matrix–vector product over a LinUCB state of K arms (K·D² + K·D doubles):
    the floor of a decision, which must read every arm's A⁻¹ once (~2·K·D² FLOP over 8·K·D² bytes)."""
    D = dim + 1
    W, x = np.random.default_rng(SEED).random((k * D + k, D)), np.ones(D)
    clock = time.perf_counter_ns
    times = []
    for _ in range(5000):
        t0 = clock()
        W @ x
        times.append(clock() - t0)
    return float(np.median(times)) / 1e3


def numpy_path_us(X: np.ndarray, y: np.ndarray) -> float:
    """Median µs of one act+learn with the compiled kernels switched off (the NumPy fallback)."""
    from rewardloop.learners.bandits import _kernels

    saved = _kernels.ucb_choice, _kernels.sherman_morrison
    _kernels.ucb_choice = _kernels.sherman_morrison = None
    try:
        return float(run_router(routers(int(y.max()) + 1, X.shape[1], True)["linucb"], X, y, 1)["median_us"])
    finally:
        _kernels.ucb_choice, _kernels.sherman_morrison = saved


def speed_duel(X: np.ndarray, y: np.ndarray, rounds: int = 5) -> dict[str, float]:
    """Decisions+updates per second of LinUCB and of VW's Python API, measured in alternation.

    On a shared machine the load changes from second to second; alternating one pass of each, ``rounds``
    times, exposes both to the same conditions. Rates and the ratio are medians over the rounds.
    """
    k = int(y.max()) + 1
    ours, vw, ratios, ours_us = [], [], [], []
    for _ in range(rounds):
        res = run_router(routers(k, X.shape[1], quick=True)["linucb"], X, y, passes=1)
        ours.append(res["decisions_per_s"])
        ours_us.append(res["median_us"])
        other = run_vw(X, y, 1, "--epsilon 0.05")
        if other is None:
            break
        vw.append(other["decisions_per_s"])
        ratios.append(ours[-1] / vw[-1])
    return {
        "ours_per_s": float(np.median(ours)),
        "ours_median_us": float(np.median(ours_us)),
        "vw_per_s": float(np.median(vw)) if vw else float("nan"),
        "ratio": float(np.median(ratios)) if ratios else float("nan"),
    }


def batch_replay(
    X: np.ndarray, n_classes: int, log: tuple[np.ndarray, np.ndarray, np.ndarray]
) -> dict[str, float]:
    """Fit a LinUCB from the logged (context, arm, reward) rows at once, compare with one-at-a-time."""
    idx, arms, rewards = log
    contexts = X[idx]  # (n_rounds, d)
    names = [str(k) for k in range(n_classes)]

    def fresh() -> LinUCB:
        return LinUCB(names, dim=X.shape[1], alpha=0.2, l2=0.5)

    online = fresh()
    for x, a, r in zip(contexts, arms, rewards, strict=True):
        online.learn(x, names[a], float(r))
    batch = fresh().fit(contexts, arms, rewards)
    max_diff = float(np.abs(batch.theta_ - online.theta_).max())
    # Rate on a long log: the same rows 25 times (~225k rows on digits); median of 3 runs.
    reps = 25
    big_X, big_a, big_r = np.tile(contexts, (reps, 1)), np.tile(arms, reps), np.tile(rewards, reps)
    rates = []
    for _ in range(3):
        t0 = time.perf_counter()
        fresh().fit(big_X, big_a, big_r)
        rates.append(len(big_r) / (time.perf_counter() - t0))
    # The one-at-a-time path on the same rows, for the ratio.
    t0 = time.perf_counter()
    slow = fresh()
    for x, a, r in zip(contexts, arms, rewards, strict=True):
        slow.learn(x, names[a], float(r))
    one_rate = len(rewards) / (time.perf_counter() - t0)
    return {
        "rows": float(len(big_r)),
        "rows_per_s": float(np.median(rates)),
        "one_at_a_time_rows_per_s": one_rate,
        "max_abs_theta_diff": max_diff,
    }


def _steps(n: int) -> None:
    """Child of :func:`callgrind_per_step`: warm up LinUCB on digits, then ``n`` more act+learn steps."""
    X, y = load_bandit_dataset("digits").X, load_bandit_dataset("digits").y
    router = routers(int(y.max()) + 1, X.shape[1], True)["linucb"]
    labels = [str(v) for v in y]
    rows = [np.ascontiguousarray(x) for x in X]
    for t in range(200 + n):  # the first 200 load the compiled kernels and warm every path
        j = t % len(rows)
        d = router.act(rows[j])
        router.learn(rows[j], d.arm, 1.0 if d.arm == labels[j] else 0.0)


def callgrind_per_step(steps: int = 1000) -> dict[str, float]:
    """Instructions per LinUCB act+learn, counted by valgrind's callgrind: the same warmed-up process run
    with and without ``steps`` extra steps, so start-up cancels out. Unlike µs, the count does not
    move with the machine's load (it is what the CPU is asked to do, not how long it took)."""
    import re
    import subprocess
    import sys
    import tempfile

    totals = []
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    # Once natively first: numba compiles the kernels into its cache, so that neither counted run
    # includes a compilation (billions of instructions: the first count would exceed the second).
    subprocess.run([sys.executable, __file__, "--_steps", "0"], check=True, capture_output=True, env=env)
    with tempfile.TemporaryDirectory(prefix="rl-callgrind-") as tmp:
        for n in (0, steps):
            out = f"{tmp}/cg.{n}"
            subprocess.run(
                ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                 sys.executable, __file__, "--_steps", str(n)],
                check=True, capture_output=True, env=env,
            )  # fmt: skip
            text = Path(out).read_text()
            totals.append(int(re.search(r"^(?:summary|totals): (\d+)", text, re.M).group(1)))  # type: ignore[union-attr]
    return {"instructions_per_step": (totals[1] - totals[0]) / steps}


def gating_curve(X: np.ndarray, y: np.ndarray, quick: bool) -> list[tuple[int, float]] | None:
    try:
        import torch

        from rewardloop.learners.gating import digits_learning_curve
    except ImportError:
        return None
    torch.set_num_threads(1)
    return digits_learning_curve(X, y, rounds=3000 if quick else 12000, seed=SEED)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one pass, LinUCB only, short gating curve")
    parser.add_argument(
        "--callgrind",
        action="store_true",
        help="only count instructions per LinUCB act+learn under valgrind (robust to the machine's load)",
    )
    parser.add_argument("--_steps", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._steps is not None:
        threadpool_limits(1)
        _steps(args._steps)
        return
    if args.callgrind:
        cg = callgrind_per_step()
        print(f"LinUCB act+learn on digits (K = 10, d = 64): {cg['instructions_per_step']:,.0f} instructions")
        print(json.dumps({"act_learn_instructions": round(cg["instructions_per_step"])}))
        return
    # Single-threaded BLAS: at these sizes (a 650×65 matrix-vector product per decision) waking a second
    # BLAS thread costs more than it saves, and on a shared 2-core machine it competes with other work.
    threadpool_limits(1)
    load = os.getloadavg()[0]
    print(
        f"machine: {os.cpu_count()} CPUs, load average {load:.1f} at start "
        "(wall-clock figures need an idle machine)"
    )
    passes = 1 if args.quick else 5
    results: dict[str, Any] = {}
    data = datasets()
    for name, (X, y) in data.items():
        k = int(y.max()) + 1
        print(f"\n== {name}: {len(y)} rounds x {passes} passes, K = {k}, d = {X.shape[1]}")
        print(f"{'router':<24}{'r1':>7}{'r5':>7}{'decisions/s':>13}{'median µs':>11}{'p99 µs':>9}")
        for rname, router in routers(k, X.shape[1], args.quick).items():
            res = run_router(router, X, y, passes)
            results[f"{name}_{rname}"] = res
            print(
                f"{rname:<24}{res['r1']:>7.3f}{res['r5']:>7.3f}{res['decisions_per_s']:>13,.0f}"
                f"{res['median_us']:>11.1f}{res['p99_us']:>9.1f}"
            )
        for label, expl in (("vw epsilon=0.05", "--epsilon 0.05"), ("vw squarecb", "--squarecb")):
            vw = run_vw(X, y, passes, expl)
            if vw is None:
                print("vowpalwabbit is not installed (pip install 'rewardloop[bench]'): VW reference skipped")
                break
            results[f"{name}_{label}"] = vw
            print(
                f"{label:<24}{vw['r1']:>7.3f}{vw['r5']:>7.3f}{vw['decisions_per_s']:>13,.0f}"
                f"{vw['median_us']:>11.1f}{vw['p99_us']:>9.1f}"
            )

    X, y = data["digits"]
    ours = results["digits_linucb"]
    print(
        f"\nLinUCB one act+learn on digits: median {ours['median_us']:.1f} µs wall-clock; "
        f"{ours['cpu_mean_us']:.1f} µs of this thread's CPU time per round, loop included "
        "(excludes time the OS gave to other processes)"
    )
    op_us = numpy_op_us()
    print(f"calibration: one 10-element numpy add takes {op_us:.2f} µs here now (typically ~0.3–0.5 idle)")
    duel = speed_duel(X, y, rounds=3 if args.quick else 5)
    from rewardloop.learners.bandits import _kernels

    kernels = _kernels.ucb_choice is not None
    numpy_us = numpy_path_us(X, y)
    floor_us = state_read_us(10, X.shape[1])
    print(
        f"per-step path: {'numba kernels' if kernels else 'NumPy (numba not installed)'}; "
        f"NumPy fallback in the same run: median {numpy_us:.1f} µs"
    )
    print(
        f"physical floor: one decision reads every arm's A⁻¹ (10 x 65 x 65 doubles, 338 kB, ~85 kFLOP); "
        f"one BLAS pass over that state takes {floor_us:.1f} µs here now, so act+learn "
        f"({duel['ours_median_us']:.1f} µs) is {duel['ours_median_us'] / floor_us:.1f}x that floor "
        "(target <= 12 µs, >= 6x VW)"
    )
    vw_rate = duel["vw_per_s"] if np.isfinite(duel["vw_per_s"]) else None
    if vw_rate:
        print(
            f"speed, alternating one digits pass of each: LinUCB {duel['ours_per_s']:,.0f}/s "
            f"(median {duel['ours_median_us']:.1f} µs) vs VW Python API (epsilon) {vw_rate:,.0f}/s: "
            f"{duel['ratio']:.1f}x (median of per-round ratios)"
        )
    replay = batch_replay(X, 10, ours["log"])
    print(
        f"\nbatch replay (LinUCB.fit) of {replay['rows']:,.0f} logged rows: "
        f"{replay['rows_per_s']:,.0f} rows/s "
        f"(one at a time: {replay['one_at_a_time_rows_per_s']:,.0f} rows/s, "
        f"{replay['rows_per_s'] / replay['one_at_a_time_rows_per_s']:.0f}x); "
        f"max |θ_batch − θ_online| = {replay['max_abs_theta_diff']:.2e}"
    )
    curve = gating_curve(X, y, args.quick)
    if curve is None:
        print("\ngating policy: not available (needs torch)")
    else:
        print("\ngating policy (MLP + REINFORCE) on digits, mean reward per window:")
        for t, r in curve:
            print(f"  after {t:>6} rounds: {r:.3f}")
    vw_r5 = [v["r5"] for k, v in results.items() if k.startswith("digits_vw")]
    summary = {
        "digits_linucb_r1": round(ours["r1"], 4),
        "digits_linucb_r5": round(ours["r5"], 4),
        "wine_linucb_r5": round(results["wine_linucb"]["r5"], 4),
        "digits_vw_best_r5": round(max(vw_r5), 4) if vw_r5 else None,
        "act_learn_median_us": round(duel["ours_median_us"], 2),
        "act_learn_median_us_digits_5_passes": round(ours["median_us"], 2),
        "kernels": kernels,
        "numpy_path_median_us": round(numpy_us, 2),
        "state_read_floor_us": round(floor_us, 2),
        "act_learn_p99_us": round(ours["p99_us"], 2),
        "act_learn_cpu_mean_us": round(ours["cpu_mean_us"], 2),
        "load_average_at_start": round(load, 2),
        "numpy_small_op_us": round(op_us, 3),
        "decisions_per_s": round(duel["ours_per_s"]),
        "vw_python_decisions_per_s": round(vw_rate) if vw_rate else None,
        "vs_vw_python_rate": round(duel["ratio"], 2) if vw_rate else None,
        "batch_replay_rows_per_s": round(replay["rows_per_s"]),
        "batch_replay_max_theta_diff": replay["max_abs_theta_diff"],
        "gating_digits_final_reward": curve[-1][1] if curve else None,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
