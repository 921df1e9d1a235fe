"""Does bandit feedback improve a classifier? REINFORCE, PPO and A2C on Home Assistant intents.

The experiment (issue 4): start from a supervised head trained on a small labelled seed (a few
examples per intent), then simulate production round after round — the policy decides on unseen
texts by sampling from its own distribution, logs the propensity of what it chose, and only bandit
feedback comes back (1 when the chosen intent is right, 0 when wrong: a user's thumbs). After each
round each learner updates from that round's logged decisions (one on-policy iteration, warm-started
from the policy that logged them). Accuracy on a held-out golden set is reported after every round,
against the supervised start (the floor) and against supervised training on the same texts with
full labels (the ceiling). Then a DQN abstain gate (option B) is learned for the final PPO policy
from the run's logged decisions and scored by mean reward against always acting.

Every text is embedded once with MiniLM (cached under ~/.cache/rewardloop); the heads train on the
cached embeddings. Seeded: the same command prints the same figures. Each seed draws its own
seed/golden/stream split and its own production samples; the figures are medians over the seeds.

    PYTHONPATH=src python benchmarks/learning.py                    # 3 seeds: ~3 min on 2 cores
    PYTHONPATH=src python benchmarks/learning.py --seeds 0 --rounds 4   # quicker

The first run also embeds ~3,900 texts (1-4 minutes depending on the machine's load). Ends with one
JSON line: golden_acc_seed, golden_acc_reinforce, golden_acc_ppo, golden_acc_a2c,
golden_acc_full_labels (median golden accuracies after the last round).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rewardloop.datasets.intents import load_intent_pairs
from rewardloop.learners import (
    A2C,
    DQN,
    PPO,
    A2CConfig,
    DQNConfig,
    PPOConfig,
    Reinforce,
    ReinforceConfig,
    SupervisedConfig,
    SupervisedLearner,
)
from rewardloop.learners.base import BanditData
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


# ---------------------------------------------------------------------------------- supervised


def train_supervised(
    X: np.ndarray, y: np.ndarray, labels: list[str], seed: int, epochs: int = 300, lr: float = 1e-2
) -> ClassifierPolicy:
    """Cross-entropy on full labels, full batch (the seed model and the ceiling): the supervised learner."""
    config = SupervisedConfig(seed=seed, epochs=epochs, lr=lr, batch_size=max(len(y), 1), warm_start=False)
    return SupervisedLearner(config).fit(X, [labels[i] for i in y], labels=labels)


def accuracy(policy: ClassifierPolicy, X: np.ndarray, y: np.ndarray) -> float:
    return float((policy.predict_proba_embeddings(X).argmax(axis=1) == y).mean())


def decide_and_feedback(
    policy: ClassifierPolicy, X: np.ndarray, y: np.ndarray, rng: np.random.Generator
) -> BanditData:
    """Production: sample each action from the policy's distribution, log pscore, reward = correct."""
    proba = policy.predict_proba_embeddings(X)  # (n, K)
    u = rng.random((len(X), 1))
    action = np.minimum((proba.cumsum(axis=1) < u).sum(axis=1), proba.shape[1] - 1)
    pscore = proba[np.arange(len(X)), action]
    return BanditData(
        X=X,
        action=action.astype(np.int64),
        reward=(action == y).astype(np.float64),
        pscore=pscore,
        labels=list(policy.labels),
    )


# ------------------------------------------------------------------------------------------ main


LEARNERS = ("reinforce", "ppo", "a2c")
#: Abstain-gate costs: a wrong automatic action (say, unlocking the wrong door) costs three times what
#: a right one earns; a review costs half. Acting pays when P(right) > 0.625.
GATE_COSTS = {"reward_correct": 1.0, "reward_wrong": -3.0, "review_cost": 0.5}


def gate_experiment(
    policy: ClassifierPolicy,
    X_all: np.ndarray,
    y: np.ndarray,
    log_idx: np.ndarray,
    X_gold: np.ndarray,
    y_gold: np.ndarray,
    seed: int,
    earlier: list[BanditData],
) -> dict[str, float]:
    """DQN abstain gate (option B) for ``policy``: trained on its decisions on the stream texts left
    over plus the ``earlier`` rounds' logs (off-policy: a row counts when its logged action is
    ``policy``'s arg-max, weighted by 1/pscore), scored on the golden set by mean reward against
    always acting and against the best confidence threshold chosen in hindsight on the golden set."""
    last = decide_and_feedback(policy, X_all[log_idx], y[log_idx], np.random.default_rng([seed, 99]))
    logs = [*earlier, last]
    data = BanditData(
        X=np.concatenate([d.X for d in logs]),
        action=np.concatenate([d.action for d in logs]),
        reward=np.concatenate([d.reward for d in logs]),
        pscore=np.concatenate([d.pscore for d in logs]),
        labels=list(policy.labels),
    )
    gate = DQN(DQNConfig(seed=seed, **GATE_COSTS)).fit(data, policy)
    proba = policy.predict_proba_embeddings(X_gold)  # (n, K)
    act = np.where(proba.argmax(axis=1) == y_gold, GATE_COSTS["reward_correct"], GATE_COSTS["reward_wrong"])
    abstain = -GATE_COSTS["review_cost"]
    choice = gate.decide(proba)
    thresholds = np.linspace(0.0, 1.0, 101)
    best = max(float(np.where(proba.max(axis=1) >= t, act, abstain).mean()) for t in thresholds)
    return {
        "n_logs": float(len(data)),
        "gated": float(np.where(choice == 0, act, abstain).mean()),
        "always_act": float(act.mean()),
        "best_threshold": best,
        "abstain_share": float(choice.mean()),
    }


