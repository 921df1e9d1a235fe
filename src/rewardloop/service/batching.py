"""Micro-batching of concurrent decisions: one encoder pass for the requests that arrive together.

Each ``/v1/decide`` runs in a worker thread. For a policy that can score texts in a batch (a classifier:
``predict_proba(texts)`` then ``decisions_from_proba``), the first request to arrive opens a batch for
that loaded policy and waits up to ``max_wait_ms`` (or until ``max_batch`` requests joined); then one
``predict_proba`` call scores every text, and each request gets its own decision drawn from its own
generator (the one :func:`~rewardloop.loop.serving.request_rng` seeds from its id), exactly as
``policy.decide(context, rng)`` would have drawn it. One batch per policy runs at a time; the next one
keeps filling meanwhile. The encoder's fixed cost per call (tokenizer,
framework dispatch, one matrix pass per layer) is then paid once per batch instead of once per request.

Other policies (routers, rerankers, gated classifiers) decide one request at a time, unchanged.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from rewardloop.policies.contract import DecisionContext, Exploration, Policy
from rewardloop.types import Decision


@runtime_checkable
class BatchScorer(Protocol):
    """A policy whose decisions are a row-wise function of ``predict_proba`` (ClassifierPolicy)."""

    exploration: Exploration

    def predict_proba(self, texts: list[str]) -> npt.NDArray[np.float64]: ...

    def decisions_from_proba(self, *args: Any, **kwargs: Any) -> list[Decision]:
        """(texts, proba, exploration, rng, latency_ms, metadata) -> one decision per text."""


class _Batch:
    """The requests collected for one policy; the leader (first to arrive) runs it."""

    def __init__(self, policy: BatchScorer) -> None:
        self.policy = policy
        self.items: list[tuple[str, DecisionContext, np.random.Generator, float]] = []
        self.full = threading.Event()
        self.done = threading.Event()
        self.results: list[Decision] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            texts = [text for text, _, _, _ in self.items]
            proba = self.policy.predict_proba(texts)  # (n, K): one encoder pass
            end = time.perf_counter()
            for i, (text, context, rng, arrived) in enumerate(self.items):
                latency = (end - arrived) * 1000.0  # this request's wait + the batch's pass
                self.results.append(
                    self.policy.decisions_from_proba(
                        [text], proba[i : i + 1], self.policy.exploration, rng, latency, [context.metadata]
                    )[0]
                )
        except BaseException as err:  # every request of the batch sees the failure
            self.error = err
        finally:
            self.done.set()

    def result(self, slot: int) -> Decision:
        if self.error is not None:
            raise self.error
        return self.results[slot]


class MicroBatcher:
    """Groups concurrent decisions per loaded policy into one ``predict_proba`` call.

    Parameters
    ----------
    max_wait_ms : float, default 5.0
        How long the first request of a batch waits for others (the added latency at low traffic).
    max_batch : int, default 32
        A batch this full runs at once (bounds the encoder pass, and so every request's wait).

    Examples
    --------
    >>> batcher = MicroBatcher(max_wait_ms=2.0, max_batch=8)
    >>> batcher.max_batch
    8
    """

    def __init__(self, max_wait_ms: float = 5.0, max_batch: int = 32) -> None:
        if not (max_wait_ms >= 0 and np.isfinite(max_wait_ms)):
            raise ValueError(f"max_wait_ms: must be a finite number >= 0, got {max_wait_ms}")
        if not (isinstance(max_batch, int) and max_batch >= 1):
            raise ValueError(f"max_batch: must be an integer >= 1, got {max_batch!r}")
        self.max_wait_ms = max_wait_ms
        self.max_batch = max_batch
        self._lock = threading.Lock()
        self._open: dict[int, _Batch] = {}  # id(policy) -> the batch still taking requests
        self._running: dict[int, threading.Lock] = {}  # id(policy) -> held while its batch runs

    def decide(self, policy: Policy, context: DecisionContext, rng: np.random.Generator) -> Decision:
        """``policy.decide(context, rng)``, batched with concurrent calls for the same policy object."""
        if not isinstance(policy, BatchScorer):
            return policy.decide(context, rng)
        text = context.require_text()  # the same PolicyInputError as the unbatched path, before waiting
        key = id(policy)
        with self._lock:
            batch = self._open.get(key)
            leader = batch is None
            if batch is None:
                batch = self._open[key] = _Batch(policy)
            slot = len(batch.items)
            batch.items.append((text, context, rng, time.perf_counter()))
            if len(batch.items) >= self.max_batch:
                self._close(key, batch)
        if leader:
            batch.full.wait(self.max_wait_ms / 1000.0)
            # One pass at a time per policy: while the previous batch runs this one stays open and keeps
            # filling (so under load batches grow instead of competing for the same cores).
            with self._runner(key):
                with self._lock:
                    self._close(key, batch)
                batch.run()
        else:
            batch.done.wait()
        return batch.result(slot)

    def _runner(self, key: int) -> threading.Lock:
        with self._lock:
            return self._running.setdefault(key, threading.Lock())

    def _close(self, key: int, batch: _Batch) -> None:
        """Take ``batch`` out of the open ones (under the lock): later requests start a new batch."""
        if self._open.get(key) is batch:
            del self._open[key]
        batch.full.set()


__all__ = ["BatchScorer", "MicroBatcher"]
