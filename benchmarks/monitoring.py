"""Monitoring on the intents data: how fast input drift is caught, at what false-alarm rate; whether the
unreliable rater is found; and whether CUPED cuts variance as theory says.

1. **Drift.** A logistic-regression head on MiniLM embeddings is trained on the intents minus
   ``--held-out`` of them (chosen with the seed). Its decisions on unseen texts are the traffic. A
   monitoring run compares a baseline window of ``--window`` decisions with the current window, looked
   at after every ``--look`` decisions up to ``--window``, with the monitor's two cheap tests (PSI of the
   predicted-label mix and of confidence, permutation p-values): it *flags* at the first look where a
   test's p-value is below ``α / (looks × 2)`` (Bonferroni over looks and tests, so a run's false-alarm
   rate is at most α = ``--alpha``). *Shift* runs inject the held-out intents at ``--shift`` of the
   current traffic; ``drift_detect_decisions`` is the median decisions until flagged over
   ``--shift-runs`` seeded runs (a run not flagged counts as never; ``drift_detect_rate`` is the share
   flagged). ``drift_false_alarm_rate`` is the share of ``--runs`` seeded no-shift
   runs (both windows from the same traffic) that flag. The embedding MMD test is reported on one
   shift and one no-shift run at the full window.
2. **Raters.** Five simulated raters label traffic texts (each sees 60% of 600 items and 60% of the
   golden items), wrong 2%, 4%, 6%, 8% and 20% of the time (a wrong answer is another intent, uniform).
   ``bad_rater_rank`` is the 20% rater's place in :func:`rate_raters`'s ranking (5 = last).
3. **CUPED.** Users with a latent success rate ``u ~ Beta(2, 2)`` make ``--visits`` decisions in a
   pre-period (covariate ``x``, their success share) and in the experiment (metric ``y``; the challenger
   adds 0.02). Over ``--reps`` seeded experiments, ``cuped_variance_ratio`` is var(CUPED effect) /
   var(plain effect), to be compared with ``1 − ρ²`` (ρ: the pooled correlation of x and y).

Run: ``PYTHONPATH=src python benchmarks/monitoring.py``. Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
from sklearn.linear_model import LogisticRegression

from rewardloop.datasets.fetch import data_dir
from rewardloop.datasets.intents import load_intents
from rewardloop.encoders import MiniLMEncoder
from rewardloop.evaluation.drift import confidence_psi, label_psi, mmd_test
from rewardloop.evaluation.raters import rate_raters
from rewardloop.evaluation.variance import cuped


def embeddings(args: argparse.Namespace, groups: list[list[str]]) -> list[np.ndarray]:
    """MiniLM embeddings of each group of texts, cached in the data folder by the benchmark's arguments."""
    key = f"seed{args.seed}-h{args.held_out}-t{args.train}-p{args.pool}"
    path = data_dir() / f"monitoring-bench-minilm-{key}.npz"
    if path.exists():
        with np.load(path) as z:
            cached = [z[f"g{i}"] for i in range(len(groups))]
        if [len(c) for c in cached] == [len(g) for g in groups]:
            return cached
    t0 = time.perf_counter()
    enc = MiniLMEncoder()
    out = [enc.encode(g) for g in groups]
    print(f"encoded {sum(len(g) for g in groups)} texts in {time.perf_counter() - t0:.1f} s")
    np.savez(path, **{f"g{i}": x for i, x in enumerate(out)})
    return out


