"""Feedback writes with group commit (:mod:`~rewardloop.service.group_commit`).

Each batch: one query checks that every row's decision exists in the caller's project, then the store's
``write_feedback`` (which validates again and checks the decisions exist) writes the good rows in one
transaction; each request gets 201 once its row is committed, or the error naming the field.
"""

from __future__ import annotations

from rewardloop.service.group_commit import GroupCommitWriter, Rejected
from rewardloop.store import write_feedback
from rewardloop.store.insights import decision_projects
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
        """Write ``(feedback, project)`` pairs in one transaction; per item None (stored) or the error."""
        if not items:
            return []
        projects = decision_projects(self.store, (f.decision_id for f, _ in items))
        results: list[Rejected | None] = [None] * len(items)
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
            self.metrics.batch_size.labels("feedback").observe(len(items))
            for (f, _), result in zip(items, results, strict=True):
                if result is None:
                    self.metrics.feedback.labels(f.kind).inc()
        return results
