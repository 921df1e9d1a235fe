"""The review-queue policy: which decisions wait for a person, and in which order.

A decision enters the queue for the first of these reasons that holds:

=============== ======================================================== ======
reason          when                                                     weight
=============== ======================================================== ======
disagreement    a shadow challenger decided the same request differently 2.0
abstain         the abstain gate abstained (metadata ``abstain_gate``)   1.5
low_confidence  the model's confidence is below ``confidence_below``     1.0
audit           a random sample of the rest, at ``audit_rate``           0.0
=============== ======================================================== ======

Its priority is ``weight + (1 - confidence)``: disagreements first, then abstentions, then the least
confident; the audit sample last. The audit draw is a salted hash of the decision id, so every worker
makes the same choice for a decision without sharing state, and a re-sent decision is drawn the same way.
A decision is queued at most once (the ``review_items`` table has a unique ``decision_id``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from rewardloop.config import ReviewConfig
from rewardloop.policies.contract import GATE_KEY
from rewardloop.store import Store
from rewardloop.store.review import enqueue_review
from rewardloop.types import Decision, ReviewItem

#: Base priority of each reason (see the module docstring).
REASON_WEIGHT: dict[str, float] = {"disagreement": 2.0, "abstain": 1.5, "low_confidence": 1.0, "audit": 0.0}


@dataclass(frozen=True)
class ReviewPolicy:
    """Decides whether a decision goes to the review queue, and with which priority.

    Parameters
    ----------
    confidence_below : float, default 0.7
        Decisions whose confidence is strictly below this are queued (``low_confidence``).
    audit_rate : float, default 0.0
        Share of the other decisions queued at random (``audit``), for an unbiased accuracy estimate.
    audit_salt : str, default "audit"
        Salt of the audit hash; change it to draw a fresh sample.
    disagreement : bool, default True
        Queue decisions on which the champion and a shadow challenger chose different actions.

    Examples
    --------
    >>> from rewardloop.types import Decision
    >>> d = Decision(policy="intent", policy_version="1", kind="classifier",
    ...              actions=("on", "off"), action="on", action_dist=(0.6, 0.4), pscore=0.6)
    >>> item = ReviewPolicy(confidence_below=0.7).assess(d)
    >>> item.reason, round(item.priority, 6)
    ('low_confidence', 1.4)
    """

    confidence_below: float = 0.7
    audit_rate: float = 0.0
    audit_salt: str = "audit"
    disagreement: bool = True

    @classmethod
    def from_config(cls, cfg: ReviewConfig) -> ReviewPolicy:
        return cls(cfg.confidence_below, cfg.audit_rate, cfg.audit_salt, cfg.disagreement)

    def audit_draw(self, decision_id: str) -> float:
        """A uniform number in [0, 1) fixed by the salt and the decision id."""
        digest = hashlib.sha256(f"{self.audit_salt}:{decision_id}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2.0**64

    def reason(self, decision: Decision, shadow_action: str | None = None) -> str | None:
        """Why the decision should be reviewed, or None; ``shadow_action`` is what a shadow challenger
        chose on the same request, if one ran."""
        if self.disagreement and shadow_action is not None and shadow_action != decision.action:
            return "disagreement"
        if decision.metadata.get(GATE_KEY) == "abstain":
            return "abstain"
        confidence = decision.confidence if decision.confidence is not None else decision.pscore
        if confidence < self.confidence_below:
            return "low_confidence"
        if self.audit_rate > 0 and self.audit_draw(decision.id) < self.audit_rate:
            return "audit"
        return None

    def assess(self, decision: Decision, shadow_action: str | None = None) -> ReviewItem | None:
        """The queue item for the decision, or None when it need not be reviewed."""
        why = self.reason(decision, shadow_action)
        if why is None:
            return None
        confidence = decision.confidence if decision.confidence is not None else decision.pscore
        return ReviewItem(decision_id=decision.id, reason=why, priority=REASON_WEIGHT[why] + 1.0 - confidence)

    def enqueue(self, store: Store, decisions: Iterable[tuple[Decision, str | None]]) -> int:
        """Assess (decision, shadow action or None) pairs of stored decisions; queue those that need review.

        Returns how many were newly queued (a decision already queued is not queued again).
        """
        items = [i for d, s in decisions if (i := self.assess(d, s)) is not None]
        return enqueue_review(store, items)


__all__ = ["REASON_WEIGHT", "ReviewPolicy"]
