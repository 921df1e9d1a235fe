"""Which learner gets the most out of the same logged feedback? Home Assistant intents, honestly.

Batch learning from logged bandit feedback (the setting of POEM and BanditNet): a supervised seed model
(a few labelled examples per intent) serves unseen texts round after round, sampling each intent from
its own distribution and logging the propensity. People give feedback on the decisions: a thumbs up
when the intent is right, a thumbs down when it is wrong, and on some wrong ones a correction naming
the right intent. After each round every learner trains, from the seed model, on **all** feedback
gathered so far — the same texts, the same feedback, the same optimisation budget (``--epochs`` passes
of minibatches of ``--batch-size``) — and is scored on a held-out golden set:

- ``seed``: the seed model itself;
- ``thumbs_up``: supervised cross-entropy on the thumbs-up rows (label = the chosen intent);
- ``thumbs_up_corrections``: the same plus the corrected rows (label = the correction);
- ``reinforce``, ``ppo``, ``a2c``: the policy-gradient learners on (action, reward, pscore);
- ``crm``: counterfactual risk minimisation (BanditNet's λ-translated SNIPS), which also reads the
  thumbs-down rows and takes corrections as full information;
- ``full_labels``: supervision with the true label of every row that got feedback (the ceiling).

Hyperparameters are chosen for every learner and every round on a validation split (25%) of the
logged feedback, by the self-normalised IPS estimate V̂_SN (``rewardloop.learners.selection``), then
refitted on all of it — never on the golden set. Two settings: clean raters giving feedback on every
decision; and noisy raters (each thumb flipped with probability ``--noise``) giving feedback on only
``--feedback-share`` of the decisions. Means ± sd over the seeds; each seed draws its own
seed/golden/stream split and its own production samples.

    PYTHONPATH=src python benchmarks/learning.py                   # 5 seeds, both settings
    PYTHONPATH=src python benchmarks/learning.py --seeds 0 --rounds 2   # quicker

Every text is embedded once with MiniLM (cached under ~/.cache/rewardloop); the heads train on the
cached embeddings. Ends with one JSON line: golden_acc_seed, golden_acc_thumbs_up_only,
golden_acc_thumbs_up_corrections, golden_acc_best_bandit, best_bandit_learner,
golden_acc_full_labels (means over the seeds after the last round), every learner's mean and sd,
seeds, and the same figures of the noisy setting under ``noisy``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rewardloop.datasets.intents import load_intent_pairs
from rewardloop.learners import (
    A2C,
    CRM,
    PPO,
    A2CConfig,
    CRMConfig,
    PPOConfig,
    Reinforce,
    ReinforceConfig,
    SupervisedConfig,
    SupervisedLearner,
)
from rewardloop.learners.crm import CorrectedBanditData
from rewardloop.learners.selection import FitFn, select_and_fit, sweep
from rewardloop.policies.classifier import ClassifierPolicy

CACHE = Path(os.environ.get("REWARDLOOP_CACHE", Path.home() / ".cache" / "rewardloop"))


# ------------------------------------------------------------------------------------------ data


def load_texts(samples_per_template: int = 20) -> tuple[list[str], list[str]]:
    """(texts, intents): the Home Assistant intents as ``rewardloop.datasets.intents`` expands them."""
    pairs = load_intent_pairs(seed=0, samples_per_template=samples_per_template)
    return [t for t, _ in pairs], [i for _, i in pairs]


def embed_cached(texts: list[str]) -> np.ndarray:
    """MiniLM embeddings (n, 384) of ``texts``, each text embedded once ever.

    The cache is ``~/.cache/rewardloop/learning-bench-minilm.npz`` (arrays ``texts`` and ``X``);
    texts not in it yet are embedded and added.
    """
    path = CACHE / "learning-bench-minilm.npz"
    known: dict[str, np.ndarray] = {}
    if path.exists():
        with np.load(path) as cached:
            known = dict(zip(cached["texts"].tolist(), cached["X"], strict=True))
    missing = sorted(set(texts) - set(known))
    if missing:
        from rewardloop.encoders import MiniLMEncoder

        start = time.perf_counter()
        X_new = MiniLMEncoder(num_threads=2).encode(missing)
        print(f"embedded {len(missing)} texts in {time.perf_counter() - start:.0f} s → {path}")
        known.update(zip(missing, X_new, strict=True))
        CACHE.mkdir(parents=True, exist_ok=True)
        names = sorted(known)
        np.savez(path, texts=np.array(names), X=np.stack([known[t] for t in names]))
    return np.stack([known[t] for t in texts]).astype(np.float32)


def split(
    intents: list[str], seed: int, n_seed: int, golden_frac: float, max_per_intent: int, min_count: int
) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per intent: n_seed labelled seed rows, a golden share, the rest an unlabelled stream.

    Returns (labels, y, seed_idx, golden_idx, stream_idx); intents with fewer than min_count
    examples are left out, and each intent is capped at max_per_intent examples (the same ones
    whatever the seed, so that the embeddings are computed once).
    """
    by_intent: dict[str, list[int]] = defaultdict(list)
    for i, intent in enumerate(intents):
        by_intent[intent].append(i)
    labels = sorted(k for k, v in by_intent.items() if len(v) >= min_count)
    index = {k: j for j, k in enumerate(labels)}
    y = np.array([index.get(t, -1) for t in intents])
    seed_idx, golden_idx, stream_idx = [], [], []
    pool_rng, rng = random.Random(0), random.Random(seed)
    for intent in labels:
        rows = by_intent[intent]
        pool_rng.shuffle(rows)  # the capped pool is the same for every seed: embedded once
        rows = sorted(rows[:max_per_intent])
        rng.shuffle(rows)
        n_golden = max(2, int(golden_frac * len(rows)))
        seed_idx += rows[:n_seed]
        golden_idx += rows[n_seed : n_seed + n_golden]
        stream_idx += rows[n_seed + n_golden :]
    rng.shuffle(stream_idx)
    return labels, y, np.array(seed_idx), np.array(golden_idx), np.array(stream_idx)


