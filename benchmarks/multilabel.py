"""Set-valued decisions closed in a loop: Home Assistant intents with their slots, missed/unnecessary
feedback, and the model that learns from it.

The label space is an utterance's intent plus the slot types it fills (``rewardloop.datasets.
intent_slots``: 42 intents + 24 slot names). A seed model (per-label BCE on a few labelled texts per
intent, thresholds fitted on a held-out share) serves ``--per-round`` unseen texts a round, drawing each
label independently with per-label ε-greedy exploration (propensities logged). A simulated user looks at
each suggested set and reports each missed label and each unnecessary one with probability ``--report``
(what is not reported counts as right: so the feedback is noisy). After each round:

- ``loop`` (the loop's model): ``set_supervised`` on the seed and **all** feedback so far, read from the
  logged decisions through the learner's own ``data_from_batch``, warm-started from the current model;
  it serves the next round;
- ``bandit``: ``set_bandit`` (per-label importance-weighted policy gradient) on the logged sets, from
  the loop's model;

and beside them, trivial baselines: ``seed`` (never retrained), ``feedback_once`` (the same supervised
learner on the feedback of the same number of rounds, all served by the seed model: no loop), and
``full_labels`` (every true set of the same texts: the ceiling). Scored by micro F1 on the 642-text
golden set (each text's true set).

    PYTHONPATH=src python benchmarks/multilabel.py              # seed 0, 4 rounds of 1,000 texts
    PYTHONPATH=src python benchmarks/multilabel.py --rounds 2 --per-round 500

Ends with one JSON line: ``seed_micro_f1``, ``final_micro_f1`` (the loop's model after the last round),
``full_labels_micro_f1``, ``feedback_once_micro_f1``, ``bandit_micro_f1``, per-round figures, subset
accuracy and Hamming loss.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

import numpy as np
import torch
from _machine import load

from rewardloop.datasets.intent_slots import LabelledSets, load_intent_slots
from rewardloop.encoders import default_encoder
from rewardloop.evaluation.sets import set_metrics
from rewardloop.learners.base import DataSpec
from rewardloop.learners.multilabel import (
    SetBanditConfig,
    SetBanditLearner,
    SetData,
    SetSupervisedConfig,
    SetSupervisedLearner,
)
from rewardloop.policies.contract import Exploration
from rewardloop.policies.multilabel import MultiLabelPolicy
from rewardloop.types import Decision, DecisionBatch, Feedback, set_decision_fields

Embed = Callable[[list[str]], np.ndarray]


def serve(
    policy: MultiLabelPolicy, texts: list[str], embed: Embed, rng: np.random.Generator
) -> list[Decision]:
    """The policy's logged set decisions on ``texts`` (each label drawn from its served probability)."""
    q = policy.inclusion_probs(policy.predict_proba_embeddings(embed(texts)))  # (n, L)
    draws = rng.random(q.shape) < q
    labels = np.asarray(policy.labels)
    return [
        Decision(
            policy="slots",
            policy_version=policy.version,
            kind="set",
            text=t,
            **set_decision_fields(policy.labels, labels[draws[i]].tolist(), q[i].tolist()),
        )
        for i, t in enumerate(texts)
    ]


def simulate_feedback(
    decisions: list[Decision], truth: dict[str, tuple[str, ...]], report: float, rng: np.random.Generator
) -> dict[str, list[Feedback]]:
    """Each missed and each unnecessary label reported with probability ``report``; a set judged right
    (nothing reported) is confirmed by a ``set_correction`` equal to it."""
    out: dict[str, list[Feedback]] = {}
    for d in decisions:
        chosen, right = set(d.chosen_set or ()), set(truth[d.text or ""])
        missed = sorted(label for label in right - chosen if rng.random() < report)
        extra = sorted(label for label in chosen - right if rng.random() < report)
        rows = [
            Feedback(decision_id=d.id, kind=kind, labels=tuple(labels), rater_id="user")
            for kind, labels in (("missed_actions", missed), ("unnecessary_actions", extra))
            if labels
        ]
        out[d.id] = rows or [Feedback(decision_id=d.id, kind="set_correction", labels=d.chosen_set or ())]
    return out


def combined(seed: SetData, logged: SetData, embed: Embed) -> SetData:
    """The labelled seed and the data of the logged feedback, as one training set (embeddings)."""
    X = np.vstack([seed.X, embed(list(logged.X)) if isinstance(logged.X, list) else logged.X])
    cat = lambda a, b: np.concatenate([a, b])  # noqa: E731
    return SetData(
        X,
        cat(seed.Y, logged.Y),
        cat(seed.weight, logged.weight),
        seed.labels,
        cat(seed.logged, logged.logged),
        cat(seed.mu, logged.mu),
        cat(seed.mask, logged.mask),
    )


def micro_f1(policy: MultiLabelPolicy, X: np.ndarray, Y: np.ndarray) -> dict[str, float]:
    m = set_metrics(Y, policy.predict_embeddings(X), policy.labels, policy.predict_proba_embeddings(X))
    return {
        "micro_f1": m.micro_f1,
        "subset_accuracy": m.subset_accuracy,
        "hamming_loss": m.hamming_loss,
        "mean_ece": m.mean_ece,
    }


