"""Decision logging with group commit (:mod:`~rewardloop.service.group_commit`), and the review queue.

Each batch writes every decision (and shadow challenger decision) with the store's ``write_decisions``
in one transaction, then queues the new ones the review policy picks in one more. A decision that was
not written because its id or idempotency key was already used answers the earlier decision's id, if
that decision is the caller's project's; otherwise 409.
"""

from __future__ import annotations

from dataclasses import dataclass

from rewardloop.loop.review import ReviewPolicy
from rewardloop.service.group_commit import GroupCommitWriter, Rejected
from rewardloop.service.middleware import Metrics
from rewardloop.store import Store, existing_decision_ids, log_decision, write_decisions
from rewardloop.store.insights import decision_projects
from rewardloop.store.review import enqueue_review
from rewardloop.types import Decision


@dataclass(frozen=True)
class DecisionJob:
    """A decision to log for ``project``; ``shadow`` is a shadow challenger's decision on the same request
    (logged too), ``shadow_action`` what it chose (for the disagreement review)."""

    decision: Decision
    project: str
    source: str = "decide"
    shadow: Decision | None = None
    shadow_action: str | None = None


@dataclass(frozen=True)
class Logged:
    decision_id: str
    new: bool
    review_reason: str | None


class DecisionWriter(GroupCommitWriter[DecisionJob, Logged]):
    """Logs decisions for the service, one group commit at a time, and feeds the review queue.

    Examples
    --------
    >>> from rewardloop.store import Store
    >>> DecisionWriter(Store.open("sqlite://"), ReviewPolicy()).write_batch([])
    []
    """

    name = "decision-writer"

    def __init__(
        self,
        store: Store,
        review: ReviewPolicy,
        group_commit: bool = True,
        max_batch: int = 512,
        metrics: Metrics | None = None,
    ) -> None:
        super().__init__(store, group_commit, max_batch, metrics)
        self.review = review

    async def submit(self, job: DecisionJob) -> Logged:
        """Log one decision; returns once it is committed (and queued for review if it needs it)."""
        return await self.submit_item(job)

    def write_batch(self, items: list[DecisionJob]) -> list[Logged | Rejected]:
        if not items:
            return []
        ids = [j.decision.id for j in items]
        before = existing_decision_ids(self.store, ids)
        rows = [d for j in items for d in (j.decision, j.shadow) if d is not None]
        write_decisions(self.store, rows)
        after = existing_decision_ids(self.store, ids)
        results: list[Logged | Rejected] = []
        fresh: list[tuple[int, DecisionJob]] = []
        for i, job in enumerate(items):
            d = job.decision
            if d.id in after and d.id not in before:
                fresh.append((i, job))
                results.append(Logged(d.id, True, None))
                continue
            # Not written: its id or idempotency key was used before. Answer the earlier decision's id
            # if it is this project's; never touch or reveal another project's.
            stored_id = d.id if d.id in before else log_decision(self.store, d)
            if decision_projects(self.store, [stored_id]).get(stored_id) != job.project:
                results.append(Rejected(409, "id or idempotency_key: already used; choose another", "id"))
            else:
                results.append(Logged(stored_id, False, None))
        queued = []
        for i, job in fresh:
            item = self.review.assess(job.decision, job.shadow_action)
            if item is not None:
                queued.append(item)
                results[i] = Logged(job.decision.id, True, item.reason)
        enqueue_review(self.store, queued)  # fresh decisions: none is queued yet
        if self.metrics is not None:
            self.metrics.batch_size.labels("decisions").observe(len(items))
            for _, job in fresh:
                d = job.decision
                self.metrics.decisions.labels(d.variant or "", job.source).inc()
            for item in queued:
                self.metrics.review_enqueued.labels(item.reason).inc()
        return results
