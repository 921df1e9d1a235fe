"""Group commit: concurrent requests of one worker share one transaction.

A request hands its validated record to :meth:`GroupCommitWriter.submit` and waits. One writer task per
worker takes everything that is waiting (up to ``max_batch``), runs :meth:`write_batch` on it in a
thread (one transaction), then answers each request with its own result or error. A request is never
answered before its row is committed, so "acknowledged ⇒ stored" holds.

Why: on SQLite (WAL) the per-request cost is the transaction, the connection checkout and, with many
threads, the wait for the one write lock — not the row. Under load a batch grows by itself while the
previous commit runs; at low load a batch is one row, so nothing waits for a timer.

A batch whose transaction fails is written again one item at a time, so that a row the database
refuses fails alone (422) and the other requests of its batch still commit.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Generic, TypeVar

import anyio.to_thread
from sqlalchemy.exc import DataError, IntegrityError

from rewardloop.service.middleware import Metrics
from rewardloop.store import Store

T = TypeVar("T")
R = TypeVar("R")


class Rejected(Exception):
    """A write that was refused: the HTTP status, the message and the field."""

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        self.status = status
        self.field = field
        super().__init__(message)


@dataclass
class _Pending(Generic[T, R]):
    item: T
    future: asyncio.Future[R]


class GroupCommitWriter(Generic[T, R]):
    """Batches :meth:`submit` calls into :meth:`write_batch` calls (subclasses implement it).

    ``write_batch(items)`` returns one entry per item: its result, or a :class:`Rejected` to raise.
    With ``group_commit=False`` (or before :meth:`start`) every item is written alone.
    """

    name = "writer"

    def __init__(
        self, store: Store, group_commit: bool = True, max_batch: int = 512, metrics: Metrics | None = None
    ) -> None:
        self.store = store
        self.group_commit = group_commit
        self.max_batch = max_batch
        self.metrics = metrics
        self._queue: asyncio.Queue[_Pending[T, R] | None] | None = None
        self._task: asyncio.Task[None] | None = None

    def write_batch(self, items: list[T]) -> list[R | Rejected]:
        raise NotImplementedError

    async def start(self) -> None:
        if self.group_commit and self._task is None:
            self._queue = asyncio.Queue()
            self._task = asyncio.create_task(self._run(), name=f"rewardloop-{self.name}")

    async def stop(self) -> None:
        """Write what is queued, then stop."""
        if self._task is not None and self._queue is not None:
            self._queue.put_nowait(None)
            await self._task
            self._task = None
            self._queue = None

    async def submit_item(self, item: T) -> R:
        """Write one item; returns its result once committed, raises its Rejected otherwise."""
        if self._queue is None:
            (result,) = await anyio.to_thread.run_sync(self.write_batch, [item])
            if isinstance(result, Rejected):
                raise result
            return result
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Pending(item, future))
        return await future

    async def _run(self) -> None:
        assert self._queue is not None
        queue = self._queue
        stopping = False
        while not stopping:
            first = await queue.get()
            if first is None:
                break
            batch = [first]
            while len(batch) < self.max_batch:
                try:
                    pending = queue.get_nowait()
                except asyncio.QueueEmpty:
                    break
                if pending is None:
                    stopping = True
                    break
                batch.append(pending)
            await self._commit(batch)

    async def _commit(self, batch: list[_Pending[T, R]]) -> None:
        try:
            results = await anyio.to_thread.run_sync(self.write_batch, [p.item for p in batch])
        except Exception as err:
            if len(batch) == 1:  # this item's own write failed: nobody else is concerned
                results = [_refused(err)]
            else:  # one bad row must not fail the innocent: write each alone (nothing was committed)
                for p in batch:
                    await self._commit([p])
                return
        for p, result in zip(batch, results, strict=True):
            if p.future.done():  # the client went away; its row is stored (or not) all the same
                continue
            if isinstance(result, Rejected):
                p.future.set_exception(result)
            else:
                p.future.set_result(result)


def _refused(err: Exception) -> Rejected:
    """A write the store refused: 422 if the row itself cannot be stored (the database's data or
    integrity check), 503 if the store failed (unreachable, timed out, ...)."""
    if isinstance(err, (DataError, IntegrityError)):
        return Rejected(422, f"the store cannot hold this row: {str(err.orig).strip()}")
    return Rejected(503, f"the store refused the write: {err}")
