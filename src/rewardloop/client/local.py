"""Local mode: the SDK's logging calls written to a store directly (no service), for batch jobs, notebooks
and apps that run beside their database. ``Client.local(store_url)`` builds one.

The rows are the service's: every decision is stamped with ``metadata["project"]``, a client id and
idempotency key make a re-run store each row once, and feedback must name a decision of the project.
Deciding (it needs the policy's model) and the review queue (fed by the service) are the service's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from rewardloop.client import wire
from rewardloop.client.models import ApiError, Closing, FeedbackReceipt, ItemFailure, LogReport
from rewardloop.store import Store
from rewardloop.store.insights import export_rows
from rewardloop.store.writing import WriteReport, write_decisions, write_feedback
from rewardloop.types import TimeWindow


def _report(rows: list[dict[str, Any]], written: WriteReport) -> LogReport:
    failed = [
        ItemFailure(rows[e.row or 0].get("id") if e.row is not None else None, 422, e.reason, e.field)
        for e in written.invalid
    ]
    failed += [
        ItemFailure(rows[e.row or 0].get("id") if e.row is not None else None, 409, e.reason, e.field)
        for e in written.conflicts
    ]
    return LogReport(written.written, written.duplicates, failed)


class LocalClient(Closing):
    """The logging half of :class:`~rewardloop.client.Client`, writing to ``store_url`` as ``project``.

    Decisions are buffered and written ``batch_size`` at a time (one transaction per batch), and by
    :meth:`flush` / :meth:`close`.
    """

    def __init__(self, store_url: str, project: str = "default", batch_size: int = 500) -> None:
        self.store = Store.open(store_url)
        self.project = project
        self.batch_size = batch_size
        self._buffer: list[dict[str, Any]] = []
        self._report = LogReport()

    def _row(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        row = wire.decision_body(fields)
        if "created_at" in row:  # as the service does: the client's time is kept beside the receipt time
            row["client_time"] = row.pop("created_at")
        row["metadata"] = {**row.get("metadata", {}), "project": self.project}
        return row

    def log_decision(self, **fields: Any) -> str:
        row = self._row(fields)
        self._buffer.append(row)
        if len(self._buffer) >= self.batch_size:
            self._write()
        return str(row["id"])

    def log_decisions(self, decisions: Iterable[Mapping[str, Any]]) -> list[str]:
        return [self.log_decision(**d) for d in decisions]

    def log_decisions_now(self, decisions: Iterable[Mapping[str, Any]]) -> LogReport:
        rows = [self._row(d) for d in decisions]
        return _report(rows, write_decisions(self.store, rows, skip_invalid=True))

    def _write(self) -> None:
        rows, self._buffer = self._buffer, []
        if rows:
            self._report.add(_report(rows, write_decisions(self.store, rows, skip_invalid=True)))

    def flush(self) -> LogReport:
        self._write()
        report, self._report = self._report, LogReport()
        return report

    def close(self) -> LogReport:
        report = self.flush()
        self.store.close()
        return report

    def feedback(self, decision_id: str, kind: str, **fields: Any) -> FeedbackReceipt:
        """Store one feedback row; ApiError (404 / 409 / 422, as the service answers) if refused."""
        body = wire.feedback_body({"decision_id": decision_id, "kind": kind, **fields})
        report = self.feedback_many([body])
        if report.failed:
            f = report.failed[0]
            raise ApiError(f.status, f"{f.field}: {f.detail}" if f.field else f.detail, f.field)
        return FeedbackReceipt(body["id"], decision_id)

    def feedback_many(self, rows: Iterable[Mapping[str, Any]]) -> LogReport:
        bodies = []
        for r in rows:
            body = wire.feedback_body(r)
            if "created_at" in body:
                body["client_time"] = body.pop("created_at")
            bodies.append(body)
        report = _report(bodies, write_feedback(self.store, bodies, skip_invalid=True, project=self.project))
        for f in report.failed:  # a reference to no decision of this project is a 404, as in the service
            if f.field == "decision_id":
                report.failed[report.failed.index(f)] = ItemFailure(f.id, 404, f.detail, f.field)
        return report

    def export_rows(
        self, policy: str | None = None, since: datetime | None = None, until: datetime | None = None
    ) -> list[dict[str, Any]]:
        return list(export_rows(self.store, self.project, policy=policy, window=TimeWindow(since, until)))


__all__ = ["LocalClient"]
