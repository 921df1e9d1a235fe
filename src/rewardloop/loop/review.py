"""The review-queue policy: which decisions wait for a person, and in which order.

A decision is a candidate for the first of these reasons that holds:

=============== ============================================================== ======
reason          when                                                           weight
=============== ============================================================== ======
disagreement    a shadow challenger decided the same request differently       2.0
abstain         the abstain gate abstained (metadata ``abstain_gate``)         1.5
thumbs_down     a rater of authority ≥ ``dispute_authority`` called it wrong   1.0
                and no one has corrected it
low_confidence  the model's confidence is below ``confidence_below``           1.0
low_margin      the two most probable actions are within ``margin_below``      1.0
audit           a random sample of the rest, at ``audit_rate``                 0.0
=============== ============================================================== ======

Its priority is ``weight + (1 - confidence) + authority of the strongest uncorrected thumbs down``:
disagreements first, then abstentions, then decisions a trusted rater called wrong and the least
confident (uncertainty sampling), a thumbs down lifting either; the audit sample last. A decision
known to be wrong but not what is right is the one a reviewer's label adds most to: the model's own
confidence did not flag it, and the thumbs down alone tells a learner only which label it is not.
The margin is read from the logged ``action_dist`` (top-1 minus top-2). The audit draw is a salted
hash of the decision id, so every worker makes the same choice for a decision without sharing
state, and a re-sent decision is drawn the same way. A decision is queued at most once (the
``review_items`` table has a unique ``decision_id``).

An **exploration pick** (the served action is not the arg-max of ``action_dist``: ε-greedy's uniform
draw) is never a candidate but for the audit, or when the abstain gate abstained on its input: its low
confidence is the exploration's, not the model's doubt, and its feedback already teaches the learners
what they need from it; an abstention judges the input, whichever action was drawn.

:meth:`ReviewPolicy.enqueue` asks for what helps most, under ``budget_per_day`` items a day per
project (a small team's day; a demo round is a day): it leaves out decisions whose feedback already
says enough (a correction, or a positive rating of authority at least ``enough_authority``), closes
open items that such feedback has answered since, and fills the day's remaining budget
class-balanced (:meth:`ReviewPolicy.select`): round-robin over the predicted actions, each action's
highest-priority candidate first, so the queue does not spend a day on the one intent the model
confuses most. A reviewer's answer is feedback like any other, weighted by ``review.reviewer_authority``.

The queue is read highest rank first: the priority plus ``review.staleness_per_day`` for every day an
item has waited (:mod:`rewardloop.store.review_order`), so an item that waits is not starved.

An ``overlap_rate`` share of the queued items (a second salted hash of the decision id) needs two
reviewers' answers (``answers_needed=2``): the pairs measure how far reviewers agree.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, time

from rewardloop.config import ReviewConfig
from rewardloop.policies.contract import GATE_KEY
from rewardloop.store import Store
from rewardloop.store.insights import DEFAULT_PROJECT
from rewardloop.store.review import (
    answering_feedback,
    close_answered_items,
    disputing_feedback,
    enqueue_review,
    queued_since,
)
from rewardloop.types import Decision, ReviewItem, utcnow

#: Base priority of each reason (see the module docstring).
REASON_WEIGHT: dict[str, float] = {
    "disagreement": 2.0,
    "abstain": 1.5,
    "thumbs_down": 1.0,
    "low_confidence": 1.0,
    "low_margin": 1.0,
    "audit": 0.0,
}


def _drawn_labels(decision: Decision) -> list[tuple[bool, float]] | None:
    """A ``set`` decision's labels as (chosen, probability of being chosen); None for other kinds."""
    if decision.kind != "set" or decision.label_space is None or decision.label_probs is None:
        return None
    chosen = set(decision.chosen_set or ())
    return [(label in chosen, q) for label, q in zip(decision.label_space, decision.label_probs, strict=True)]


def margin(decision: Decision) -> float:
    """Top-1 minus top-2 probability of the decision's ``action_dist`` (1.0 with a single action); for a
    ``set`` decision, whose joint action is the set against all others, the smallest per-label margin
    ``|q_j − (1 − q_j)|`` (the label closest to a coin flip)."""
    labels = _drawn_labels(decision)
    if labels is not None:
        return min((abs(2.0 * q - 1.0) for _, q in labels), default=1.0)
    top = sorted(decision.action_dist, reverse=True)
    return top[0] - top[1] if len(top) > 1 else 1.0