def run_rounds(
    start: MultiLabelPolicy,
    seed_data: SetData,
    stream: LabelledSets,
    args: argparse.Namespace,
    embed: Embed,
    retrain: bool,
) -> tuple[MultiLabelPolicy, SetData, list[MultiLabelPolicy]]:
    """Serve ``args.rounds`` rounds; with ``retrain`` the model retrains after each (the loop)."""
    rng = np.random.default_rng(args.seed + (1 if retrain else 2))
    truth = dict(zip(stream.texts, stream.sets, strict=True))
    policy, decisions, feedback, history = start, [], {}, []
    for r in range(args.rounds):
        texts = stream.texts[r * args.per_round : (r + 1) * args.per_round]
        served = serve(policy, texts, embed, rng)
        decisions += served
        feedback |= simulate_feedback(served, truth, args.report, rng)
        logged = SetSupervisedLearner.data_from_batch(
            DecisionBatch(decisions, feedback, {}), DataSpec(labels=start.labels, embed=embed)
        )
        if retrain:
            cfg = SetSupervisedConfig(epochs=args.epochs, seed=args.seed)
            policy = SetSupervisedLearner(cfg).fit(combined(seed_data, logged, embed), policy=policy)
            policy.exploration = start.exploration
            history.append(policy)
    return policy, logged, history


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--per-round", type=int, default=1000)
    parser.add_argument("--epsilon", type=float, default=0.1, help="per-label ε of the served sets")
    parser.add_argument("--report", type=float, default=0.8, help="chance a user reports each error")
    parser.add_argument("--epochs", type=int, default=60)
    args = parser.parse_args()
    torch.set_num_threads(2)
    started = time.perf_counter()
    data = load_intent_slots(seed=args.seed)
    encoder = default_encoder()
    embed: Embed = lambda texts: encoder.encode(texts)  # noqa: E731
    n_stream = args.rounds * args.per_round
    stream = LabelledSets(data.traffic.texts[:n_stream], data.traffic.sets[:n_stream])
    embed(data.seed_set.texts + stream.texts + data.golden.texts)  # one pass, cached
    Xg, Yg = embed(data.golden.texts), data.golden.matrix(data.labels)
    seed_data = SetData.from_sets(embed(data.seed_set.texts), data.seed_set.sets, data.labels)
    cfg = SetSupervisedConfig(epochs=args.epochs, seed=args.seed)
    seed = SetSupervisedLearner(cfg).fit(seed_data)
    seed.exploration = Exploration("epsilon", epsilon=args.epsilon)
    print(
        f"{len(data.labels)} labels ({len(data.intents)} intents, {len(data.slots)} slots), "
        f"seed {len(seed_data)} texts, stream {len(stream)}, golden {len(data.golden)} {load()}"
    )
    figures = {"seed": micro_f1(seed, Xg, Yg)}
    final, logged, history = run_rounds(seed, seed_data, stream, args, embed, retrain=True)
    rounds = [micro_f1(p, Xg, Yg)["micro_f1"] for p in history]
    for r, f1 in enumerate(rounds, 1):
        print(f"round {r}: loop micro F1 {f1:.3f}")
    figures["loop"] = micro_f1(final, Xg, Yg)
    bandit = SetBanditLearner(SetBanditConfig(epochs=20, seed=args.seed)).fit(logged, policy=final)
    figures["bandit"] = micro_f1(bandit, Xg, Yg)
    _, once_logged, _ = run_rounds(seed, seed_data, stream, args, embed, retrain=False)
    once = SetSupervisedLearner(cfg).fit(combined(seed_data, once_logged, embed), policy=seed)
    figures["feedback_once"] = micro_f1(once, Xg, Yg)
    full_data = combined(seed_data, SetData.from_sets(embed(stream.texts), stream.sets, data.labels), embed)
    figures["full_labels"] = micro_f1(SetSupervisedLearner(cfg).fit(full_data), Xg, Yg)
    for name, m in figures.items():
        print(
            f"{name:>14}: micro F1 {m['micro_f1']:.3f}, subset accuracy {m['subset_accuracy']:.3f}, "
            f"Hamming loss {m['hamming_loss']:.4f}, mean ECE {m['mean_ece']:.3f}"
        )
    out = {
        "seed_micro_f1": round(figures["seed"]["micro_f1"], 4),
        "final_micro_f1": round(figures["loop"]["micro_f1"], 4),
        "full_labels_micro_f1": round(figures["full_labels"]["micro_f1"], 4),
        "feedback_once_micro_f1": round(figures["feedback_once"]["micro_f1"], 4),
        "bandit_micro_f1": round(figures["bandit"]["micro_f1"], 4),
        "loop_micro_f1_by_round": [round(v, 4) for v in rounds],
        "subset_accuracy": {k: round(m["subset_accuracy"], 4) for k, m in figures.items()},
        "hamming_loss": {k: round(m["hamming_loss"], 4) for k, m in figures.items()},
        "seed": args.seed,
        "rounds": args.rounds,
        "per_round": args.per_round,
        "seconds": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
