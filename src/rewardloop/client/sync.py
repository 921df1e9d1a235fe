"""The synchronous client: ``Client(base_url, api_key)``; ``Client.local(store_url)`` writes to a store."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Unpack

import httpx

from rewardloop.client import wire
from rewardloop.client.models import (
    BulkAnswer,
    BulkReport,
    Closing,
    Decided,
    FeedbackReceipt,
    LogReport,
    Page,
    ReviewItem,
    ReviewPage,
    ReviewQueue,
)

if TYPE_CHECKING:
    from rewardloop.client.local import LocalClient

_STOP = object()


class Client(wire.Settings[httpx.Client], Closing):
    """A client of a rewardloop service.

    Parameters
    ----------
    base_url : str
        The service, e.g. ``http://127.0.0.1:8000``.
    api_key : str, optional
        Sent as ``Authorization: Bearer``.
    timeout : float
        Seconds per request (connect, read, write).
    retry : RetryPolicy
        Backoff on 429, 503 and connection errors (every write carries an idempotency key, so a retry of
        a write whose answer was lost is stored once).
    batch_size, queue_size, linger : int, int, float
        Background logging (:meth:`log_decision`): at most ``batch_size`` decisions per request, at most
        ``queue_size`` waiting (a full queue makes :meth:`log_decision` wait), and a batch leaves after
        ``linger`` seconds even if not full.
    http : httpx.Client, optional
        The HTTP client to use (tests pass the app's ``TestClient``).
    """

    def _connect(self, base_url: str, timeout: float) -> httpx.Client:
        return httpx.Client(base_url=base_url, timeout=timeout)

    def _open(self) -> None:
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=self.queue_size)
        self._lock = threading.Lock()
        self._worker: threading.Thread | None = None

    @staticmethod
    def local(store_url: str, project: str = "default", batch_size: int = 500) -> LocalClient:
        """A client that writes to the store at ``store_url`` directly (no service)."""
        from rewardloop.client.local import LocalClient

        return LocalClient(store_url, project, batch_size)

    # ------------------------------------------------------------------------------------ transport

    def _send(self, method: str, path: str, body: Any = None, **kwargs: Any) -> httpx.Response:
        """Send (again, on 429/503/connection errors, as the retry policy says); the last answer."""
        headers, content = self._request_parts(method, body)
        tries = wire.Tries(self.retry)
        while (delay := tries.wait(*self._try(method, path, headers, content, kwargs))) is not None:
            time.sleep(delay)
        return tries.answer()

    def _try(
        self, method: str, path: str, headers: dict[str, str], content: bytes | None, kwargs: dict[str, Any]
    ) -> tuple[httpx.Response | None, Exception | None]:
        try:
            return self._http.request(method, path, headers=headers, content=content, **kwargs), None
        except wire.RETRIED_ERRORS as err:
            return None, err

    def _call(self, method: str, path: str, body: Any = None, **kwargs: Any) -> Any:
        return wire.answer(self._send(method, path, body, **kwargs))

    # ----------------------------------------------------------------------------------- decisions

    def decide(self, policy: str, **fields: Any) -> Decided:
        """Decide with the policy in force (``text=``, ``features=``, ``candidates=``, ``unit_id=`` ...)."""
        return wire.decided(self._call("POST", "/v1/decide", wire.decide_body(policy, fields)))

    def _batches(self, path: str, items: list[dict[str, Any]]) -> LogReport:
        report = LogReport()
        for chunk in self._chunks(items):
            report.add(wire.batch_report(chunk, self._call("POST", path, {"items": chunk})))
        return report

    def log_decisions_now(self, decisions: Iterable[Mapping[str, Any]]) -> LogReport:
        """Log decisions made elsewhere in batch requests, now; what was stored, replayed, refused."""
        return self._batches("/v1/decisions/batch", [wire.decision_body(d) for d in decisions])

    def log_decision(self, **fields: Any) -> str:
        """Queue a decision made elsewhere for background logging; returns its id at once. Call
        :meth:`flush` to wait until every queued decision is delivered."""
        item = wire.decision_body(fields)
        self._start()
        self._queue.put(item)
        return str(item["id"])

    def log_decisions(self, decisions: Iterable[Mapping[str, Any]]) -> list[str]:
        """Queue many decisions for background logging; their ids."""
        return [self.log_decision(**d) for d in decisions]

    def _start(self) -> None:
        if self._worker is None:
            with self._lock:
                if self._worker is None:
                    self._worker = threading.Thread(
                        target=self._drain, name="rewardloop-sdk-log", daemon=True
                    )
                    self._worker.start()

    def _drain(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                self._queue.task_done()
                return
            batch = [first]
            deadline = time.monotonic() + self.linger
            stop = False
            while len(batch) < self.batch_size:
                try:
                    item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if item is _STOP:
                    stop = True
                    break
                batch.append(item)
            self._deliver(batch)
            for _ in range(len(batch) + stop):
                self._queue.task_done()
            if stop:
                return

    def _deliver(self, batch: list[dict[str, Any]]) -> None:
        try:
            report = self.log_decisions_now(batch)
        except Exception as err:  # whatever went wrong, flush() must not wait for ever: report the batch
            report = LogReport(failed=wire.failures(batch, err))
        with self._lock:
            self._report.add(report)

    def flush(self) -> LogReport:
        """Wait until every queued decision is delivered; what was delivered since the last flush."""
        self._queue.join()
        with self._lock:
            report, self._report = self._report, LogReport()
        return report

    def close(self) -> LogReport:
        """Flush, stop the background logger and close the connections."""
        report = self.flush()
        if self._worker is not None:
            self._queue.put(_STOP)
            self._worker.join()
            self._worker = None
        self._http.close()
        return report

    # ------------------------------------------------------------------------------------ feedback

    def feedback(self, decision_id: str, kind: str, **fields: Any) -> FeedbackReceipt:
        """Store one feedback row (``value=``, ``scale=``, ``label=``, ...); a retry is stored once."""
        body = wire.feedback_body({"decision_id": decision_id, "kind": kind, **fields})
        return wire.receipt(self._call("POST", "/v1/feedback", body))

    def feedback_many(self, rows: Iterable[Mapping[str, Any]]) -> LogReport:
        """Store many feedback rows in batch requests; what was stored and refused."""
        return self._batches("/v1/feedback/batch", [wire.feedback_body(r) for r in rows])

    # -------------------------------------------------------------------------------------- review

    def review_queue(
        self, status: Iterable[str] = ("open", "claimed"), limit: int = 50, page_token: str | None = None
    ) -> ReviewQueue:
        """One page of the queue, highest priority first; pass its ``next_page_token`` for the next."""
        params = wire.page_params(limit, page_token, status=list(status))
        return wire.review_queue(self._call("GET", "/v1/review", params=params))

    def iter_review(
        self, status: Iterable[str] = ("open", "claimed"), page_size: int = 100
    ) -> Iterator[ReviewItem]:
        """Every item of the queue, following the page tokens (items that come in meanwhile with a
        lower priority than the page being read are included; none is seen twice)."""
        statuses = list(status)
        return wire.follow(lambda token: self.review_queue(statuses, page_size, token))

    def review_next(self, **query: Unpack[wire.ReviewQuery]) -> ReviewPage:
        """Your next page of the queue (``GET /v1/review/next``): the items you may take, highest
        priority first, filtered by ``policy``, ``reason`` and ``kind``, claimed for you as it opens
        (for ``review.claim_minutes``), with the counts and the reviewers' agreement."""
        params = wire.review_next_params(query)
        return wire.review_page(self._call("GET", "/v1/review/next", params=params))

    def review_bulk(self, answers: Iterable[BulkAnswer]) -> BulkReport:
        """Answer or skip many items (``POST /v1/review/bulk``, 100 a request), each on its own: a
        refused answer is listed in ``failed`` and the others are stored (a retried submit whose
        answer was lost lists its items as ``conflict``: already answered by you)."""
        report = BulkReport()
        for body in wire.bulk_bodies(answers):
            report.add(wire.bulk_report(self._call("POST", "/v1/review/bulk", body)))
        return report

    def list_page(self, name: str, limit: int = 50, page_token: str | None = None) -> Page:
        """One page of ``policies``, ``experiments`` or ``keys`` (the items as the service answers)."""
        params = wire.page_params(limit, page_token)
        return wire.page(self._call("GET", wire.LIST_ROUTES[name], params=params))

    def iter_list(self, name: str, page_size: int = 100) -> Iterator[dict[str, Any]]:
        """Every item of ``policies``, ``experiments`` or ``keys``, following the page tokens."""
        return wire.follow(lambda token: self.list_page(name, page_size, token))

    def claim(self, item_id: str) -> ReviewItem:
        return wire.review_item(self._call("POST", f"/v1/review/{item_id}/claim"))

    def skip(self, item_id: str) -> ReviewItem:
        """Pass on an item: it is not shown to you again, and your claim on it is released."""
        return wire.review_item(self._call("POST", f"/v1/review/{item_id}/skip"))

    def rate(self, item_id: str, rating: int | None = None, better: str | None = None) -> ReviewItem:
        """Answer a reranker's or generator's item: ``rating`` (1–5), ``better`` (one of its ``pair``)."""
        body = wire.resolve_body(None, None, None, rating, better)
        return wire.review_item(self._call("POST", f"/v1/review/{item_id}/resolve", body))

    def resolve(
        self, item_id: str, label: str | None = None, comment: str | None = None, labels: wire.Labels = None
    ) -> ReviewItem:
        """Resolve an item: ``label`` (the right action) and, for a decision with a set, ``labels`` (the
        right set; a ``set`` decision takes ``labels`` alone)."""
        body = wire.resolve_body(label, comment, labels)
        return wire.review_item(self._call("POST", f"/v1/review/{item_id}/resolve", body))

    # -------------------------------------------------------------------------------------- export

    def export_rows(
        self, policy: str | None = None, since: datetime | None = None, until: datetime | None = None
    ) -> list[dict[str, Any]]:
        """The project's feedback joined with its decisions, one dict per row (``EXPORT_COLUMNS``)."""
        params = wire.export_params("jsonl", policy, since, until)
        return wire.jsonl(self._send("GET", "/v1/export", params=params))

    def export_to(
        self,
        path: str | Path,
        format: str = "jsonl",
        policy: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> Path:
        """Write the export (``jsonl``, ``csv`` or ``parquet``) to ``path``."""
        response = self._send("GET", "/v1/export", params=wire.export_params(format, policy, since, until))
        if response.status_code >= 400:
            wire.answer(response)  # raises ApiError
        out = Path(path)
        out.write_bytes(response.content)
        return out