# ---------------------------------------------------------------------------------- feedback


@dataclass(frozen=True)
class Setting:
    """Who rates what: the share of decisions with feedback, the thumbs' noise, the correction rate."""

    name: str
    feedback_share: float
    noise: float
    correction_share: float


@dataclass(frozen=True)
class Logged(CorrectedBanditData):
    """Logged decisions with their feedback, and each row's true label (read by full-label supervision)."""

    truth: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))


def log_feedback(
    policy: ClassifierPolicy, X: np.ndarray, y: np.ndarray, setting: Setting, rng: np.random.Generator
) -> Logged:
    """Production: sample each intent from the policy, log pscore; the rated rows with their feedback.

    A rated decision gets a thumb (1 right, 0 wrong; flipped with probability ``noise``); a wrong one
    also gets a correction naming the right intent with probability ``correction_share`` (its thumb is 0).
    """
    proba = policy.predict_proba_embeddings(X)  # (n, K)
    n = len(X)
    action = np.minimum((proba.cumsum(axis=1) < rng.random((n, 1))).sum(axis=1), proba.shape[1] - 1)
    pscore = proba[np.arange(n), action]
    right = action == y
    rated = rng.random(n) < setting.feedback_share
    thumbs = np.where(rng.random(n) < setting.noise, ~right, right).astype(np.float64)
    corrected = ~right & (rng.random(n) < setting.correction_share)
    thumbs[corrected] = 0.0
    correction = np.where(corrected, y, -1).astype(np.int64)
    return Logged(
        X[rated],
        action[rated].astype(np.int64),
        thumbs[rated],
        pscore[rated],
        list(policy.labels),
        correction=correction[rated],
        truth=y[rated].astype(np.int64),
    )


