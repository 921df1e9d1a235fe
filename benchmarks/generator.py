"""The generative classifier on the Home Assistant intents: SmolLM2-135M-Instruct zero-shot, after LoRA
SFT on the loop's chat export, after DPO on its corrections (the corrected intent chosen over the
logged wrong one), and int8 against fp32 (tokens/s and peak memory in the same run).

The loop's data: traffic decisions of a classifier (its answer a label drawn uniformly, so many are
wrong) get a reviewer's correction or a thumbs-up naming the right intent; the SFT examples are what the
store's ``openai`` chat export builds from them (:func:`rewardloop.learners.sft.chat_examples_from_batch`).
Accuracy is on a golden set disjoint from the training texts, by decoding (the greedy answer is the
intent's name) and by scoring (the intent whose name has the highest log-likelihood: ``*_scored``).

Throughput and memory are measured in a fresh child process per model (so neither sees the other's
memory): it loads the saved model (fp32, or the int8 artifact as ``rewardloop policies quantize``
registers it: int8 tensors, no fp32 copy), generates once to warm up, resets the peak-RSS counter
(``/proc/self/clear_refs``), then times greedy generation of exactly ``--gen-tokens`` tokens for each
of a few prompts (the end token does not stop it, so both models decode the same number of tokens);
``*_peak_mb`` is the peak resident memory while generating, ``*_tokens_per_s`` tokens over wall time
and ``*_tokens_per_cpu_s`` over the process's CPU time (steadier on a shared machine). int8 is torch
dynamic quantisation with per-channel weights, ``lm_head`` (and ``--int8-skip`` modules) kept fp32.

Threads: torch runs on ``--threads`` (default 1). On a machine whose cores other jobs share, two
threads spin at every barrier waiting for a descheduled peer: a first run with torch's default of 2
threads at load average 12-14 spent 8.9 CPU minutes without finishing the zero-shot readings that one
thread computes in under 2.

CPU budget: a stated subset of intents (``--intents``) and examples per intent, so the whole run takes
about 10-15 minutes on 2 shared cores.

    python benchmarks/generator.py [--per-intent 24 --golden 10 --epochs 2]
    python benchmarks/generator.py --tiny --intents HassTurnOn,HassTurnOff --per-intent 4 --golden 2

``--tiny`` runs the same code path on the tiny random model of the same architecture (seconds; its
figures say nothing about SmolLM2).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _machine import load

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

INTENTS = (
    "HassTurnOn,HassTurnOff,HassGetWeather,HassLightSet,HassStartTimer,HassSetVolume,"
    "HassMediaPause,HassShoppingListAddItem"
)
PROMPTS = ["What can you do?", "Tell me about the weather in spring.", "Explain what a timer is."]


def accuracy(predicted: list[str], truth: list[str]) -> float:
    return float(np.mean([p == t for p, t in zip(predicted, truth, strict=True)]))


def logged_batch(texts: list[str], truth: list[str], labels: list[str], seed: int):  # type: ignore[no-untyped-def]
    """Classifier decisions on ``texts`` (a uniform random label each) with the reviewers' feedback:
    a correction where the label was wrong, a thumbs-up (5 of 1..5) where it was right."""
    from rewardloop.types import Decision, DecisionBatch, Feedback

    rng = np.random.default_rng(seed)
    decisions, feedback = [], {}
    uniform = tuple([1.0 / len(labels)] * len(labels))
    for i, (text, right) in enumerate(zip(texts, truth, strict=True)):
        action = labels[int(rng.integers(len(labels)))]
        d = Decision(
            policy="intent",
            policy_version="0",
            kind="classifier",
            actions=tuple(labels),
            action=action,
            action_dist=uniform,
            pscore=uniform[0],
            text=text,
            id=f"d{i}",
        )
        decisions.append(d)
        if action == right:
            feedback[d.id] = [Feedback(decision_id=d.id, kind="rating", value=5, scale=(1, 5), rater_id="r1")]
        else:
            feedback[d.id] = [Feedback(decision_id=d.id, kind="correction", label=right, rater_id="r1")]
    return DecisionBatch(decisions, feedback)


def evaluate(policy, texts: list[str], truth: list[str], labels: list[str]) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    decoded = accuracy(policy.predict(texts, labels), truth)
    scored = accuracy(policy.predict_scored(texts, labels), truth)
    return decoded, scored


def measure(path: str, gen_tokens: int) -> dict[str, float]:
    """In this (child) process: load, warm up, reset the peak RSS, time greedy generation."""
    from rewardloop.policies.generator import GeneratorPolicy

    policy = GeneratorPolicy.load(path)
    prompts = [policy.prompt([{"role": "user", "content": p}]) for p in PROMPTS]
    policy.generate(prompts[:1], max_new_tokens=4)
    import gc

    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current resident size
    # Exactly gen_tokens greedy tokens a prompt (the end token does not stop it): a fine-tuned classifier
    # answers a label and stops after a few tokens, which would time prompt encoding, not decoding.
    tokens, start, cpu = 0, time.perf_counter(), time.process_time()
    for prompt in prompts:
        batch = policy.tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
        out = policy.model.generate(
            **batch,
            max_new_tokens=gen_tokens,
            min_new_tokens=gen_tokens,
            do_sample=False,
            pad_token_id=policy.tokenizer.pad_token_id,
        )
        tokens += out.shape[1] - batch["input_ids"].shape[1]
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu
    status = Path("/proc/self/status").read_text().splitlines()
    hwm_kb = next(int(line.split()[1]) for line in status if line.startswith("VmHWM"))
    return {
        "tokens_per_s": tokens / seconds,
        "tokens_per_cpu_s": tokens / cpu_seconds,
        "peak_mb": hwm_kb / 1024.0,
        "tokens": float(tokens),
    }


def measure_in_child(path: Path, gen_tokens: int, threads: int) -> dict[str, float]:
    cmd = [sys.executable, __file__, "--measure", str(path), "--gen-tokens", str(gen_tokens)]
    cmd += ["--threads", str(threads)]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True).stdout
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--intents", default=INTENTS, help="comma-separated subset of the 42 intents")
    parser.add_argument("--per-intent", type=int, default=24, help="logged (training) decisions per intent")
    parser.add_argument("--golden", type=int, default=10, help="golden texts per intent")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--dpo-lr", type=float, default=1e-4, help="DPO's learning rate (after SFT)")
    parser.add_argument("--dpo-epochs", type=int, default=1, help="DPO's passes over the correction pairs")
    parser.add_argument("--tiny", action="store_true", help="the tiny random model: a smoke run")
    parser.add_argument("--gen-tokens", type=int, default=32, help="tokens per prompt when timing")
    parser.add_argument("--int8-skip", default="lm_head", help="modules int8 leaves in fp32")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: see the docstring)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    skip = [s for s in args.int8_skip.split(",") if s]
    if args.measure:
        print(json.dumps(measure(args.measure, args.gen_tokens)))
        return
    run(args, skip)


def run(args: argparse.Namespace, skip: list[str]) -> None:
    from rewardloop.datasets.intents import load_intents
    from rewardloop.learners.lm_dpo import GeneratorDPO, GeneratorDPOConfig, preference_examples_from_batch
    from rewardloop.learners.sft import SFTConfig, SFTLearner, chat_examples_from_batch
    from rewardloop.policies.generator import GeneratorPolicy, quantize_model

    labels = sorted(args.intents.split(","))
    data = load_intents(
        seed=args.seed, seed_per_intent=args.per_intent, golden_per_intent=args.golden, intents=labels
    )
    train, golden = data.seed_set, data.golden
    print(f"{len(labels)} intents; {len(train)} logged decisions; {len(golden)} golden texts {load()}")
    make = GeneratorPolicy.random if args.tiny else GeneratorPolicy.smollm2
    base = make(name="intent-gen", version="1")
    zero = evaluate(base, golden.texts, golden.intents, labels)
    print(f"zero-shot: decode {zero[0]:.3f}, scored {zero[1]:.3f}")

    logged = logged_batch(train.texts, train.intents, labels, args.seed)
    examples = chat_examples_from_batch(logged)
    learner = SFTLearner(
        SFTConfig(lr=args.lr, epochs=args.epochs, batch_size=args.batch_size, seed=args.seed)
    )
    sft = learner.fit(examples, policy=base)
    after = evaluate(sft, golden.texts, golden.intents, labels)
    print(
        f"SFT ({len(examples)} examples, {learner.seconds_:.0f} s): "
        f"decode {after[0]:.3f}, scored {after[1]:.3f} {load()}"
    )

    int8 = GeneratorPolicy(
        quantize_model(sft.model, "int8-dynamic", skip=skip),
        sft.tokenizer,
        **{**sft.options(), "quantization": "int8-dynamic"},
    )
    quant = evaluate(int8, golden.texts, golden.intents, labels)
    print(f"int8 (dynamic, per-channel, fp32 {','.join(skip)}): decode {quant[0]:.3f}, scored {quant[1]:.3f}")

    with tempfile.TemporaryDirectory(prefix="rewardloop-bench-") as tmp:
        fp32_folder, int8_folder = sft.save(Path(tmp) / "sft"), int8.save(Path(tmp) / "int8")
        fp32_speed = measure_in_child(fp32_folder, args.gen_tokens, args.threads)
        int8_speed = measure_in_child(int8_folder, args.gen_tokens, args.threads)
    for name, speed in (("fp32", fp32_speed), ("int8", int8_speed)):
        print(
            f"{name}: {speed['tokens_per_s']:.1f} tokens/s ({speed['tokens_per_cpu_s']:.1f} per CPU second), "
            f"peak {speed['peak_mb']:.0f} MB {load()}"
        )
    pairs = preference_examples_from_batch(logged)
    dpo_learner = GeneratorDPO(
        GeneratorDPOConfig(lr=args.dpo_lr, epochs=args.dpo_epochs, batch_size=args.batch_size, seed=args.seed)
    )
    dpo = evaluate(dpo_learner.fit(pairs, policy=sft), golden.texts, golden.intents, labels)
    print(
        f"DPO ({len(pairs)} pairs, {dpo_learner.seconds_:.0f} s): decode {dpo[0]:.3f}, scored {dpo[1]:.3f} "
        f"{load()}"
    )

    result = {
        "benchmark": "generator",
        "intents": len(labels),
        "n_train": len(examples),
        "n_golden": len(golden),
        "zero_shot_acc": zero[0],
        "zero_shot_acc_scored": zero[1],
        "sft_acc": after[0],
        "sft_acc_scored": after[1],
        "dpo_acc": dpo[0],
        "dpo_acc_scored": dpo[1],
        "int8_acc": quant[0],
        "int8_acc_scored": quant[1],
        "fp32_tokens_per_s": fp32_speed["tokens_per_s"],
        "int8_tokens_per_s": int8_speed["tokens_per_s"],
        "fp32_tokens_per_cpu_s": fp32_speed["tokens_per_cpu_s"],
        "int8_tokens_per_cpu_s": int8_speed["tokens_per_cpu_s"],
        "fp32_peak_mb": fp32_speed["peak_mb"],
        "int8_peak_mb": int8_speed["peak_mb"],
        "sft_seconds": learner.seconds_,
        "dpo_seconds": dpo_learner.seconds_,
        "n_pairs": len(pairs),
        "int8_skip": skip,
        "threads": args.threads,
        "load_end": os.getloadavg()[0],
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
