"""Rewards benchmark: reward-model training and scoring speed, compile throughput, and the two reward
models' held-out quality on the VADER human ratings.

Run: ``PYTHONPATH=src python benchmarks/rewards.py`` (``--quick`` for a smaller VADER run).

Figures, each with a reference measured in the same run:

- ``rm_train_200_s``: median seconds to fit the embeddings+LR reward model on 200 fresh rated VADER
  pairs (encoding included, model load aside); reference: the same fit with texts encoded one by one.
- ``rm_score_10_ms``: median ms to score 10 fresh candidates for one prompt; reference: 10 calls of 1.
- ``compile_100k_s``: seconds for ``compile_rewards`` over 100k feedback rows (50k decisions × 2 raters)
  on SQLite, read + compile + write; reference: the record path (``read_decisions`` + the compiler
  + ``write_rewards``) on a 10k-row slice, as throughput.
- ``vader_rm_auc``: held-out ROC AUC of the LR model, good = mean rating > 0 with snippets whose raters
  average within ±0.5 of neutral left out (also printed: the AUC with no neutral band).
- ``vader_pairwise_acc``: held-out pairwise accuracy of the Bradley–Terry MiniLM on preference pairs
  derived within a corpus at a mean-rating gap ≥ 1, from snippets disjoint from training; references:
  the LR model's P(good) and the untrained model on the same pairs.

- ``onnx`` part (issue 19), each backend against torch fp32 in the same run:
  ``rm_score_10_ms``: median ms to score 10 fresh candidates with the fastest encoder backend whose
  embeddings keep cosine ≥ 0.99 to torch fp32 (named in ``rm_score_10_backend``; target ≤ 25 ms), the
  backends interleaved on the same candidates; ``rm_score_10_torch_ms`` etc. per backend.
  ``onnx_cosine_min``: min cosine of ONNX fp32 embeddings to torch fp32 over 1,000 Home Assistant
  intents golden texts and 1,000 VADER snippets (``onnx_int8_cosine_min``: the int8 graph).
  ``onnx_auc_delta``: held-out AUC of the LR reward model fit on ONNX embeddings minus the one fit on
  torch embeddings, same snippets (1,000 per VADER corpus) and split (``onnx_int8_auc_delta``: int8).
  The limit: the FLOPs of the 10 candidates (their real token counts × MiniLM's 21 MFLOP per token,
  ``benchmarks/_machine.py``) at this machine's one-thread fp32 matmul and int8 MatMulInteger peaks,
  measured in the same run.

MiniLM embeddings of the VADER snippets are cached in ``$REWARDLOOP_DATA/bench_vader_minilm.npz``
(a plain array file) so that reruns skip the encoding; delete it to re-encode.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import torch
from _machine import fp32_peak_gflops, int8_peak_gops, load, minilm_flops

from rewardloop.datasets import data_dir
from rewardloop.datasets.intents import load_intents
from rewardloop.datasets.vader import load_vader
from rewardloop.encoders import MiniLMEncoder
from rewardloop.loop.compile import compile_rewards
from rewardloop.loop.reward_models import pairs_from_vader
from rewardloop.policies.reranker import Reranker
from rewardloop.rewards import (
    EmbeddingRewardModel,
    PairwiseConfig,
    PairwiseRewardModel,
    RewardSpec,
    compile_feedback,
)
from rewardloop.store import Store, read_decisions, write_decisions, write_feedback, write_rewards
from rewardloop.types import Decision, Feedback


def say(msg: str) -> None:
    print(msg, flush=True)


class CachedEncoder:
    """Looks texts up in a precomputed table first; encodes (and remembers) the rest with MiniLM."""

    def __init__(self, encoder: MiniLMEncoder, table: dict[str, np.ndarray]) -> None:
        self.encoder = encoder
        self.table = table

    def encode(self, texts):
        missing = list(dict.fromkeys(t for t in texts if t not in self.table))
        if missing:
            for t, v in zip(missing, self.encoder.encode(missing), strict=True):
                self.table[t] = v
        return np.stack([self.table[t] for t in texts])


def vader_embeddings(encoder: MiniLMEncoder, texts: list[str]) -> dict[str, np.ndarray]:
    cache = data_dir() / "bench_vader_minilm.npz"
    table: dict[str, np.ndarray] = {}
    if cache.exists():
        with np.load(cache, allow_pickle=False) as z:
            table = dict(zip(z["texts"].tolist(), z["vectors"], strict=True))
    missing = list(dict.fromkeys(t for t in texts if t not in table))
    if missing:
        say(f"  encoding {len(missing)} VADER snippets with MiniLM (cached for next time) ...")
        t0 = time.perf_counter()
        for t, v in zip(missing, encoder.encode(missing), strict=True):
            table[t] = v
        say(f"  ... {time.perf_counter() - t0:.1f} s")
        keys = list(table)
        np.savez(cache, texts=np.array(keys), vectors=np.stack([table[k] for k in keys]))
    return table


# --------------------------------------------------------------------------------------------- speed


def bench_train_and_score(encoder: MiniLMEncoder, repeats: int) -> tuple[float, float, float, float]:
    pool = [s for s in load_vader(limit=1500, seed=7) if abs(s.mean) > 0.5]
    rng = np.random.default_rng(0)
    order = rng.permutation(len(pool))
    train_times, ref_times = [], []
    model = None
    for r in range(repeats):
        chunk = [pool[i] for i in order[r * 200 : (r + 1) * 200]]
        prompts, answers = [s.prompt for s in chunk], [s.text for s in chunk]
        ratings = np.array([s.mean for s in chunk])
        encoder._cache.clear()  # fresh texts: encoding is part of the training time
        t0 = time.perf_counter()
        model = EmbeddingRewardModel(encoder=encoder, random_state=r).fit(prompts, answers, ratings)
        train_times.append(time.perf_counter() - t0)
        if r == 0:  # reference once: the same fit, texts encoded one by one (no batching)
            encoder._cache.clear()

            class OneByOne:
                def encode(self, texts):
                    return np.vstack([encoder.encode([t]) for t in texts])

            t0 = time.perf_counter()
            EmbeddingRewardModel(encoder=OneByOne(), random_state=r).fit(prompts, answers, ratings)
            ref_times.append(time.perf_counter() - t0)
    assert model is not None
    reranker = Reranker(model)
    rest = [pool[i] for i in order[repeats * 200 :]]
    score_ms, ref_ms = [], []
    for r in range(30):
        cands = [s.text for s in rest[r * 10 : (r + 1) * 10]]
        t0 = time.perf_counter()
        reranker.score("Write a tweet.", cands)
        score_ms.append((time.perf_counter() - t0) * 1e3)
    for r in range(30, 40):
        cands = [s.text for s in rest[r * 10 : (r + 1) * 10]]
        t0 = time.perf_counter()
        for c in cands:
            reranker.score("Write a tweet.", [c])
        ref_ms.append((time.perf_counter() - t0) * 1e3)
    return (
        statistics.median(train_times),
        statistics.median(ref_times),
        statistics.median(score_ms),
        statistics.median(ref_ms),
    )


def bench_compile(n_decisions: int) -> tuple[float, int, float]:
    with tempfile.TemporaryDirectory(prefix="rl-bench-") as tmp:
        return _bench_compile_in(Path(tmp), n_decisions)


def _bench_compile_in(folder: Path, n_decisions: int) -> tuple[float, int, float]:
    store = Store.open(f"sqlite:///{folder / 'bench.db'}")
    rng = np.random.default_rng(0)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    decisions = [
        Decision(
            policy="intent",
            policy_version="1",
            kind="classifier",
            actions=("a", "b", "c"),
            action="a",
            action_dist=(0.6, 0.2, 0.2),
            pscore=0.6,
            latency_ms=float(rng.integers(10, 300)),
            created_at=t0 + timedelta(seconds=i),
        )
        for i in range(n_decisions)
    ]
    feedback = []
    for i, d in enumerate(decisions):
        feedback.append(
            Feedback(
                decision_id=d.id,
                kind="correction",
                label="ab"[i % 2],
                rater_id="ann",
                authority=0.9,
                created_at=t0 + timedelta(seconds=i, milliseconds=5),
            )
        )
        feedback.append(
            Feedback(
                decision_id=d.id,
                kind="rating",
                value=float(rng.integers(1, 6)),
                scale=(1, 5),
                rater_id="bob",
                authority=0.5,
                created_at=t0 + timedelta(seconds=i, milliseconds=9),
            )
        )
    say(f"  writing {n_decisions} decisions and {len(feedback)} feedback rows to SQLite ...")
    write_decisions(store, decisions)
    write_feedback(store, feedback)
    spec = RewardSpec(
        "email",
        function="weighted",
        weights={"correct": 0.5, "calibration": 0.3, "latency": 0.2},
        options={"target_ms": 100},
    )
    t = time.perf_counter()
    report = compile_rewards(store, spec)
    seconds = time.perf_counter() - t
    say(f"  {report.summary()}")
    # reference: the record path on the first 10% of the decisions (5k decisions, 10k rows)
    until = t0 + timedelta(seconds=n_decisions // 10)
    ref_spec = RewardSpec("email_ref", function=spec.function, weights=spec.weights, options=spec.options)
    t = time.perf_counter()
    batch = read_decisions(store, until=until, with_feedback=True, include_feedback=True)
    write_rewards(store, compile_feedback(batch.decisions, batch.feedback, ref_spec).rewards)
    ref_seconds = time.perf_counter() - t
    rows_ref = sum(len(v) for v in batch.feedback.values())
    store.close()
    return seconds, len(feedback), rows_ref / ref_seconds


# ------------------------------------------------------------------------------------------- quality


def bench_vader_lr(
    encoder: MiniLMEncoder, per_source: int | None
) -> tuple[float, float, EmbeddingRewardModel, dict]:
    snippets = load_vader(limit=per_source, seed=1)
    table = vader_embeddings(encoder, [s.text for s in snippets] + sorted({s.prompt for s in snippets}))
    cached = CachedEncoder(encoder, table)
    banded = [s for s in snippets if abs(s.mean) > 0.5]
    t = time.perf_counter()
    rm = EmbeddingRewardModel(threshold=0.0, test_size=0.25, random_state=0, encoder=cached).fit(
        [s.prompt for s in banded], [s.text for s in banded], np.array([s.mean for s in banded])
    )
    say(f"  LR on {len(banded)} snippets (|mean| > 0.5) in {time.perf_counter() - t:.1f} s:\n{rm.report_}")
    plain = EmbeddingRewardModel(threshold=0.0, test_size=0.25, random_state=0, encoder=cached).fit(
        [s.prompt for s in snippets], [s.text for s in snippets], np.array([s.mean for s in snippets])
    )
    from sklearn.metrics import roc_auc_score

    te = rm.test_index_
    held = [banded[i] for i in te]
    proba = rm.predict_proba([s.prompt for s in held], [s.text for s in held])
    y = np.array([s.mean > 0 for s in held])
    for source in ("tweets", "movies", "nyt", "amazon"):
        mask = np.array([s.source == source for s in held])
        say(f"    {source:7s} held-out AUC {roc_auc_score(y[mask], proba[mask]):.4f} ({mask.sum()} snippets)")
    return rm.metrics_["roc_auc"], plain.metrics_["roc_auc"], rm, table


def bench_vader_pairwise(
    encoder: MiniLMEncoder, table: dict, per_source: int | None, max_pairs: int, steps: int, n_test: int
) -> tuple[float, float, float, float]:
    train, test = pairs_from_vader(limit=per_source, seed=1, max_pairs=max_pairs, test_size=0.25)
    test = test[:n_test]
    say(f"  {len(train)} training pairs, {len(test)} held-out pairs (snippets disjoint from training)")
    base = PairwiseRewardModel(PairwiseConfig(max_steps=0))
    base.fit(train[:1])  # loads the base model; 0 steps: the untrained reference
    untrained = base.pairwise_accuracy(test)
    t = time.perf_counter()
    rm = PairwiseRewardModel(PairwiseConfig(lr=5e-5, batch_size=16, max_steps=steps))

    def tick(step: int, loss: float) -> None:
        if step % 25 == 0:
            say(f"    step {step}/{steps}  loss {loss:.4f}  {time.perf_counter() - t:.0f} s")

    rm.fit(train, callback=tick)
    fit_s = time.perf_counter() - t
    acc = rm.pairwise_accuracy(test)
    # reference: the LR reward model trained on ratings of *other* snippets (the rated-model split)
    lr = EmbeddingRewardModel(
        threshold=0.0, test_size=0, random_state=0, encoder=CachedEncoder(encoder, table)
    )
    pool = [s for s in load_vader(limit=per_source, seed=1) if abs(s.mean) > 0.5]
    test_texts = {p.chosen for p in test} | {p.rejected for p in test}
    pool = [s for s in pool if s.text not in test_texts]
    lr.fit([s.prompt for s in pool], [s.text for s in pool], np.array([s.mean for s in pool]))
    pc = lr.predict_proba([p.prompt for p in test], [p.chosen for p in test])
    pr = lr.predict_proba([p.prompt for p in test], [p.rejected for p in test])
    return acc, untrained, float(np.mean(pc > pr)), fit_s


# ---------------------------------------------------------------------------------------- backends

ONNX_BACKENDS = ("onnx", "onnx-int8")


def real_texts() -> list[str]:
    """1,000 Home Assistant intents golden texts and 1,000 VADER snippets: the cosine test set."""
    intents = load_intents(seed=0, golden_per_intent=50).golden.texts[:1000]
    vader = [s.text for s in load_vader(limit=250, seed=5)][:1000]
    return list(intents) + vader


def bench_backends(torch_encoder: MiniLMEncoder, threads: int) -> dict[str, float | str | None]:
    """Cosine to torch fp32, LR AUC delta and 10-candidate scoring time of each ONNX backend."""
    encoders = {"torch": torch_encoder}
    for name in ONNX_BACKENDS:
        t0 = time.perf_counter()
        encoders[name] = MiniLMEncoder(backend=name, num_threads=threads)
        say(
            f"  {name}: session ready in {time.perf_counter() - t0:.1f} s "
            "(the export is cached in $REWARDLOOP_DATA/onnx)"
        )
    out: dict[str, float | str | None] = {}
    texts = real_texts()
    reference = torch_encoder.encode(texts)
    cosines = {}
    for name in ONNX_BACKENDS:
        cos = (encoders[name].encode(texts) * reference).sum(1)
        cosines[name] = float(cos.min())
        say(
            f"  {name}: cosine to torch fp32 over {len(texts)} real texts: min {cos.min():.4f}, "
            f"p1 {np.percentile(cos, 1):.4f}, median {np.median(cos):.4f} (target min >= 0.99) {load()}"
        )
    out["onnx_cosine_min"], out["onnx_int8_cosine_min"] = cosines["onnx"], cosines["onnx-int8"]
    aucs = {name: lr_auc(enc) for name, enc in encoders.items()}
    for name in ONNX_BACKENDS:
        say(
            f"  {name}: LR reward model AUC {aucs[name]:.4f} vs torch {aucs['torch']:.4f} "
            "(target |delta| <= 0.005)"
        )
    out["onnx_auc_delta"] = aucs["onnx"] - aucs["torch"]
    out["onnx_int8_auc_delta"] = aucs["onnx-int8"] - aucs["torch"]
    out.update(score_10(encoders, threads, cosines))
    return out


def lr_auc(encoder: MiniLMEncoder) -> float:
    snippets = [s for s in load_vader(limit=1000, seed=1) if abs(s.mean) > 0.5]
    rm = EmbeddingRewardModel(threshold=0.0, test_size=0.25, random_state=0, encoder=encoder).fit(
        [s.prompt for s in snippets], [s.text for s in snippets], np.array([s.mean for s in snippets])
    )
    return float(rm.metrics_["roc_auc"])


def score_10(
    encoders: dict[str, MiniLMEncoder], threads: int, cosines: dict[str, float], repeats: int = 25
) -> dict[str, float | str | None]:
    """Median ms per backend to score 10 fresh candidates, interleaved; the FLOP bound beside them."""
    pool = [s for s in load_vader(limit=1500, seed=11) if abs(s.mean) > 0.5]
    model = EmbeddingRewardModel(encoder=encoders["torch"], random_state=0).fit(
        [s.prompt for s in pool[:200]], [s.text for s in pool[:200]], np.array([s.mean for s in pool[:200]])
    )
    reranker = Reranker(model)
    times: dict[str, list[float]] = {name: [] for name in encoders}
    tokens: list[int] = []
    for r in range(repeats):
        cands = [s.text for s in pool[200 + r * 10 : 210 + r * 10]]
        tokens += [len(ids) for ids in encoders["torch"].tokenizer(cands, truncation=True)["input_ids"]]
        for name, enc in encoders.items():
            enc._cache.clear()
            enc.encode(["Write a tweet."])  # the prompt is the same on every call: cached, as in use
            model.encoder = enc
            t0 = time.perf_counter()
            reranker.score("Write a tweet.", cands)
            times[name].append((time.perf_counter() - t0) * 1e3)
    model.encoder = encoders["torch"]
    per_call = minilm_flops(tokens) / repeats  # FLOPs of one call's 10 candidates
    fp32, int8 = fp32_peak_gflops(threads), int8_peak_gops(threads)
    say(
        f"  10 candidates: {np.mean(tokens) * 10:.0f} tokens, {per_call / 1e9:.2f} GFLOP; "
        f"one-thread peaks now: fp32 matmul {fp32:.0f} GFLOP/s, int8 MatMulInteger "
        f"{int8 or float('nan'):.0f} GOP/s {load()}"
    )
    int8_bound = per_call / (int8 or float("nan")) / 1e6
    say(f"  FLOP bound: fp32 {per_call / fp32 / 1e6:.1f} ms, int8 {int8_bound:.1f} ms")
    out: dict[str, float | str | None] = {}
    for name, ts in times.items():
        ms = statistics.median(ts)
        peak = int8 if name == "onnx-int8" else fp32
        rate = per_call / (ms / 1e3) / 1e9  # GFLOP/s achieved
        say(
            f"  score 10 candidates, {name:9s}: median {ms:6.1f} ms (target <= 25 ms); "
            f"{rate:.0f} GFLOP/s = {rate / (peak or float('nan')):.0%} of its peak {load()}"
        )
        out[f"rm_score_10_{name.replace('-', '_')}_ms"] = ms
    accurate = [n for n in encoders if n == "torch" or cosines[n] >= 0.99]
    best = min(accurate, key=lambda n: statistics.median(times[n]))
    out["rm_score_10_ms"], out["rm_score_10_backend"] = statistics.median(times[best]), best
    out["rm_score_10_fp32_bound_ms"] = per_call / fp32 / 1e6
    out["rm_score_10_int8_bound_ms"] = None if int8 is None else per_call / int8 / 1e6
    out["fp32_peak_gflops"], out["int8_peak_gops"] = fp32, int8
    return out


def _round(x: float, n: int) -> float | None:
    return None if x != x else round(x, n)  # NaN (a part not run) → null


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smaller VADER runs (about 2x faster)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a busy machine)")
    ap.add_argument(
        "--parts", default="speed,compile,lr,pairwise,onnx", help="comma-separated parts (default: all)"
    )
    ap.add_argument("--steps", type=int, default=None, help="pairwise training steps (default 150; quick 80)")
    ap.add_argument("--compile-decisions", type=int, default=50_000, help="decisions (2 feedback rows each)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    parts = set(args.parts.split(","))
    per_source = 1000 if args.quick else None  # None: every snippet (23,504)
    steps = args.steps or (80 if args.quick else 150)
    nan = float("nan")
    train_s = train_ref_s = score_ms = score_ref_ms = compile_s = ref_rows_per_s = nan
    auc = auc_plain = acc = untrained = lr_acc = nan

    say(f"machine load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (timings scale with it)")
    say("loading MiniLM (not timed) ...")
    encoder = MiniLMEncoder()
    encoder.encode(["warm-up"])

    if "speed" in parts:
        say("\n[1] reward model training and scoring speed")
        train_s, train_ref_s, score_ms, score_ref_ms = bench_train_and_score(encoder, repeats=3)
        say(
            f"  train on 200 rated pairs: median {train_s:.2f} s (target <= 3 s); "
            f"one-by-one encoding reference {train_ref_s:.2f} s ({train_ref_s / train_s:.1f}x)"
        )
        say(
            f"  score 10 candidates: median {score_ms:.1f} ms (target <= 25 ms); "
            f"10 single calls {score_ref_ms:.1f} ms ({score_ref_ms / score_ms:.1f}x)"
        )

    if "compile" in parts:
        say("\n[2] reward compile on SQLite")
        compile_s, n_rows, ref_rows_per_s = bench_compile(args.compile_decisions)
        say(
            f"  {n_rows} feedback rows: {compile_s:.2f} s (target <= 5 s), {n_rows / compile_s:,.0f} rows/s; "
            f"record-path reference {ref_rows_per_s:,.0f} rows/s ({n_rows / compile_s / ref_rows_per_s:.1f}x)"
        )

    table: dict = {}
    if "lr" in parts or "pairwise" in parts:
        snippets = load_vader(limit=per_source, seed=1)
        table = vader_embeddings(encoder, [s.text for s in snippets] + sorted({s.prompt for s in snippets}))
    if "lr" in parts:
        say("\n[3] VADER: embeddings + LR reward model")
        auc, auc_plain, _, table = bench_vader_lr(encoder, per_source)
        say(
            f"  held-out ROC AUC {auc:.4f} (good = mean > 0, |mean| <= 0.5 left out; target >= 0.90); "
            f"with no neutral band {auc_plain:.4f}"
        )

    if "pairwise" in parts:
        say("\n[4] VADER: pairwise Bradley–Terry MiniLM")
        acc, untrained, lr_acc, fit_s = bench_vader_pairwise(
            encoder, table, per_source, max_pairs=steps * 16, steps=steps, n_test=400
        )
        say(
            f"  held-out pairwise accuracy {acc:.4f} after {steps} steps ({fit_s:.0f} s; target >= 0.80); "
            f"untrained {untrained:.4f}; LR reward model on the same pairs {lr_acc:.4f}"
        )

    backends: dict[str, float | str | None] = {}
    if "onnx" in parts:
        say("\n[5] encoder backends: ONNX Runtime fp32 and int8 against torch fp32")
        backends = bench_backends(encoder, args.threads)
    load_now = os.getloadavg()[0]
    say(f"\nmachine load average at the end {load_now:.1f} on {os.cpu_count()} CPUs")
    rounded = {k: (_round(v, 4) if isinstance(v, float) else v) for k, v in backends.items()}
    print(
        json.dumps(
            {
                **rounded,
                "rm_train_200_s": _round(train_s, 3),
                "rm_score_10_ms": rounded.get("rm_score_10_ms", _round(score_ms, 2)),
                "rm_score_10_speed_part_ms": _round(score_ms, 2),
                "compile_100k_s": _round(compile_s, 3),
                "vader_rm_auc": _round(auc, 4),
                "vader_pairwise_acc": _round(acc, 4),
                "vader_rm_auc_no_band": _round(auc_plain, 4),
                "vader_pairwise_untrained": _round(untrained, 4),
                "vader_pairwise_lr_ref": _round(lr_acc, 4),
                "compile_ref_rows_per_s": _round(ref_rows_per_s, 1),
                "rm_train_200_ref_s": _round(train_ref_s, 3),
                "rm_score_10_ref_ms": _round(score_ref_ms, 2),
                "load_average": round(load_now, 2),
                "parts": sorted(parts),
            }
        )
    )


if __name__ == "__main__":
    sys.exit(main())