def concat(logs: list[Logged]) -> Logged:
    """All rounds' logs as one."""
    arrays = {
        f.name: np.concatenate([getattr(d, f.name) for d in logs])
        for f in dataclasses.fields(Logged)
        if f.name not in ("labels", "skipped")
    }
    return Logged(labels=logs[0].labels, **arrays)


# ---------------------------------------------------------------------------------- learners


def supervised_fit(start: ClassifierPolicy, config: SupervisedConfig, source: str) -> FitFn:
    """A fit of the supervised learner from ``start`` on the labels ``source`` reads from the logs."""

    def fit(params: dict[str, Any], part: Any) -> tuple[Any, ClassifierPolicy]:
        corrected = part.correction >= 0
        if source == "full_labels":
            rows, label = np.ones(len(part), bool), part.truth
        else:
            up = (part.reward == 1) & ~corrected
            rows = up | corrected if source == "thumbs_up_corrections" else up
            label = np.where(corrected, part.correction, part.action)
        learner = SupervisedLearner(dataclasses.replace(config, **params))
        names = [start.labels[i] for i in label[rows]]
        return learner, learner.fit(part.X[rows], names, policy=start)

    return fit


SUPERVISED = ("thumbs_up", "thumbs_up_corrections", "full_labels")
BANDIT: dict[str, tuple[Any, Any]] = {
    "reinforce": (Reinforce, ReinforceConfig),
    "ppo": (PPO, PPOConfig),
    "a2c": (A2C, A2CConfig),
    "crm": (CRM, CRMConfig),
}
#: The grid each learner's hyperparameters are chosen from (per round, on held-out logged feedback).
LR_GRID = [3e-3, 1e-2, 3e-2, 1e-1]
GRIDS: dict[str, dict[str, list[Any]]] = {
    "thumbs_up": {"lr": LR_GRID},
    "thumbs_up_corrections": {"lr": LR_GRID},
    "full_labels": {"lr": LR_GRID},
    "reinforce": {"lr": LR_GRID},
    "ppo": {"lr": LR_GRID},
    "a2c": {"lr": LR_GRID},
    # BanditNet's λ, and POEM's weight clipping (0: off) against flipped thumbs on rare actions; lr 3e-2,
    # corrections through log π(c|x) (CRMConfig's default)
    "crm": {"baseline": [0.4, 0.6], "max_weight": [0.0, 3.0]},
}
CURVES = ("seed", *SUPERVISED[:2], *BANDIT, "full_labels")


def train_all(start: ClassifierPolicy, data: Logged, args: argparse.Namespace, seed: int) -> dict[str, Any]:
    """Every learner's sweep and final fit on ``data``: name → (fitted policy, chosen params)."""
    budget = {"epochs": args.epochs, "batch_size": args.batch_size, "seed": seed}
    out: dict[str, Any] = {}
    for name in SUPERVISED:
        fit = supervised_fit(start, SupervisedConfig(**budget), name)
        _, policy, selection = sweep(fit, GRIDS[name], data, args.valid_fraction, seed)
        out[name] = (policy, selection.params)
    for name, (cls, config_cls) in BANDIT.items():
        extra = {"lr": 3e-2} if name == "crm" else {}
        learner = select_and_fit(
            cls,
            config_cls(**budget, **extra),
            GRIDS[name],
            data,
            policy=start,
            valid_fraction=args.valid_fraction,
            seed=seed,
        )
        out[name] = (learner.policy_, learner.selection_.params)
    return out


def accuracy(policy: ClassifierPolicy, X: np.ndarray, y: np.ndarray) -> float:
    return float((policy.predict_proba_embeddings(X).argmax(axis=1) == y).mean())