CURVES = (*LEARNERS, "full_labels")


def run_one(seed: int, texts: list[str], intents: list[str], args: argparse.Namespace) -> dict[str, Any]:
    """One seeded simulation: curves[name][round] of golden accuracy, online reward, throughput."""
    labels, y, seed_idx, golden_idx, stream_idx = split(
        intents,
        seed,
        args.seed_per_intent,
        args.golden_frac,
        args.max_per_intent,
        min_count=args.seed_per_intent + 10,
    )
    used = np.concatenate([seed_idx, golden_idx, stream_idx])
    X_all = np.zeros((len(texts), 384), np.float32)
    X_all[used] = embed_cached([texts[i] for i in used])
    n_stream = min(len(stream_idx), args.rounds * args.per_round)
    rounds = -(-n_stream // args.per_round)
    X_gold, y_gold = X_all[golden_idx], y[golden_idx]
    seed_policy = train_supervised(X_all[seed_idx], y[seed_idx], labels, seed)
    acc_seed = accuracy(seed_policy, X_gold, y_gold)

    learners = {
        "reinforce": Reinforce(ReinforceConfig(lr=5e-3, epochs=5, batch_size=32, seed=seed)),
        "ppo": PPO(PPOConfig(lr=5e-3, epochs=5, batch_size=32, seed=seed)),
        "a2c": A2C(A2CConfig(lr=5e-3, epochs=5, batch_size=32, seed=seed)),
    }
    policies = dict.fromkeys(learners, seed_policy)
    curves: dict[str, list[float]] = {name: [acc_seed] for name in CURVES}
    online_reward: dict[str, list[float]] = {name: [] for name in learners}
    throughput: dict[str, list[float]] = {name: [] for name in learners}  # samples/s per fit
    ppo_logs: list[BanditData] = []
    seen = 0
    for r in range(rounds):
        batch = stream_idx[r * args.per_round : min((r + 1) * args.per_round, n_stream)]
        seen += len(batch)
        for i, (name, learner) in enumerate(learners.items()):
            rng = np.random.default_rng([seed, r, i])
            data = decide_and_feedback(policies[name], X_all[batch], y[batch], rng)
            online_reward[name].append(float(data.reward.mean()))
            if name == "ppo":
                ppo_logs.append(data)
            t0 = time.perf_counter()
            policies[name] = learner.fit(data, policies[name])
            throughput[name].append(len(data) * learner.config.epochs / (time.perf_counter() - t0))
            curves[name].append(accuracy(policies[name], X_gold, y_gold))
        full_idx = np.concatenate([seed_idx, stream_idx[:seen]])
        ceiling = train_supervised(X_all[full_idx], y[full_idx], labels, seed)
        curves["full_labels"].append(accuracy(ceiling, X_gold, y_gold))
    gate = gate_experiment(policies["ppo"], X_all, y, stream_idx[n_stream:], X_gold, y_gold, seed, ppo_logs)
    return {
        "gate": gate,
        "curves": curves,
        "online_reward": online_reward,
        "throughput": throughput,
        "x": [min(r * args.per_round, n_stream) for r in range(rounds + 1)],
        "n_golden": len(golden_idx),
        "n_labels": len(labels),
        "n_seed": len(seed_idx),
    }


def plot(
    path: str,
    x: list[int],
    median: dict[str, np.ndarray],
    lo: dict[str, np.ndarray],
    hi: dict[str, np.ndarray],
    args: argparse.Namespace,
    n_seeds: int,
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for name in CURVES:
        style = "--" if name == "full_labels" else "-"
        label = "supervised, full labels (ceiling)" if name == "full_labels" else f"{name} (bandit feedback)"
        (line,) = ax.plot(x, median[name], style, marker="o", ms=3, label=label)
        if n_seeds > 1:
            ax.fill_between(x, lo[name], hi[name], color=line.get_color(), alpha=0.12, lw=0)
    ax.axhline(
        median["reinforce"][0],
        color="grey",
        lw=1,
        ls=":",
        label=f"seed model ({args.seed_per_intent}/intent)",
    )
    ax.set_xlabel("production texts with thumbs up/down feedback")
    ax.set_ylabel("golden-set accuracy")
    spread = f"median of {n_seeds} seeds, band: min-max" if n_seeds > 1 else "one seed"
    ax.set_title(f"Home Assistant intents: learning from bandit feedback ({spread})", fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=8, help="production rounds")
    parser.add_argument("--per-round", type=int, default=300, help="unseen texts decided per round")
    parser.add_argument("--seed-per-intent", type=int, default=5, help="labelled seed examples per intent")
    parser.add_argument("--max-per-intent", type=int, default=150, help="cap of examples per intent")
    parser.add_argument("--golden-frac", type=float, default=0.2, help="share of each intent held out")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds; figures are medians")
    parser.add_argument("--plot", default="docs/learning_curves.png", help="PNG of the curves ('' for none)")
    args = parser.parse_args()
    torch.set_num_threads(1)  # tiny heads: one thread is fastest, and kind to a shared machine
    start = time.perf_counter()
    seeds = [int(s) for s in args.seeds.split(",")]

    texts, intents = load_texts()
    runs = []
    for seed in seeds:
        run = run_one(seed, texts, intents, args)
        runs.append(run)
        finals = " ".join(f"{n} {run['curves'][n][-1]:.3f}" for n in CURVES)
        print(f"seed {seed}: start {run['curves']['reinforce'][0]:.3f} → {finals}")
    first = runs[0]
    x = first["x"]
    print(
        f"\n{len(texts)} texts, {len(set(intents))} intents; {first['n_labels']} intents with ≥ "
        f"{args.seed_per_intent + 10} examples: seed set {first['n_seed']}, golden {first['n_golden']}, "
        f"stream {x[-1]} in {len(x) - 1} rounds of {args.per_round}"
    )
    stack = {n: np.array([run["curves"][n] for run in runs]) for n in CURVES}  # (n_seeds, rounds + 1)
    median = {n: np.median(v, axis=0) for n, v in stack.items()}
    lo = {n: v.min(axis=0) for n, v in stack.items()}
    hi = {n: v.max(axis=0) for n, v in stack.items()}

    print(f"\ngolden-set accuracy, median over seeds {seeds}; round 0 = the supervised seed model")
    print(f"{'round':>5} {'texts':>6} " + " ".join(f"{n:>11}" for n in CURVES))
    for r in range(len(x)):
        print(f"{r:>5} {x[r]:>6} " + " ".join(f"{median[n][r]:>11.3f}" for n in CURVES))
    print("online reward (share of production decisions that were right), median per round:")
    for name in LEARNERS:
        values = np.median([run["online_reward"][name] for run in runs], axis=0)
        print(f"  {name:>9}: " + " ".join(f"{v:.2f}" for v in values))
    print("training throughput on cached embeddings (samples × epochs per second, median of all fits):")
    for name in LEARNERS:
        values = np.concatenate([run["throughput"][name] for run in runs])
        print(f"  {name:>9}: {np.median(values):,.0f} samples/s")
    print(
        "DQN abstain gate for the final PPO policy (option B), mean reward per golden text "
        f"(right +{GATE_COSTS['reward_correct']:g}, wrong {GATE_COSTS['reward_wrong']:g}, "
        f"review −{GATE_COSTS['review_cost']:g}):"
    )
    for seed, run in zip(seeds, runs, strict=True):
        g = run["gate"]
        print(
            f"  seed {seed}: gate {g['gated']:+.3f} (abstains on {g['abstain_share']:.1%}), always act "
            f"{g['always_act']:+.3f}, best threshold in hindsight {g['best_threshold']:+.3f}; "
            f"trained on {g['n_logs']:.0f} logged decisions"
        )
    acc_seed = float(median["reinforce"][0])
    gap = median["full_labels"][-1] - acc_seed
    for name in LEARNERS:
        closed = (median[name][-1] - acc_seed) / gap if gap > 0 else float("nan")
        print(
            f"  {name:>9}: {median[name][-1] - acc_seed:+.3f} over the seed model, "
            f"{closed:.0%} of the seed → full-labels gap"
        )
    if args.plot:
        plot(args.plot, x, median, lo, hi, args, len(seeds))
        print(f"plot: {args.plot}")
    print(f"total {time.perf_counter() - start:.0f} s")
    print(
        json.dumps(
            {
                "golden_acc_seed": round(acc_seed, 4),
                "golden_acc_reinforce": round(float(median["reinforce"][-1]), 4),
                "golden_acc_ppo": round(float(median["ppo"][-1]), 4),
                "golden_acc_a2c": round(float(median["a2c"][-1]), 4),
                "golden_acc_full_labels": round(float(median["full_labels"][-1]), 4),
            }
        )
    )


if __name__ == "__main__":
    main()
