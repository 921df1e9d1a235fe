"""The asynchronous client: :class:`AsyncClient`, the same calls as :class:`~rewardloop.client.Client`
awaited (request bodies, retries and answers are :mod:`~rewardloop.client.wire`'s, shared with it)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable, Mapping
from datetime import datetime
from typing import Any, Unpack

import httpx

from rewardloop.client import wire
from rewardloop.client.models import (
    BulkAnswer,
    BulkReport,
    Decided,
    FeedbackReceipt,
    LogReport,
    Page,
    ReviewItem,
    ReviewPage,
    ReviewQueue,
)


class AsyncClient(wire.Settings[httpx.AsyncClient]):
    """An asyncio client of a rewardloop service; parameters as :class:`~rewardloop.client.Client`
    (``http``: an ``httpx.AsyncClient``, e.g. on ``httpx.ASGITransport(app)``)."""

    def _connect(self, base_url: str, timeout: float) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=base_url, timeout=timeout)

    def _open(self) -> None:
        self._queue: asyncio.Queue[dict[str, Any]] | None = None  # made on the first log_decision
        self._worker: asyncio.Task[None] | None = None

    async def _send(self, method: str, path: str, body: Any = None, **kwargs: Any) -> httpx.Response:
        headers, content = self._request_parts(method, body)
        tries = wire.Tries(self.retry)
        while (delay := tries.wait(*await self._try(method, path, headers, content, kwargs))) is not None:
            await asyncio.sleep(delay)
        return tries.answer()

    async def _try(
        self, method: str, path: str, headers: dict[str, str], content: bytes | None, kwargs: dict[str, Any]
    ) -> tuple[httpx.Response | None, Exception | None]:
        try:
            return await self._http.request(method, path, headers=headers, content=content, **kwargs), None
        except wire.RETRIED_ERRORS as err:
            return None, err

    async def _call(self, method: str, path: str, body: Any = None, **kwargs: Any) -> Any:
        return wire.answer(await self._send(method, path, body, **kwargs))

    async def decide(self, policy: str, **fields: Any) -> Decided:
        return wire.decided(await self._call("POST", "/v1/decide", wire.decide_body(policy, fields)))

    async def _batches(self, path: str, items: list[dict[str, Any]]) -> LogReport:
        report = LogReport()
        for chunk in self._chunks(items):
            report.add(wire.batch_report(chunk, await self._call("POST", path, {"items": chunk})))
        return report

    async def log_decisions_now(self, decisions: Iterable[Mapping[str, Any]]) -> LogReport:
        return await self._batches("/v1/decisions/batch", [wire.decision_body(d) for d in decisions])

    async def log_decision(self, **fields: Any) -> str:
        """Queue a decision for background logging (waits while the queue is full); its id."""
        item = wire.decision_body(fields)
        if self._queue is None:
            self._queue = asyncio.Queue(maxsize=self.queue_size)
            self._worker = asyncio.create_task(self._drain(self._queue), name="rewardloop-sdk-log")
        await self._queue.put(item)
        return str(item["id"])

    async def log_decisions(self, decisions: Iterable[Mapping[str, Any]]) -> list[str]:
        return [await self.log_decision(**d) for d in decisions]

    async def _drain(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await queue.get()]
            deadline = loop.time() + self.linger
            while len(batch) < self.batch_size:
                try:
                    batch.append(await asyncio.wait_for(queue.get(), max(0.0, deadline - loop.time())))
                except TimeoutError:
                    break
            try:
                report = await self.log_decisions_now(batch)
            except Exception as err:  # whatever went wrong, flush() must not wait for ever: report the batch
                report = LogReport(failed=wire.failures(batch, err))
            self._report.add(report)
            for _ in batch:
                queue.task_done()

    async def flush(self) -> LogReport:
        if self._queue is not None:
            await self._queue.join()
        report, self._report = self._report, LogReport()
        return report

    async def close(self) -> LogReport:
        report = await self.flush()
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker, self._queue = None, None
        await self._http.aclose()
        return report

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def feedback(self, decision_id: str, kind: str, **fields: Any) -> FeedbackReceipt:
        body = wire.feedback_body({"decision_id": decision_id, "kind": kind, **fields})
        return wire.receipt(await self._call("POST", "/v1/feedback", body))

    async def feedback_many(self, rows: Iterable[Mapping[str, Any]]) -> LogReport:
        return await self._batches("/v1/feedback/batch", [wire.feedback_body(r) for r in rows])

    async def review_queue(
        self, status: Iterable[str] = ("open", "claimed"), limit: int = 50, page_token: str | None = None
    ) -> ReviewQueue:
        """As :meth:`rewardloop.client.Client.review_queue`."""
        params = wire.page_params(limit, page_token, status=list(status))
        return wire.review_queue(await self._call("GET", "/v1/review", params=params))

    async def iter_review(
        self, status: Iterable[str] = ("open", "claimed"), page_size: int = 100
    ) -> AsyncIterator[ReviewItem]:
        """As :meth:`rewardloop.client.Client.iter_review`."""
        statuses = list(status)
        async for item in wire.afollow(lambda token: self.review_queue(statuses, page_size, token)):
            yield item

    async def review_next(self, **query: Unpack[wire.ReviewQuery]) -> ReviewPage:
        """As :meth:`rewardloop.client.Client.review_next`."""
        params = wire.review_next_params(query)
        return wire.review_page(await self._call("GET", "/v1/review/next", params=params))

    async def review_bulk(self, answers: Iterable[BulkAnswer]) -> BulkReport:
        """As :meth:`rewardloop.client.Client.review_bulk`."""
        report = BulkReport()
        for body in wire.bulk_bodies(answers):
            report.add(wire.bulk_report(await self._call("POST", "/v1/review/bulk", body)))
        return report

    async def list_page(self, name: str, limit: int = 50, page_token: str | None = None) -> Page:
        """As :meth:`rewardloop.client.Client.list_page`."""
        params = wire.page_params(limit, page_token)
        return wire.page(await self._call("GET", wire.LIST_ROUTES[name], params=params))

    async def iter_list(self, name: str, page_size: int = 100) -> AsyncIterator[dict[str, Any]]:
        """As :meth:`rewardloop.client.Client.iter_list`."""
        async for item in wire.afollow(lambda token: self.list_page(name, page_size, token)):
            yield item

    async def claim(self, item_id: str) -> ReviewItem:
        return wire.review_item(await self._call("POST", f"/v1/review/{item_id}/claim"))

    async def skip(self, item_id: str) -> ReviewItem:
        """As :meth:`rewardloop.client.Client.skip`."""
        return wire.review_item(await self._call("POST", f"/v1/review/{item_id}/skip"))

    async def rate(self, item_id: str, rating: int | None = None, better: str | None = None) -> ReviewItem:
        """As :meth:`rewardloop.client.Client.rate`."""
        body = wire.resolve_body(None, None, None, rating, better)
        return wire.review_item(await self._call("POST", f"/v1/review/{item_id}/resolve", body))

    async def resolve(
        self, item_id: str, label: str | None = None, comment: str | None = None, labels: wire.Labels = None
    ) -> ReviewItem:
        """As :meth:`rewardloop.client.Client.resolve`."""
        body = wire.resolve_body(label, comment, labels)
        return wire.review_item(await self._call("POST", f"/v1/review/{item_id}/resolve", body))

    async def export_rows(
        self, policy: str | None = None, since: datetime | None = None, until: datetime | None = None
    ) -> list[dict[str, Any]]:
        params = wire.export_params("jsonl", policy, since, until)
        return wire.jsonl(await self._send("GET", "/v1/export", params=params))
