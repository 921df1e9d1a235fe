"""Set-valued decisions closed in a loop: Home Assistant intents with their slots, missed/unnecessary
feedback, and the model that learns from it — through the loop ``rewardloop loop run`` runs.

The label space is an utterance's intent plus the slot types it fills (``rewardloop.datasets.
intent_slots``: 42 intents + 24 slot names). The loop is :class:`rewardloop.loop.set_loop.SetLoopRunner`
on a SQLite store (what ``loop run`` builds for a ``kind: set`` policy): its first iteration trains the
seed model (per-label BCE on a few labelled texts per intent, thresholds fitted on a held-out share) and
activates it. Each round, ``--per-round`` unseen texts are served through the one serving path
(:class:`~rewardloop.loop.serving.ServingPath`: each user's experiment variant, each label drawn with
per-label ε-greedy exploration, propensities logged); a simulated user reports each missed label and each
unnecessary one with probability ``--report`` (what is not reported counts as right, so the feedback is
noisy); then one loop iteration runs: compile rewards (``set_f1``), then advance the running canary
(promote / ramp / roll back) or train a challenger (``set_supervised`` on the seed and every judged set,
warm from the champion), score it on the golden set of sets and by per-label DR on the champion's
traffic, gate it and start its canary. ``final_micro_f1`` is the champion's golden micro F1 after the
last round.

Beside it, on the library's learners directly: ``bandit`` (``set_bandit`` on every logged set, from the
final champion), ``feedback_once`` (the same supervised learner on feedback of sets all served by the
seed model: no loop), ``full_labels`` (every true set of the same texts: the ceiling), ``seed`` (never
retrained). Scored by micro F1 on the 642-text golden set (each text's true set).

    PYTHONPATH=src python benchmarks/multilabel.py              # seed 0, 4 rounds of 500 texts
    PYTHONPATH=src python benchmarks/multilabel.py --rounds 2 --per-round 300

Ends with one JSON line: ``seed_micro_f1``, ``final_micro_f1`` (the loop's champion after the last
round), ``full_labels_micro_f1``, ``feedback_once_micro_f1``, ``bandit_micro_f1``, per-round figures
(champion, the iteration's action), subset accuracy and Hamming loss.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _machine import load

from rewardloop.config.sections import ExperimentsConfig, GateConfig, RewardSpecConfig
from rewardloop.datasets.intent_slots import LabelledSets, load_intent_slots
from rewardloop.encoders import default_encoder
from rewardloop.evaluation.golden import GoldenItem, GoldenSet
from rewardloop.evaluation.sets import set_metrics
from rewardloop.learners.base import DataSpec
from rewardloop.learners.multilabel import (
    SetBanditConfig,
    SetBanditLearner,
    SetData,
    SetSupervisedConfig,
    SetSupervisedLearner,
)
from rewardloop.loop.experiments import Experiments
from rewardloop.loop.serving import ServingPath
from rewardloop.loop.set_loop import SetLoopRunner
from rewardloop.policies.contract import DecisionContext
from rewardloop.policies.multilabel import MultiLabelPolicy
from rewardloop.registry import Registry
from rewardloop.rewards import RewardSpec
from rewardloop.store import Store, write_decisions, write_feedback
from rewardloop.types import Decision, DecisionBatch, Feedback, set_decision_fields, set_key

Embed = Callable[[list[str]], np.ndarray]
POLICY = "slots"
#: The loop's reward: the F1 of the served set against the set the user holds right. (The per-label OPE
#: of the gate values the set penalty, −0.5 a missed action, −0.3 an unnecessary one.)
SPEC = RewardSpecConfig(name="actions", function="set_f1")
#: A short ramp (each round is a day of traffic). A success is a set F1 of at least 0.5: per-label
#: ε = 0.1 over 66 labels flips 3.3 labels of every set, so hardly any set is exactly right.
EXPERIMENTS = ExperimentsConfig(
    ramp=[0.5, 1.0], min_samples=150, non_inferiority_margin=0.05, success_at=0.5, reward_spec="actions"
)
GATE = GateConfig(min_micro_f1=0.3, max_hamming_loss=0.1, min_ope_lower_vs_champion=-0.05)


def serve(
    policy: MultiLabelPolicy, texts: list[str], embed: Embed, rng: np.random.Generator
) -> list[Decision]:
    """The policy's logged set decisions on ``texts`` (each label drawn from its served probability)."""
    q = policy.inclusion_probs(policy.predict_proba_embeddings(embed(texts)))  # (n, L)
    draws = rng.random(q.shape) < q
    labels = np.asarray(policy.labels)
    return [
        Decision(
            policy=POLICY,
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


def micro_f1(policy: MultiLabelPolicy, X: np.ndarray, Y: np.ndarray) -> dict[str, float]:
    m = set_metrics(Y, policy.predict_embeddings(X), policy.labels, policy.predict_proba_embeddings(X))
    return {
        "micro_f1": m.micro_f1,
        "subset_accuracy": m.subset_accuracy,
        "hamming_loss": m.hamming_loss,
        "mean_ece": m.mean_ece,
    }


def loop_runner(data: Any, args: argparse.Namespace, folder: Path) -> SetLoopRunner:
    """The loop ``rewardloop loop run`` builds for a ``kind: set`` policy, on a fresh SQLite store."""
    store = Store.open(f"sqlite:///{folder / 'bench.db'}")
    registry = Registry(store, folder / "registry")
    golden = GoldenSet(
        [
            GoldenItem(f"g{i}", t, set_key(s), labels=tuple(s))
            for i, (t, s) in enumerate(zip(data.golden.texts, data.golden.sets, strict=True))
        ],
        source="intent-slots golden",
    )
    return SetLoopRunner(
        store=store,
        registry=registry,
        experiments=Experiments(store, registry, EXPERIMENTS),
        policy=POLICY,
        spec=RewardSpec.from_config(SPEC),
        artifacts=folder / "artifacts",
        seed=args.seed,
        golden=golden,
        gate=GATE,
        labels=data.labels,
        config=SetSupervisedConfig(epochs=args.epochs, seed=args.seed),
        options={"explore": "epsilon", "epsilon": args.epsilon},
        base_texts=data.seed_set.texts,
        base_sets=data.seed_set.sets,
        encoder=default_encoder(),
    )


def run_loop(
    runner: SetLoopRunner, stream: LabelledSets, args: argparse.Namespace, figure: Callable[[str], float]
) -> list[dict[str, Any]]:
    """Bootstrap the seed champion, then each round: serve (the running canary's users get the
    challenger), log the users' feedback, run one loop iteration. Returns one record per round."""
    first = runner.iterate()
    assert first.action == "bootstrapped", first.summary
    rng = np.random.default_rng(args.seed + 1)
    truth = dict(zip(stream.texts, stream.sets, strict=True))
    rounds = []
    for r in range(args.rounds):
        texts = stream.texts[r * args.per_round : (r + 1) * args.per_round]
        running = runner.experiments.running_for(POLICY)
        champion = str(runner.champion_version())
        path = ServingPath(POLICY, runner.experiments, lambda e=running: e, lambda c=champion: c, runner.load)
        users = [f"user-{int(u)}" for u in rng.integers(args.users, size=len(texts))]
        served = [
            path.serve(DecisionContext(text=t), u, rng).decision for t, u in zip(texts, users, strict=True)
        ]
        write_decisions(runner.store, served)
        write_feedback(
            runner.store,
            [f for fbs in simulate_feedback(served, truth, args.report, rng).values() for f in fbs],
        )
        result = runner.iterate()
        champion = str(runner.champion_version())
        f1 = round(figure(champion), 4)
        rounds.append(
            {"round": r + 1, "action": result.action, "champion": champion, "champion_micro_f1": f1}
        )
        print(f"round {r + 1}: {result.action}: {result.summary}; champion {champion} F1 {f1:.3f} {load()}")
    return rounds


def feedback_once(
    seed: MultiLabelPolicy, seed_data: SetData, stream: LabelledSets, args: argparse.Namespace, embed: Embed
) -> MultiLabelPolicy:
    """No loop: the seed serves every round; the supervised learner then learns once from it all."""
    rng = np.random.default_rng(args.seed + 2)
    truth = dict(zip(stream.texts, stream.sets, strict=True))
    served = serve(seed, stream.texts, embed, rng)
    logged = SetSupervisedLearner.data_from_batch(
        DecisionBatch(served, simulate_feedback(served, truth, args.report, rng), {}),
        DataSpec(labels=seed.labels, embed=embed),
    )
    cfg = SetSupervisedConfig(epochs=args.epochs, seed=args.seed)
    return SetSupervisedLearner(cfg).fit(seed_data.concat(logged), policy=seed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--per-round", type=int, default=500)
    parser.add_argument("--users", type=int, default=5000, help="distinct users the traffic comes from")
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
    print(
        f"{len(data.labels)} labels ({len(data.intents)} intents, {len(data.slots)} slots), "
        f"seed {len(data.seed_set)} texts, stream {len(stream)}, golden {len(data.golden)} {load()}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        runner = loop_runner(data, args, Path(tmp))
        rounds = run_loop(runner, stream, args, lambda v: micro_f1(runner.load(v), Xg, Yg)["micro_f1"])
        seed = runner.load("1.0.0")
        final = runner.load(str(runner.champion_version()))
        figures = {"seed": micro_f1(seed, Xg, Yg), "loop": micro_f1(final, Xg, Yg)}
        logged = SetBanditLearner.data_from_batch(runner.logs(), DataSpec(labels=data.labels, embed=embed))
        bandit = SetBanditLearner(SetBanditConfig(epochs=20, seed=args.seed)).fit(logged, policy=final)
        figures["bandit"] = micro_f1(bandit, Xg, Yg)
        runner.store.close()
    seed_data = SetData.from_sets(embed(data.seed_set.texts), data.seed_set.sets, data.labels)
    figures["feedback_once"] = micro_f1(feedback_once(seed, seed_data, stream, args, embed), Xg, Yg)
    full_data = seed_data.concat(SetData.from_sets(embed(stream.texts), stream.sets, data.labels))
    cfg = SetSupervisedConfig(epochs=args.epochs, seed=args.seed)
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
        "loop_champion_micro_f1_by_round": [r["champion_micro_f1"] for r in rounds],
        "loop_actions": [r["action"] for r in rounds],
        "final_champion": rounds[-1]["champion"] if rounds else "1.0.0",
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
