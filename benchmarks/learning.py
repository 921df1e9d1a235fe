"""Does bandit feedback improve a classifier? REINFORCE, PPO and A2C on Home Assistant intents.

The experiment (issue 4): start from a supervised head trained on a small labelled seed (a few
examples per intent), then simulate production round after round — the policy decides on unseen
texts by sampling from its own distribution, logs the propensity of what it chose, and only bandit
feedback comes back (1 when the chosen intent is right, 0 when wrong: a user's thumbs). After each
round each learner updates from that round's logged decisions (one on-policy iteration, warm-started
from the policy that logged them). Accuracy on a held-out golden set is reported after every round,
against the supervised start (the floor) and against supervised training on the same texts with
full labels (the ceiling).

Every text is embedded once with MiniLM (cached as .npy under ~/.cache/rewardloop); the heads train
on the cached embeddings. Seeded: the same command prints the same figures.

    PYTHONPATH=src python benchmarks/learning.py                 # ~2-4 min on 2 cores, first run
    PYTHONPATH=src python benchmarks/learning.py --rounds 4      # quicker

Ends with one JSON line: golden_acc_seed, golden_acc_reinforce, golden_acc_ppo, golden_acc_a2c,
golden_acc_full_labels (the golden accuracies after the last round).
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import random
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from rewardloop.learners import A2C, PPO, A2CConfig, PPOConfig, Reinforce, ReinforceConfig
from rewardloop.learners.base import BanditData
from rewardloop.policies.classifier import ClassifierPolicy, make_head

CACHE = Path(os.environ.get("REWARDLOOP_CACHE", Path.home() / ".cache" / "rewardloop"))


# ------------------------------------------------------------------------------------------ data


def load_texts(max_per_template: int = 20) -> tuple[list[str], list[str]]:
    """(texts, intents): Home Assistant's English intent templates expanded with hassil.

    Isolated so it can be swapped for ``rewardloop.datasets.intents`` in one line. Slot lists
    (device names, areas, ...) are filled with a few stand-in values; each template yields its first
    ``max_per_template`` expansions; duplicates are dropped; the order is sorted (deterministic).
    """
    from hassil.intents import Intents, TextSlotList
    from hassil.sample import sample_sentence
    from home_assistant_intents import get_intents

    intents = Intents.from_dict(get_intents("en"))
    stand_ins = {
        "name": ["kitchen light", "ceiling fan", "front door", "garage door", "living room lamp", "tv"],
        "area": ["kitchen", "living room", "bedroom", "garage", "office", "bathroom"],
        "floor": ["first floor", "upstairs", "downstairs"],
        "zone": ["home", "work", "school"],
        "message": ["dinner is ready", "hello"],
        "search_query": ["jazz", "the news"],
        "shopping_list_item": ["milk", "apples", "bread"],
        "todo_list_item": ["call mom", "pay bills"],
        "timer_name": ["pizza", "laundry"],
    }
    slot_lists = {
        **intents.slot_lists,
        **{k: TextSlotList.from_strings(v) for k, v in stand_ins.items()},
    }
    pairs: set[tuple[str, str]] = set()
    for intent_name, intent in intents.intents.items():
        for data in intent.data:
            rules = {**intents.expansion_rules, **(data.expansion_rules or {})}
            for sentence in data.sentences:
                expansions = sample_sentence(sentence, slot_lists, rules, language="en")
                for text in itertools.islice(expansions, max_per_template):
                    pairs.add((" ".join(text.split()), intent_name))
    ordered = sorted(pairs)
    return [t for t, _ in ordered], [i for _, i in ordered]


def embed_cached(texts: list[str]) -> np.ndarray:
    """MiniLM embeddings (n, 384), computed once and cached as .npy keyed by the texts' hash."""
    key = hashlib.sha256("\n".join(texts).encode()).hexdigest()[:16]
    path = CACHE / f"learning-bench-{key}.npy"
    if path.exists():
        return np.load(path)
    from rewardloop.encoders import MiniLMEncoder

    start = time.perf_counter()
    X = MiniLMEncoder(num_threads=2).encode(texts)
    print(f"embedded {len(texts)} texts in {time.perf_counter() - start:.0f} s → {path}")
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(path, X)
    return X