def run_one(
    seed: int,
    setting: Setting,
    X_all: np.ndarray,
    y: np.ndarray,
    labels: list[str],
    split_rows: tuple,
    args: argparse.Namespace,
) -> dict[str, Any]:
    """One seeded simulation of one setting: curves[name][round] of golden accuracy, and the choices."""
    seed_idx, golden_idx, stream_idx = split_rows
    X_gold, y_gold = X_all[golden_idx], y[golden_idx]
    config = SupervisedConfig(seed=seed, epochs=300, lr=1e-2, batch_size=len(seed_idx), warm_start=False)
    start = SupervisedLearner(config).fit(X_all[seed_idx], [labels[i] for i in y[seed_idx]], labels=labels)
    curves: dict[str, list[float]] = {name: [accuracy(start, X_gold, y_gold)] for name in CURVES}
    choices: dict[str, list[dict[str, Any]]] = defaultdict(list)
    logs: list[Logged] = []
    x = [0]
    for r in range(args.rounds):
        batch = stream_idx[r * args.per_round : (r + 1) * args.per_round]
        rng = np.random.default_rng([seed, r, len(setting.name)])
        logs.append(log_feedback(start, X_all[batch], y[batch], setting, rng))
        data = concat(logs)
        x.append(len(data))
        curves["seed"].append(curves["seed"][0])
        for name, (policy, params) in train_all(start, data, args, seed).items():
            curves[name].append(accuracy(policy, X_gold, y_gold))
            choices[name].append(params)
    return {"curves": curves, "choices": dict(choices), "x": x}


# ------------------------------------------------------------------------------------------ report


