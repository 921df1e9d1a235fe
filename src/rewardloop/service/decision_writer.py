"""Decision logging with group commit (:mod:`~rewardloop.service.group_commit`), and the review queue.

Each batch writes every decision (and shadow challenger decision) and queues the new ones the review
policy picks, in one transaction. A decision that was not written because its id or idempotency key
was already used answers the earlier decision's id if the request is the same (a replay: for
``/v1/decide`` the same request context, for ``/v1/decisions`` the same body) and that decision is the
caller's project's; otherwise 409. A decision over ``store.max_actions`` fails alone with a 422.
"""

from __future__ import annotations

from dataclasses import dataclass

from rewardloop.loop.review import ReviewPolicy
from rewardloop.service.group_commit import GroupCommitWriter, Rejected
from rewardloop.service.middleware import Metrics
from rewardloop.store import Store
from rewardloop.store.review import insert_review_items
from rewardloop.store.writing import DEFAULT_PROJECT, Match, Outcome, check_decision_limits, insert_decisions
from rewardloop.types import Decision, RecordError


@dataclass(frozen=True)
class DecisionJob:
    """A decision to log for ``project``; ``shadow`` is a shadow challenger's decision on the same request
    (logged too), ``shadow_action`` what it chose (for the disagreement review); ``answer`` the decision
    of the policy a router's chosen arm names (logged in the same transaction)."""

    decision: Decision
    project: str
    source: str = "decide"
    shadow: Decision | None = None
    shadow_action: str | None = None
    answer: Decision | None = None

    def rows(self) -> list[Decision]:
        """The decisions this job logs, the served one first."""
        return [d for d in (self.decision, self.shadow, self.answer) if d is not None]


@dataclass(frozen=True)
class Logged:
    decision_id: str
    new: bool
    review_reason: str | None
    answer_id: str | None = None  # the id the job's answer is stored under (a replay's: the first's)


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
        """Log the jobs' decisions and queue the new ones for review, all in one transaction (killed
        anywhere, either both are stored or neither, and a retry logs and queues afresh)."""
        if not items:
            return []
        results: list[Logged | Rejected | None] = [None] * len(items)
        jobs: list[tuple[int, DecisionJob]] = []
        for i, job in enumerate(items):
            try:
                for d in job.rows():
                    check_decision_limits(self.store, d)
                jobs.append((i, job))
            except RecordError as err:
                results[i] = Rejected(422, f"{err.field}: {err.reason}", err.field)
        rows = [d for _, j in jobs for d in j.rows()]
        matches: list[Match] = [
            "context" if j.source == "decide" else "record" for _, j in jobs for _ in j.rows()
        ]
        fresh: list[tuple[int, DecisionJob]] = []
        queued = []
        with self.store.engine.begin() as conn:
            outcomes = iter(insert_decisions(conn, rows, matches))
            for i, job in jobs:
                outcome = next(outcomes)
                extra = [next(outcomes) for _ in job.rows()[1:]]  # the shadow's and the answer's
                results[i] = self._answer(
                    job, outcome, extra[-1].stored_id if job.answer is not None else None
                )
                if outcome.status == "new":
                    fresh.append((i, job))
            for i, job in fresh:
                item = self.review.assess(job.decision, job.shadow_action)
                if item is not None:
                    queued.append(item)
                    new = results[i]
                    assert isinstance(new, Logged)  # a fresh job's result is the Logged above
                    results[i] = Logged(job.decision.id, True, item.reason, new.answer_id)
            insert_review_items(conn, queued)  # fresh decisions: none is queued yet
        if self.metrics is not None:
            self.metrics.batch_size.labels("decisions").observe(len(items))
            for _, job in fresh:
                d = job.decision
                self.metrics.decisions.labels(d.variant or "", job.source).inc()
            for item in queued:
                self.metrics.review_enqueued.labels(item.reason).inc()
        return [r for r in results if r is not None]

    @staticmethod
    def _answer(job: DecisionJob, outcome: Outcome, answer_id: str | None) -> Logged | Rejected:
        """New: logged. A replay answers the earlier decision's id if it is this project's (never touch
        or reveal another project's); a conflict is a 409 that says what was reused."""
        if outcome.status == "new":
            return Logged(outcome.stored_id, True, None, answer_id)
        stored = outcome.stored
        project = stored.metadata.get("project", DEFAULT_PROJECT) if isinstance(stored, Decision) else None
        if project != job.project:
            return Rejected(409, "id or idempotency_key: already used; choose another", "id")
        if outcome.error is not None:
            return Rejected(409, f"{outcome.error.field}: {outcome.error.reason}", outcome.error.field)
        return Logged(outcome.stored_id, False, None, answer_id)