def split(
    intents: list[str], seed: int, n_seed: int, golden_frac: float, max_per_intent: int, min_count: int
) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per intent: n_seed labelled seed rows, a golden share, the rest an unlabelled stream.

    Returns (labels, y, seed_idx, golden_idx, stream_idx); intents with fewer than min_count
    examples are left out, and each intent is capped at max_per_intent examples.
    """
    rng = random.Random(seed)
    by_intent: dict[str, list[int]] = defaultdict(list)
    for i, intent in enumerate(intents):
        by_intent[intent].append(i)
    labels = sorted(k for k, v in by_intent.items() if len(v) >= min_count)
    index = {k: j for j, k in enumerate(labels)}
    y = np.array([index.get(t, -1) for t in intents])
    seed_idx, golden_idx, stream_idx = [], [], []
    for intent in labels:
        rows = by_intent[intent]
        rng.shuffle(rows)
        rows = rows[:max_per_intent]
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
    """Cross-entropy on full labels, full batch (the seed model and the ceiling).

    A private stand-in for the supervised learner of ``rewardloop.learners`` (built on another branch).
    """
    torch.manual_seed(seed)
    head = make_head(X.shape[1], len(labels))
    optimizer = torch.optim.Adam(head.parameters(), lr=lr, weight_decay=1e-4)
    Xt, yt = torch.as_tensor(X), torch.as_tensor(y)
    for _ in range(epochs):
        loss = F.cross_entropy(head(Xt), yt)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return ClassifierPolicy(labels, head=head.eval())


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=8, help="production rounds")
    parser.add_argument("--per-round", type=int, default=300, help="unseen texts decided per round")
    parser.add_argument("--seed-per-intent", type=int, default=5, help="labelled seed examples per intent")
    parser.add_argument("--max-per-intent", type=int, default=150, help="cap of examples per intent")
    parser.add_argument("--golden-frac", type=float, default=0.2, help="share of each intent held out")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plot", default="docs/learning_curves.png", help="PNG of the curves ('' for none)")
    args = parser.parse_args()
    torch.set_num_threads(1)  # tiny heads: one thread is fastest, and kind to a shared machine
    start = time.perf_counter()

    texts, intents = load_texts()
    labels, y, seed_idx, golden_idx, stream_idx = split(
        intents,
        args.seed,
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
    print(
        f"{len(texts)} texts, {len(set(intents))} intents; using {len(labels)} intents with ≥ "
        f"{args.seed_per_intent + 10} examples: seed {len(seed_idx)}, golden {len(golden_idx)}, "
        f"stream {n_stream} in {rounds} rounds of {args.per_round}"
    )
    X_gold, y_gold = X_all[golden_idx], y[golden_idx]
    seed_policy = train_supervised(X_all[seed_idx], y[seed_idx], labels, args.seed)
    acc_seed = accuracy(seed_policy, X_gold, y_gold)

    learners = {
        "reinforce": Reinforce(ReinforceConfig(lr=5e-3, epochs=5, batch_size=32, seed=args.seed)),
        "ppo": PPO(PPOConfig(lr=5e-3, epochs=5, batch_size=32, seed=args.seed)),
        "a2c": A2C(A2CConfig(lr=5e-3, epochs=5, batch_size=32, seed=args.seed)),
    }
    policies = dict.fromkeys(learners, seed_policy)
    curves: dict[str, list[float]] = {name: [acc_seed] for name in [*learners, "full_labels"]}
    online_reward: dict[str, list[float]] = {name: [] for name in learners}
    throughput: dict[str, list[float]] = {name: [] for name in learners}  # samples/s per fit
    seen = 0
    for r in range(rounds):
        batch = stream_idx[r * args.per_round : min((r + 1) * args.per_round, n_stream)]
        seen += len(batch)
        for i, (name, learner) in enumerate(learners.items()):
            rng = np.random.default_rng([args.seed, r, i])
            data = decide_and_feedback(policies[name], X_all[batch], y[batch], rng)
            online_reward[name].append(float(data.reward.mean()))
            t0 = time.perf_counter()
            policies[name] = learner.fit(data, policies[name])
            throughput[name].append(len(data) * learner.config.epochs / (time.perf_counter() - t0))
            curves[name].append(accuracy(policies[name], X_gold, y_gold))
        full_idx = np.concatenate([seed_idx, stream_idx[:seen]])
        ceiling = train_supervised(X_all[full_idx], y[full_idx], labels, args.seed)
        curves["full_labels"].append(accuracy(ceiling, X_gold, y_gold))

    # ---- table
    names = [*learners, "full_labels"]
    print(f"\ngolden-set accuracy ({len(golden_idx)} texts, {len(labels)} intents); round 0 = seed model")
    print(f"{'round':>5} {'texts':>6} " + " ".join(f"{n:>11}" for n in names))
    for r in range(rounds + 1):
        print(
            f"{r:>5} {min(r * args.per_round, n_stream):>6} "
            + " ".join(f"{curves[n][r]:>11.3f}" for n in names)
        )
    print("online reward (share of production decisions that were right), per round:")
    for name in learners:
        print(f"  {name:>9}: " + " ".join(f"{v:.2f}" for v in online_reward[name]))
    print("training throughput on cached embeddings (samples × epochs per second, median over rounds):")
    for name in learners:
        print(f"  {name:>9}: {np.median(throughput[name]):,.0f} samples/s")
    gap = curves["full_labels"][-1] - acc_seed
    for name in learners:
        closed = (curves[name][-1] - acc_seed) / gap if gap > 0 else float("nan")
        print(f"  {name:>9} closes {closed:.0%} of the seed → full-labels gap")

    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        x = [min(r * args.per_round, n_stream) for r in range(rounds + 1)]
        fig, ax = plt.subplots(figsize=(7, 4.2))
        for name in names:
            style = "--" if name == "full_labels" else "-"
            label = (
                "supervised, full labels (ceiling)" if name == "full_labels" else f"{name} (bandit feedback)"
            )
            ax.plot(x, curves[name], style, marker="o", ms=3, label=label)
        ax.axhline(acc_seed, color="grey", lw=1, ls=":", label=f"seed model ({args.seed_per_intent}/intent)")
        ax.set_xlabel("production texts with feedback")
        ax.set_ylabel("golden-set accuracy")
        ax.set_title("Home Assistant intents: learning from thumbs up/down")
        ax.legend(fontsize=8, loc="lower right")
        ax.grid(alpha=0.3)
        fig.tight_layout()
        Path(args.plot).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(args.plot, dpi=120)
        print(f"plot: {args.plot}")
    print(f"total {time.perf_counter() - start:.0f} s")
    print(
        json.dumps(
            {
                "golden_acc_seed": round(acc_seed, 4),
                "golden_acc_reinforce": round(curves["reinforce"][-1], 4),
                "golden_acc_ppo": round(curves["ppo"][-1], 4),
                "golden_acc_a2c": round(curves["a2c"][-1], 4),
                "golden_acc_full_labels": round(curves["full_labels"][-1], 4),
            }
        )
    )


if __name__ == "__main__":
    main()
