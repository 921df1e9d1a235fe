"""Micro-batching: concurrent decisions of one classifier share one predict_proba call, and each equals the
decision the unbatched path draws from the same generator."""

from __future__ import annotations

import dataclasses
import threading
from datetime import UTC, datetime

import numpy as np
import pytest
import torch

from rewardloop.loop.serving import request_rng
from rewardloop.policies.classifier import ClassifierPolicy, make_head
from rewardloop.policies.contract import DecisionContext, Exploration, PolicyInputError
from rewardloop.service.batching import MicroBatcher
from rewardloop.types import Decision

LABELS = ["a", "b", "c", "d"]


class RowEncoder:
    """A deterministic encoder whose rows do not depend on the batch (so batching is exact); counts calls."""

    def __init__(self) -> None:
        self.calls: list[int] = []
        self.lock = threading.Lock()

    def encode(self, texts):
        with self.lock:
            self.calls.append(len(texts))
        rows = [np.random.default_rng(sum(map(ord, t))).normal(size=4) for t in texts]
        return np.stack(rows).astype(np.float32)


def classifier(encoder: RowEncoder, exploration: Exploration) -> ClassifierPolicy:
    head = make_head(4, 4)
    with torch.no_grad():
        head.weight.copy_(torch.eye(4) * 2.0)
        head.bias.zero_()
    return ClassifierPolicy(LABELS, head=head, in_dim=4, encoder=encoder, exploration=exploration)


def comparable(d: Decision) -> Decision:
    return dataclasses.replace(d, id="x", latency_ms=None, created_at=datetime(2026, 1, 1, tzinfo=UTC))


def concurrently(batcher, policy, contexts, ids):
    out: dict[int, Decision] = {}
    barrier = threading.Barrier(len(contexts))

    def one(i: int) -> None:
        barrier.wait()
        out[i] = batcher.decide(policy, contexts[i], request_rng(ids[i]))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(contexts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [out[i] for i in range(len(contexts))]


@pytest.mark.parametrize("exploration", [Exploration("sample"), Exploration("epsilon", 0.3)])
def test_batched_decisions_equal_the_unbatched_ones(exploration):
    encoder = RowEncoder()
    policy = classifier(encoder, exploration)
    texts = [f"order {i} never arrived" for i in range(12)]
    contexts = [DecisionContext(text=t, metadata={"n": i}) for i, t in enumerate(texts)]
    ids = [f"dec-{i}" for i in range(len(texts))]
    batched = concurrently(MicroBatcher(max_wait_ms=200.0, max_batch=64), policy, contexts, ids)
    assert max(encoder.calls) > 1  # some requests did share a pass
    encoder.calls.clear()
    alone = [policy.decide(c, request_rng(i)) for c, i in zip(contexts, ids, strict=True)]
    assert encoder.calls == [1] * len(texts)
    assert [comparable(d) for d in batched] == [comparable(d) for d in alone]
    assert [d.metadata for d in batched] == [{"n": i} for i in range(len(texts))]


def test_a_full_batch_runs_at_once_and_the_rest_start_a_new_one():
    encoder = RowEncoder()
    policy = classifier(encoder, Exploration("sample"))
    contexts = [DecisionContext(text=f"t{i}") for i in range(8)]
    # a long wait: only the size bound can end the first batch early
    concurrently(MicroBatcher(max_wait_ms=2000.0, max_batch=4), policy, contexts, [str(i) for i in range(8)])
    assert sorted(encoder.calls) == [4, 4]


def test_a_lone_request_waits_at_most_max_wait():
    encoder = RowEncoder()
    policy = classifier(encoder, Exploration("greedy"))
    d = MicroBatcher(max_wait_ms=1.0).decide(policy, DecisionContext(text="hello"), request_rng("a"))
    assert encoder.calls == [1]
    assert d.action in LABELS and d.latency_ms is not None and d.latency_ms < 1000


def test_missing_text_is_refused_before_batching_and_encoder_errors_reach_every_request():
    encoder = RowEncoder()
    policy = classifier(encoder, Exploration("sample"))
    with pytest.raises(PolicyInputError, match="text"):
        MicroBatcher().decide(policy, DecisionContext(features=(1.0,)), request_rng("a"))
    assert encoder.calls == []

    def broken(texts):
        raise RuntimeError("encoder down")

    encoder.encode = broken  # type: ignore[method-assign]
    batcher = MicroBatcher(max_wait_ms=100.0)
    errors: list[BaseException] = []

    def one(i: int) -> None:
        try:
            batcher.decide(policy, DecisionContext(text=f"t{i}"), request_rng(str(i)))
        except RuntimeError as err:
            errors.append(err)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [str(e) for e in errors] == ["encoder down"] * 3


def test_policies_without_a_batch_method_decide_alone():
    class Fixed:
        def decide(self, context, rng):
            return "decided"

    assert MicroBatcher().decide(Fixed(), DecisionContext(text="x"), request_rng("a")) == "decided"  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"max_wait_ms": -1.0}, "max_wait_ms"),
        ({"max_wait_ms": float("nan")}, "max_wait_ms"),
        ({"max_batch": 0}, "max_batch"),
        ({"max_batch": 2.5}, "max_batch"),
    ],
)
def test_bad_settings_are_refused(kwargs, field):
    with pytest.raises(ValueError, match=field):
        MicroBatcher(**kwargs)


def test_the_next_batch_fills_while_the_previous_one_runs():
    # The first pass blocks until released: every request arriving meanwhile must join one second batch.
    release, entered = threading.Event(), threading.Event()
    encoder = RowEncoder()
    plain = encoder.encode

    def slow(texts):
        if not entered.is_set():
            entered.set()
            release.wait(5)
        return plain(texts)

    encoder.encode = slow  # type: ignore[method-assign]
    policy = classifier(encoder, Exploration("sample"))
    batcher = MicroBatcher(max_wait_ms=1.0, max_batch=64)
    first = threading.Thread(
        target=batcher.decide, args=(policy, DecisionContext(text="t0"), request_rng("0"))
    )
    first.start()
    assert entered.wait(5)
    rest = [
        threading.Thread(
            target=batcher.decide, args=(policy, DecisionContext(text=f"t{i}"), request_rng(str(i)))
        )
        for i in range(1, 6)
    ]
    for t in rest:
        t.start()

    def queued() -> int:  # requests in the batch waiting behind the first pass
        batch = batcher._open.get(id(policy))
        return 0 if batch is None else len(batch.items)

    while queued() < 5:
        threading.Event().wait(0.005)
    release.set()
    for t in [first, *rest]:
        t.join()
    assert encoder.calls == [1, 5]
