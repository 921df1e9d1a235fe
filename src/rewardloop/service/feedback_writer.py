"""Feedback writes with group commit (:mod:`~rewardloop.service.group_commit`).

Each batch, in one transaction: one query checks that every row's decision exists in the caller's
project and that a correction names one of its labels, then the good rows are written; each request
gets 201 once its row is committed (or when it replays a stored row: same id, same body), 409 for an id
used before in the project with another body, or the error naming the field.
"""

from __future__ import annotations

from rewardloop.service.group_commit import GroupCommitWriter, Rejected
from rewardloop.store.writing import check_references, insert_feedback
from rewardloop.types import Feedback

#: Kept as the feedback routes' name for a refused write.
FeedbackRejected = Rejected


class FeedbackWriter(GroupCommitWriter[tuple[Feedback, str], None]):
    """Writes ``(feedback, project)`` pairs for the service, one group commit at a time.

    Examples
    --------
    >>> from rewardloop.store import Store
    >>> writer = FeedbackWriter(Store.open("sqlite://"))
    >>> writer.write_batch([])
    []
    """

    name = "feedback-writer"

    async def submit(self, feedback: Feedback, project: str) -> None:
        """Store one feedback row; returns once it is committed, raises FeedbackRejected otherwise."""
        await self.submit_item((feedback, project))

    def write_batch(self, items: list[tuple[Feedback, str]]) -> list[Rejected | None]:
        """Write ``(feedback, project)`` pairs in one transaction; per item None (stored, or a replay of
        the same id and body) or the error."""
        if not items:
            return []
        results: list[Rejected | None] = [None] * len(items)
        by_project: dict[str, list[int]] = {}
        for i, (_, project) in enumerate(items):
            by_project.setdefault(project, []).append(i)
        with self.store.engine.begin() as conn:
            for project, rows in by_project.items():
                # Another project's decision gets the same answer as a missing one: nothing leaks.
                good, kept, bad = check_references(conn, [items[i][0] for i in rows], rows, project)
                for err in bad:
                    status = 404 if err.field == "decision_id" else 422
                    results[err.row or 0] = FeedbackRejected(status, f"{err.field}: {err.reason}", err.field)
                for row, outcome in zip(kept, insert_feedback(conn, good), strict=True):
                    if outcome.error is not None:
                        message = f"{outcome.error.field}: {outcome.error.reason}"
                        results[row] = FeedbackRejected(409, message, outcome.error.field)
        if self.metrics is not None:
            self.metrics.batch_size.labels("feedback").observe(len(items))
            for (f, _), result in zip(items, results, strict=True):
                if result is None:
                    self.metrics.feedback.labels(f.kind).inc()
        return results
