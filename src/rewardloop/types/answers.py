"""What the HTTP API answers and the SDK reads back, defined once: the service's response schema and the
client's typed answer are the same class."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime

from rewardloop.types.records import Decision, ReviewItem


@dataclass(frozen=True, slots=True)
class ReviewQueueItem:
    """A review-queue item with what a reviewer needs of its decision: the text, the model's guess
    (``action``) and its ``confidence``, and the labels a reviewer can pick (``actions``)."""

    id: str
    decision_id: str
    reason: str
    priority: float
    status: str
    claimed_by: str | None
    feedback_id: str | None
    created_at: datetime
    resolved_at: datetime | None
    policy: str
    text: str | None
    action: str
    confidence: float
    actions: list[str]

    @classmethod
    def of(cls, item: ReviewItem, decision: Decision) -> ReviewQueueItem:
        return cls(
            **dataclasses.asdict(item),
            policy=decision.policy,
            text=decision.text,
            action=decision.action,
            confidence=decision.confidence if decision.confidence is not None else decision.pscore,
            actions=list(decision.actions),
        )