def summarise(runs: list[dict[str, Any]]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Mean and sd over the seeds of each curve, shape (rounds + 1,)."""
    stack = {n: np.array([run["curves"][n] for run in runs]) for n in CURVES}  # (n_seeds, rounds + 1)
    mean = {n: v.mean(axis=0) for n, v in stack.items()}
    sd = {n: v.std(axis=0, ddof=1) if len(runs) > 1 else np.zeros(v.shape[1]) for n, v in stack.items()}
    return mean, sd


def figures(mean: dict[str, np.ndarray], sd: dict[str, np.ndarray]) -> dict[str, Any]:
    """The JSON figures of one setting: final means (and sds) over the seeds."""
    best = max(BANDIT, key=lambda n: mean[n][-1])
    out: dict[str, Any] = {
        "golden_acc_seed": round(float(mean["seed"][-1]), 4),
        "golden_acc_thumbs_up_only": round(float(mean["thumbs_up"][-1]), 4),
        "golden_acc_thumbs_up_corrections": round(float(mean["thumbs_up_corrections"][-1]), 4),
        "golden_acc_best_bandit": round(float(mean[best][-1]), 4),
        "best_bandit_learner": best,
        "golden_acc_full_labels": round(float(mean["full_labels"][-1]), 4),
    }
    out.update({f"golden_acc_{n}": round(float(mean[n][-1]), 4) for n in BANDIT})
    out["sd"] = {n: round(float(sd[n][-1]), 4) for n in CURVES}
    return out


def print_setting(setting: Setting, runs: list[dict[str, Any]], seeds: list[int]) -> dict[str, Any]:
    mean, sd = summarise(runs)
    x = runs[0]["x"]
    print(
        f"\n[{setting.name}] feedback on {setting.feedback_share:.0%} of decisions, thumbs flipped with "
        f"p = {setting.noise:g}, corrections on {setting.correction_share:.0%} of wrong ones; "
        f"golden-set accuracy, mean ± sd over seeds {seeds}"
    )
    print(f"{'round':>5} {'rows':>5} " + " ".join(f"{n:>21}" for n in CURVES))
    for r in range(len(x)):
        cells = " ".join(f"{mean[n][r]:>14.3f} ± {sd[n][r]:.3f}" for n in CURVES)
        print(f"{r:>5} {x[r]:>5} {cells}")
    print("hyperparameters chosen on held-out logged feedback (last round, per seed):")
    for name in CURVES[1:]:
        print(f"  {name:>21}: " + "; ".join(str(run["choices"][name][-1]) for run in runs))
    return {"mean": mean, "sd": sd, "x": x, "figures": figures(mean, sd)}


def plot(path: str, results: dict[str, dict[str, Any]], n_seeds: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(12, 4.6), sharey=True)
    for ax, (name, res) in zip(np.atleast_1d(axes), results.items(), strict=True):
        for curve in CURVES:
            style = "--" if curve in ("full_labels", "seed") else "-"
            (line,) = ax.plot(res["x"], res["mean"][curve], style, marker="o", ms=3, label=curve)
            lo, hi = res["mean"][curve] - res["sd"][curve], res["mean"][curve] + res["sd"][curve]
            ax.fill_between(res["x"], lo, hi, color=line.get_color(), alpha=0.12, lw=0)
        ax.set_title(f"{name} raters (mean ± sd of {n_seeds} seeds)", fontsize=10)
        ax.set_xlabel("logged decisions with feedback")
        ax.grid(alpha=0.3)
    np.atleast_1d(axes)[0].set_ylabel("golden-set accuracy")
    np.atleast_1d(axes)[-1].legend(fontsize=8, loc="lower right")
    fig.suptitle("Home Assistant intents: learning from the same logged feedback", fontsize=11)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="production rounds")
    parser.add_argument("--per-round", type=int, default=800, help="unseen texts decided per round")
    parser.add_argument("--epochs", type=int, default=10, help="passes per fit: every learner's budget")
    parser.add_argument("--batch-size", type=int, default=256, help="minibatch of every learner")
    parser.add_argument("--valid-fraction", type=float, default=0.25, help="held-out share of the logs")
    parser.add_argument("--seed-per-intent", type=int, default=5, help="labelled seed examples per intent")
    parser.add_argument("--max-per-intent", type=int, default=150, help="cap of examples per intent")
    parser.add_argument("--golden-frac", type=float, default=0.2, help="share of each intent held out")
    parser.add_argument("--noise", type=float, default=0.15, help="noisy setting: P(a thumb is flipped)")
    parser.add_argument("--feedback-share", type=float, default=0.6, help="noisy setting: rated share")
    parser.add_argument("--corrections", type=float, default=0.1, help="P(a wrong decision is corrected)")
    parser.add_argument("--seeds", default="0,1,2,3,4", help="comma-separated seeds")
    parser.add_argument("--plot", default="docs/learning_curves.png", help="PNG of the curves ('' for none)")
    args = parser.parse_args()
    torch.set_num_threads(1)  # tiny heads: one thread is fastest, and kind to a shared machine
    start = time.perf_counter()
    seeds = [int(s) for s in args.seeds.split(",")]
    settings = (
        Setting("clean", 1.0, 0.0, args.corrections),
        Setting("noisy", args.feedback_share, args.noise, args.corrections),
    )
    texts, intents = load_texts()
    splits = {
        s: split(
            intents, s, args.seed_per_intent, args.golden_frac, args.max_per_intent, args.seed_per_intent + 10
        )
        for s in seeds
    }
    labels, y = splits[seeds[0]][0], splits[seeds[0]][1]
    used = np.unique(np.concatenate([np.concatenate(sp[2:]) for sp in splits.values()]))
    X_all = np.zeros((len(texts), 384), np.float32)
    X_all[used] = embed_cached([texts[i] for i in used])  # once per run (and cached on disk)
    print(f"{len(texts)} texts, {len(labels)} intents, {len(used)} in the pool; rounds of {args.per_round}")
    results: dict[str, dict[str, Any]] = {}
    for setting in settings:
        runs = []
        for s in seeds:
            run = run_one(s, setting, X_all, y, labels, splits[s][2:], args)
            runs.append(run)
            print(
                f"  {setting.name} seed {s}: " + " ".join(f"{n} {run['curves'][n][-1]:.3f}" for n in CURVES)
            )
        results[setting.name] = print_setting(setting, runs, seeds)
    if args.plot:
        plot(args.plot, results, len(seeds))
        print(f"plot: {args.plot}")
    print(f"total {time.perf_counter() - start:.0f} s")
    line = {**results["clean"]["figures"], "seeds": seeds, "noisy": results["noisy"]["figures"]}
    print(json.dumps(line))


if __name__ == "__main__":
    main()