def traffic(args: argparse.Namespace) -> dict[str, np.ndarray]:
    """Embeddings, predicted labels and confidences of the in-distribution and held-out pools."""
    data = load_intents(seed=args.seed)
    rng = np.random.default_rng(args.seed)
    held = set(rng.choice(data.labels, args.held_out, replace=False).tolist())
    rows = list(data.traffic)
    idx = rng.permutation(len(rows))
    known = [rows[i] for i in idx if rows[i][1] not in held]
    unknown = [rows[i] for i in idx if rows[i][1] in held][: args.pool // 4]
    train = [r for r in data.seed_set if r[1] not in held] + known[: args.train]
    pool = known[args.train : args.train + args.pool]
    x_train, x_pool, x_unknown = embeddings(args, [[t for t, _ in rows] for rows in (train, pool, unknown)])
    head = LogisticRegression(max_iter=1000, C=10.0).fit(x_train, [y for _, y in train])
    print(
        f"held-out intents: {sorted(held)}; "
        f"head accuracy on the pool {head.score(x_pool, [y for _, y in pool]):.3f}"
    )
    out: dict[str, np.ndarray] = {}
    for name, x in (("pool", x_pool), ("unknown", x_unknown)):
        proba = head.predict_proba(x)
        out[f"{name}_x"] = x
        out[f"{name}_label"] = head.classes_[proba.argmax(1)]
        out[f"{name}_conf"] = proba.max(1)
    return out


def one_run(pools: dict[str, np.ndarray], args: argparse.Namespace, seed: int, shift: float) -> int | None:
    """Decisions until flagged (None: not within the window)."""
    rng = np.random.default_rng(seed)
    n, nb = args.window, args.baseline
    order = rng.permutation(len(pools["pool_label"]))
    base, cur = order[:nb], order[nb : nb + n]
    from_unknown = rng.random(n) < shift
    unk = rng.integers(0, len(pools["unknown_label"]), n)
    labels = np.where(from_unknown, pools["unknown_label"][unk], pools["pool_label"][cur])
    conf = np.where(from_unknown, pools["unknown_conf"][unk], pools["pool_conf"][cur])
    looks = list(range(args.look, n + 1, args.look))
    threshold = args.alpha / (len(looks) * 2)
    for m in looks:
        tests = (
            label_psi(
                list(pools["pool_label"][base]), list(labels[:m]), n_permutations=args.permutations, seed=seed
            ),
            confidence_psi(pools["pool_conf"][base], conf[:m], n_permutations=args.permutations, seed=seed),
        )
        if any(t.flagged(threshold) for t in tests):
            return m
    return None


def mmd_once(pools: dict[str, np.ndarray], args: argparse.Namespace, shift: float) -> float | None:
    rng = np.random.default_rng(args.seed)
    n, nb = args.window, args.baseline
    order = rng.permutation(len(pools["pool_label"]))
    cur = pools["pool_x"][order[nb : nb + n]].copy()
    mask = rng.random(n) < shift
    cur[mask] = pools["unknown_x"][rng.integers(0, len(pools["unknown_x"]), int(mask.sum()))]
    return mmd_test(pools["pool_x"][order[:nb]], cur, n_permutations=200, seed=args.seed).p_value


def _finite(x: float) -> float | None:
    return None if math.isinf(x) else x


def drift(args: argparse.Namespace) -> dict[str, float | int | None]:
    pools = traffic(args)
    t0 = time.perf_counter()
    shifted = [one_run(pools, args, 10_000 + s, args.shift) for s in range(args.shift_runs)]
    caught = [m for m in shifted if m is not None]
    false = [one_run(pools, args, s, 0.0) for s in range(args.runs)]
    alarms = sum(m is not None for m in false)
    print(
        f"shift {args.shift:.0%}: flagged in {len(caught)}/{len(shifted)} runs, "
        f"after {sorted(caught)} decisions; "
        f"no shift: {alarms}/{len(false)} false alarms ({time.perf_counter() - t0:.1f} s)"
    )
    p_shift, p_none = mmd_once(pools, args, args.shift), mmd_once(pools, args, 0.0)
    print(f"embedding MMD at {args.window} decisions: p = {p_shift:.4f} with the shift, {p_none:.4f} without")
    return {
        # median over the shift runs, a run not flagged within the window counting as never
        "drift_detect_decisions": _finite(
            statistics.median(m if m is not None else math.inf for m in shifted)
        ),
        "drift_detect_rate": len(caught) / len(shifted),
        "drift_false_alarm_rate": alarms / len(false),
        "drift_stated_alpha": args.alpha,
        "mmd_p_shift": p_shift,
        "mmd_p_no_shift": p_none,
    }


def raters_figure(args: argparse.Namespace) -> int:
    data = load_intents(seed=args.seed)
    rng = np.random.default_rng(args.seed)
    items = {f"t{i}": y for i, (_, y) in enumerate(list(data.traffic)[:600])}
    golden = {f"g{i}": y for i, (_, y) in enumerate(list(data.golden)[:100])}
    truth = items | golden
    errors = {"r1": 0.02, "r2": 0.04, "r3": 0.06, "r4": 0.08, "bad": 0.20}
    rows = []
    for rater, err in errors.items():
        for item, label in truth.items():
            if rng.random() < 0.6:
                if rng.random() < err:
                    label = rng.choice([c for c in data.labels if c != label])
                rows.append((rater, item, str(label)))
    ranking = rate_raters(rows, golden=golden)
    for r in ranking:
        print(
            f"rater {r.rater:>4}: golden accuracy {r.golden_accuracy:.3f} on {r.golden_n}, "
            f"κ vs truth {r.truth_kappa:.3f}, mean pairwise κ {r.peer_kappa:.3f}, "
            f"authority {r.suggested_authority}"
        )
    return [r.rater for r in ranking].index("bad") + 1


def cuped_figure(args: argparse.Namespace) -> dict[str, float]:
    rng = np.random.default_rng(args.seed)
    raw, adj, rhos = [], [], []
    for _ in range(args.reps):
        u = rng.beta(2, 2, 2 * args.users)
        x = rng.binomial(args.visits, u) / args.visits
        treat = np.arange(2 * args.users) < args.users
        y = rng.binomial(args.visits, np.clip(u + 0.02 * treat, 0, 1)) / args.visits
        r = cuped(y[treat], x[treat], y[~treat], x[~treat])
        raw.append(r.effect_unadjusted)
        adj.append(r.effect)
        rhos.append(r.rho)
    ratio = float(np.var(adj, ddof=1) / np.var(raw, ddof=1))
    theory = 1 - float(np.mean(rhos)) ** 2
    print(f"CUPED: variance ratio {ratio:.3f} over {args.reps} experiments; theory 1 − ρ² = {theory:.3f}")
    return {"cuped_variance_ratio": ratio, "cuped_theory": theory, "cuped_rho": float(np.mean(rhos))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--held-out", type=int, default=6, help="intents the model never saw")
    ap.add_argument(
        "--train", type=int, default=1000, help="traffic texts added to the seed set for training"
    )
    ap.add_argument("--pool", type=int, default=4400, help="in-distribution texts to draw windows from")
    ap.add_argument("--baseline", type=int, default=3000, help="decisions in the baseline window")
    ap.add_argument("--window", type=int, default=1000, help="decisions in the current window")
    ap.add_argument("--look", type=int, default=250)
    ap.add_argument("--shift", type=float, default=0.2)
    ap.add_argument("--alpha", type=float, default=0.05)
    ap.add_argument("--permutations", type=int, default=399)
    ap.add_argument("--runs", type=int, default=200, help="no-shift runs (false alarms)")
    ap.add_argument("--shift-runs", type=int, default=20)
    ap.add_argument("--reps", type=int, default=400)
    ap.add_argument("--users", type=int, default=2000)
    ap.add_argument("--visits", type=int, default=10)
    args = ap.parse_args()
    result: dict[str, object] = {}
    result.update(drift(args))
    result["bad_rater_rank"] = raters_figure(args)
    result.update(cuped_figure(args))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
