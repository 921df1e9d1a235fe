"""Feedback writes with group commit: concurrent requests share one transaction.

Each ``POST /v1/feedback`` hands its validated record to :meth:`FeedbackWriter.submit` and waits. One
writer task per worker takes everything that is waiting (up to ``max_batch``), checks in one query that
each row's decision exists in the caller's project, writes the good rows with the store's
``write_feedback`` (which validates again and checks the decisions exist) in one transaction, then
answers each request: 201 once its row is committed, or the error naming the field. A request is never
acknowledged before its row is committed, so "acknowledged ⇒ stored" holds; a failed commit fails every
request of the batch (none was acknowledged).

Why: on SQLite (WAL) the per-request cost is the transaction and the connection checkout, not the row;
under load the batch grows by itself while the previous commit runs, and at low load a batch is one row,
so nothing waits for a timer.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import anyio.to_thread

from rewardloop.service.middleware import Metrics
from rewardloop.store import Store, write_feedback
from rewardloop.store.insights import decision_projects
from rewardloop.types import Feedback


class FeedbackRejected(Exception):
    """Feedback that was not stored: the HTTP status, the message and the field."""

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        self.status = status
        self.field = field
        super().__init__(message)


@dataclass
class _Pending:
    feedback: Feedback
    project: str
    future: asyncio.Future[None]


class FeedbackWriter:
    """Writes feedback for the service, one group commit at a time.

    Examples
    --------
    >>> from rewardloop.store import Store
    >>> writer = FeedbackWriter(Store.open("sqlite://"))
    >>> writer.write_batch([])
    []
    """

    def __init__(
        self, store: Store, group_commit: bool = True, max_batch: int = 512, metrics: Metrics | None = None
    ) -> None:
        self.store = store
        self.group_commit = group_commit
        self.max_batch = max_batch
        self.metrics = metrics
        self._queue: asyncio.Queue[_Pending | None] | None = None
        self._task: asyncio.Task[None] | None = None

    def write_batch(self, items: list[tuple[Feedback, str]]) -> list[FeedbackRejected | None]:
        """Write ``(feedback, project)`` pairs in one transaction; per item None (stored) or the error."""
        if not items:
            return []
        projects = decision_projects(self.store, (f.decision_id for f, _ in items))
        results: list[FeedbackRejected | None] = [None] * len(items)
        good: list[Feedback] = []
        where: list[int] = []
        for i, (f, project) in enumerate(items):
            if projects.get(f.decision_id) != project:
                # The same answer for another project's decision as for a missing one: nothing leaks.
                results[i] = FeedbackRejected(
                    404, f"decision_id: no decision {f.decision_id!r} in this project", "decision_id"
                )
                continue
            good.append(f)
            where.append(i)
        if good:
            report = write_feedback(self.store, good, skip_invalid=True)
            for err in report.invalid:
                i = where[err.row or 0]
                status = 404 if err.field == "decision_id" else 422
                results[i] = FeedbackRejected(status, f"{err.field}: {err.reason}", err.field)
        if self.metrics is not None:
            self.metrics.batch_size.observe(len(items))
            for (f, _), result in zip(items, results, strict=True):
                if result is None:
                    self.metrics.feedback.labels(f.kind).inc()
        return results

    async def start(self) -> None:
        if self.group_commit and self._task is None:
            self._queue = asyncio.Queue()
            self._task = asyncio.create_task(self._run(), name="rewardloop-feedback-writer")

    async def stop(self) -> None:
        """Write what is queued, then stop."""
        if self._task is not None and self._queue is not None:
            self._queue.put_nowait(None)
            await self._task
            self._task = None
            self._queue = None

    async def submit(self, feedback: Feedback, project: str) -> None:
        """Store one feedback row; returns once it is committed, raises FeedbackRejected otherwise."""
        if self._queue is None:
            (result,) = await anyio.to_thread.run_sync(self.write_batch, [(feedback, project)])
            if result is not None:
                raise result
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Pending(feedback, project, future))
        await future

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
                    item = queue.get_nowait()
                except asyncio.QueueEmpty:
                    break
                if item is None:
                    stopping = True
                    break
                batch.append(item)
            await self._commit(batch)

    async def _commit(self, batch: list[_Pending]) -> None:
        try:
            results = await anyio.to_thread.run_sync(
                self.write_batch, [(p.feedback, p.project) for p in batch]
            )
        except Exception as err:  # the store failed: nobody of this batch is acknowledged
            for p in batch:
                if not p.future.done():
                    p.future.set_exception(FeedbackRejected(503, f"the store refused the write: {err}"))
            return
        for p, result in zip(batch, results, strict=True):
            if p.future.done():  # the client went away; its row is stored (or not) all the same
                continue
            if result is None:
                p.future.set_result(None)
            else:
                p.future.set_exception(result)
