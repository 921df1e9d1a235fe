"""Contributors' measured impact on the intents data: does a leave-one-contributor-out retrain find the
contributor whose labels hurt?

Five simulated raters each label ``--per-rater`` different traffic texts of the Home Assistant intents
(42 intents), wrong ``--error-rates`` of the time (a wrong label is another intent, uniform); the
raters' corrections are logged in a fresh SQLite store beside the traffic decisions (the model's guess
is the first intent). The impact is then measured as ``rewardloop contributors impact`` does:
:func:`rewardloop.loop.contributions.measure_impact` with the supervised learner (a head on MiniLM
embeddings) trained on the raters' labels alone, scored on the dataset's golden split. Reported per
rater: rows removed, golden accuracy without them, impact with its 95% interval, fixed / broken golden
items; and whether the noisiest rater ranks last by impact (``worst_rater_rank``, 5 = last) and its
impact's interval lies below 0 (``worst_rater_harm_measured``).

Run: ``PYTHONPATH=src python benchmarks/contributors.py``. Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from rewardloop.config import ProjectConfig
from rewardloop.datasets.intents import load_intents
from rewardloop.evaluation.golden import GoldenItem, GoldenSet, write_golden
from rewardloop.loop.contributions import measure_impact
from rewardloop.store import Store, write_decisions, write_feedback
from rewardloop.types import Decision, Feedback


def seed_store(store: Store, args: argparse.Namespace) -> list[str]:
    """The raters' labelled traffic; the raters' names, in the order of ``--error-rates``."""
    data = load_intents(seed=args.seed)
    labels = tuple(data.labels)
    rng = random.Random(args.seed)
    pool = list(zip(data.traffic.texts, data.traffic.intents, strict=True))
    rng.shuffle(pool)
    raters = [f"rater{i + 1}-{round(100 * e)}pct" for i, e in enumerate(args.error_rates)]
    decisions, feedback = [], []
    dist = tuple([1.0 / len(labels)] * len(labels))
    for r, (name, error) in enumerate(zip(raters, args.error_rates, strict=True)):
        for text, truth in pool[r * args.per_rater : (r + 1) * args.per_rater]:
            d = Decision(
                policy="intent", policy_version="0", kind="classifier", actions=labels, action=labels[0],
                action_dist=dist, pscore=dist[0], text=text,
            )  # fmt: skip
            label = truth
            if rng.random() < error:
                label = rng.choice([x for x in labels if x != truth])
            decisions.append(d)
            feedback.append(Feedback(decision_id=d.id, kind="correction", label=label, rater_id=name))
    write_decisions(store, decisions)
    write_feedback(store, feedback)
    return raters


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--per-rater", type=int, default=150, help="traffic texts each rater labels")
    p.add_argument("--error-rates", type=float, nargs="+", default=[0.02, 0.04, 0.06, 0.08, 0.5])
    args = p.parse_args()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        store = Store.open(f"sqlite:///{folder / 'rl.db'}")
        raters = seed_store(store, args)
        data = load_intents(seed=args.seed)
        golden = GoldenSet([GoldenItem(f"g{i}", t, y) for i, (t, y) in
                            enumerate(zip(data.golden.texts, data.golden.intents, strict=True))])  # fmt: skip
        write_golden(golden, folder / "golden.jsonl")
        cfg = ProjectConfig.model_validate(
            {
                "policies": [{"name": "intent", "kind": "classifier", "labels": list(data.labels)}],
                "training": {"learner": "supervised", "seed": args.seed, "output_dir": str(folder / "art")},
                "evaluation": {"golden": str(folder / "golden.jsonl")},
            }
        )
        report = measure_impact(store, cfg, folder, top_k=len(raters), progress=print)
        store.close()
    by = {i.contributor: i for i in report.contributors}
    assert report.accuracy is not None
    print(f"reference: {report.examples} examples, golden accuracy {report.accuracy['value']:.4f} "
          f"(n={report.accuracy['n']})")  # fmt: skip
    for name in raters:
        i = by[name]
        assert i.delta is not None and i.accuracy is not None
        d = i.delta
        interval = f"{d['value']:+.4f} [{d['low']:+.4f}, {d['high']:+.4f}]"
        print(f"{name}: removed {i.removed}, accuracy without {i.accuracy['value']:.4f}, impact "
              f"{interval} fixed {d['fixed']} broken {d['broken']}")  # fmt: skip
    ranked = sorted(raters, key=lambda n: -by[n].delta["value"])  # type: ignore[index]
    worst = raters[max(range(len(raters)), key=lambda k: args.error_rates[k])]
    out = {
        "reference_accuracy": round(report.accuracy["value"], 4),
        "golden_n": report.accuracy["n"],
        "impact": {n: round(by[n].delta["value"], 4) for n in raters},  # type: ignore[index]
        "worst_rater_rank": ranked.index(worst) + 1,
        "worst_rater_harm_measured": by[worst].delta["high"] < 0,  # type: ignore[index]
        "seconds": round(time.perf_counter() - t0, 1),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