def exploration_pick(decision: Decision) -> bool:
    """The served action is not the distribution's most probable one (ties count as exploited); for a
    ``set`` decision, some label was drawn against its more probable state."""
    labels = _drawn_labels(decision)
    if labels is not None:
        return any((q < 0.5) if chosen else (q > 0.5) for chosen, q in labels)
    dist = decision.action_dist
    return bool(dist) and dist[decision.actions.index(decision.action)] < max(dist)


@dataclass(frozen=True)
class ReviewPolicy:
    """Decides whether a decision goes to the review queue, and with which priority.

    Parameters
    ----------
    confidence_below : float, default 0.5
        Decisions whose confidence is strictly below this are queued (``low_confidence``).
    audit_rate : float, default 0.0
        Share of the other decisions queued at random (``audit``), for an unbiased accuracy estimate.
    audit_salt : str, default "audit"
        Salt of the audit hash; change it to draw a fresh sample.
    disagreement : bool, default True
        Queue decisions on which the champion and a shadow challenger chose different actions.
    margin_below : float, default 0.1
        Decisions whose top two actions are closer than this are queued (``low_margin``).
    budget_per_day : int or None, default 200
        Most items :meth:`enqueue` queues per project and round: a UTC day, or from the
        ``round_start`` it is given (None: no budget).
    enough_authority : float, default 0.8
        A correction or positive rating from a rater at least this trusted answers a decision.
    dispute_authority : float or None, default None
        An uncorrected negative rating from a rater at least this trusted queues an exploited decision
        (``thumbs_down``) and adds that authority to its priority (None: ratings are not read; off by
        default — at 0.5 the demo ended at 0.916 golden accuracy against 0.922 without it).
    overlap_rate : float, default 0.0
        Share of queued items that two reviewers answer (``answers_needed=2``), drawn by a salted hash
        of the decision id like the audit sample (an independent draw), to measure their agreement.

    Examples
    --------
    >>> from rewardloop.types import Decision
    >>> d = Decision(policy="intent", policy_version="1", kind="classifier",
    ...              actions=("on", "off"), action="on", action_dist=(0.6, 0.4), pscore=0.6)
    >>> item = ReviewPolicy(confidence_below=0.7).assess(d)
    >>> item.reason, round(item.priority, 6)
    ('low_confidence', 1.4)
    """

    confidence_below: float = 0.5
    audit_rate: float = 0.0
    audit_salt: str = "audit"
    disagreement: bool = True
    margin_below: float = 0.1
    budget_per_day: int | None = 200
    enough_authority: float = 0.8
    dispute_authority: float | None = None
    overlap_rate: float = 0.0

    @classmethod
    def from_config(cls, cfg: ReviewConfig) -> ReviewPolicy:
        return cls(
            cfg.confidence_below,
            cfg.audit_rate,
            cfg.audit_salt,
            cfg.disagreement,
            cfg.margin_below,
            cfg.budget_per_day,
            cfg.enough_authority,
            cfg.dispute_authority,
            cfg.overlap_rate,
        )

    def audit_draw(self, decision_id: str, purpose: str = "") -> float:
        """A uniform number in [0, 1) fixed by the salt, the decision id and ``purpose`` (``""``: the
        audit draw; ``"overlap"``: the draw of items two reviewers answer, independent of it)."""
        key = (
            f"{self.audit_salt}:{decision_id}"
            if not purpose
            else f"{purpose}:{self.audit_salt}:{decision_id}"
        )
        digest = hashlib.sha256(key.encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2.0**64

    def reason(
        self, decision: Decision, shadow_action: str | None = None, disputed: float = 0.0
    ) -> str | None:
        """Why the decision should be reviewed, or None; ``shadow_action`` is what a shadow challenger
        chose on the same request, if one ran; ``disputed`` the authority of its strongest uncorrected
        thumbs down (0: none counted, see :func:`~rewardloop.store.review.disputing_feedback`)."""
        if decision.metadata.get(GATE_KEY) == "abstain":
            # The gate judged the input, not the action drawn: an exploration pick it abstained on waits
            # for a person like any other.
            return "abstain"
        if not exploration_pick(decision):
            if self.disagreement and shadow_action is not None and shadow_action != decision.action:
                return "disagreement"
            if disputed > 0:
                return "thumbs_down"
            confidence = decision.confidence if decision.confidence is not None else decision.pscore
            if confidence < self.confidence_below:
                return "low_confidence"
            if margin(decision) < self.margin_below:
                return "low_margin"
        if self.audit_rate > 0 and self.audit_draw(decision.id) < self.audit_rate:
            return "audit"
        return None

    def assess(
        self, decision: Decision, shadow_action: str | None = None, disputed: float = 0.0
    ) -> ReviewItem | None:
        """The queue item for the decision, or None when it need not be reviewed (``disputed``: as in
        :meth:`reason`; it lifts the priority of an exploited decision)."""
        disputed = 0.0 if exploration_pick(decision) else disputed
        why = self.reason(decision, shadow_action, disputed)
        if why is None:
            return None
        confidence = decision.confidence if decision.confidence is not None else decision.pscore
        two = self.overlap_rate > 0 and self.audit_draw(decision.id, "overlap") < self.overlap_rate
        return ReviewItem(
            decision_id=decision.id,
            reason=why,
            priority=REASON_WEIGHT[why] + 1.0 - confidence + disputed,
            answers_needed=2 if two else 1,
        )

    def select(
        self, candidates: Sequence[tuple[Decision, ReviewItem]], budget: int | None
    ) -> list[ReviewItem]:
        """At most ``budget`` of the candidates (None: all), class-balanced: round-robin over the
        predicted actions, in each action its highest priority first (ties: the order given); the
        actions take turns in the order of their best candidate's priority."""
        by_action: dict[str, list[ReviewItem]] = {}
        for d, item in sorted(candidates, key=lambda c: -c[1].priority):
            by_action.setdefault(d.action, []).append(item)
        queues = list(by_action.values())  # in order of each action's best priority
        chosen: list[ReviewItem] = []
        limit = len(candidates) if budget is None else max(budget, 0)
        depth = 0
        while len(chosen) < limit and any(depth < len(q) for q in queues):
            chosen.extend(q[depth] for q in queues if depth < len(q))
            depth += 1
        return chosen[:limit]

    def enqueue(
        self,
        store: Store,
        decisions: Iterable[tuple[Decision, str | None]],
        round_start: datetime | None = None,
    ) -> int:
        """Assess (decision, shadow action or None) pairs of stored decisions; queue what helps most.

        Per project: open items whose decision the feedback has answered are closed; candidates whose
        feedback already says enough are left out; the rest fill what is left of the budget of the
        round that began at ``round_start`` (default: the current UTC day), class-balanced
        (:meth:`select`). Returns how many were newly queued (a decision already queued is not
        queued again).
        """
        pairs = list(decisions)
        disputed: dict[str, float] = {}
        if self.dispute_authority is not None:
            exploited = [d.id for d, _ in pairs if not exploration_pick(d)]
            disputed = disputing_feedback(store, exploited, self.dispute_authority)
        by_project: dict[str, list[tuple[Decision, ReviewItem]]] = {}
        for d, s in pairs:
            if (item := self.assess(d, s, disputed.get(d.id, 0.0))) is not None:
                by_project.setdefault(str(d.metadata.get("project", DEFAULT_PROJECT)), []).append((d, item))
        if round_start is None:
            now = utcnow()
            round_start = datetime.combine(now.date(), time(0), tzinfo=now.tzinfo)
        queued = 0
        for project, candidates in by_project.items():
            close_answered_items(store, project, self.enough_authority)
            answered = answering_feedback(store, [d.id for d, _ in candidates], self.enough_authority)
            fresh = [(d, i) for d, i in candidates if d.id not in answered]
            left = (
                None
                if self.budget_per_day is None
                else self.budget_per_day - queued_since(store, project, round_start)
            )
            queued += enqueue_review(store, self.select(fresh, left))
        return queued


__all__ = ["REASON_WEIGHT", "ReviewPolicy", "exploration_pick", "margin"]
