"""What the HTTP API answers and the SDK reads back, defined once: the service's response schema and the
client's typed answer are the same class. A field's ``doc(...)`` metadata is its description in the OpenAPI
document.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

from rewardloop.types.records import Decision, ReviewItem
from rewardloop.types.sets import answer_text


def doc(text: str) -> dict[str, str]:
    """A dataclass field's metadata: ``text`` is its description in the service's JSON schema."""
    return {"description": text}


def _descriptions(schema: dict[str, Any], cls: type[Any]) -> None:
    for f in dataclasses.fields(cls):
        if "description" in f.metadata:
            schema["properties"][f.name]["description"] = f.metadata["description"]


#: How pydantic (the service's schema) reads these dataclasses: the ``doc`` texts are descriptions.
#: Not pydantic's ``use_attribute_docstrings``: it parses this module's source at every schema build (FastAPI
#: builds one per route, lazily, in the thread of the request), and CPython 3.11's parser fails ("AST
#: constructor recursion depth mismatch") when two threads parse at once.
_SCHEMA_CONFIG = {"json_schema_extra": _descriptions}


def _confidence(decision: Decision) -> float:
    return decision.confidence if decision.confidence is not None else decision.pscore


def _set_fields(decision: Decision) -> dict[str, Any]:
    """The decision's set as lists (each None when it carries none)."""
    if decision.label_space is None or decision.chosen_set is None or decision.label_probs is None:
        return {"label_space": None, "chosen_set": None, "label_probs": None}
    return {
        "label_space": list(decision.label_space),
        "chosen_set": list(decision.chosen_set),
        "label_probs": list(decision.label_probs),
    }


@dataclass(frozen=True, slots=True)
class Decided:
    """What ``decide`` answers: the action taken and the distribution it was drawn from."""

    __pydantic_config__: ClassVar[dict[str, Any]] = _SCHEMA_CONFIG

    decision_id: str
    policy: str
    policy_version: str
    kind: str
    action: str = field(metadata=doc("the action taken (a label, an arm, or the top candidate)"))
    probabilities: dict[str, float] = field(metadata=doc("the full action distribution"))
    confidence: float
    ranking: list[str] | None = None
    experiment: str | None = None
    variant: str | None = None
    queued_for_review: str | None = field(
        default=None, metadata=doc("the review reason, if the decision was queued")
    )
    label_space: list[str] | None = field(
        default=None,
        metadata=doc("a set decision's labels (a set policy, or the actions beside a category); else null"),
    )
    chosen_set: list[str] | None = field(
        default=None, metadata=doc("the labels chosen, in label-space order")
    )
    label_probs: list[float] | None = field(
        default=None,
        metadata=doc(
            "each label's probability of being chosen, aligned with ``label_space`` (independent draws)"
        ),
    )
    answer: str | None = field(
        default=None,
        metadata=doc("a router's: the answer of the policy its chosen arm names (policies[].arm_policies)"),
    )
    answer_decision_id: str | None = field(
        default=None, metadata=doc("the logged decision of that answer (feedback on it trains that policy)")
    )

    @classmethod
    def of(
        cls,
        decision: Decision,
        decision_id: str,
        queued_for_review: str | None,
        answer: Decision | None = None,
        answer_id: str | None = None,
    ) -> Decided:
        """The answer for ``decision``, logged as ``decision_id`` (a replay's: the first decision's id);
        ``answer``: a router arm's decision, logged as ``answer_id``."""
        return cls(
            decision_id=decision_id,
            policy=decision.policy,
            policy_version=decision.policy_version,
            kind=decision.kind,
            action=decision.action,
            probabilities=dict(zip(decision.actions, decision.action_dist, strict=True)),
            confidence=_confidence(decision),
            ranking=list(decision.ranking) if decision.ranking is not None else None,
            experiment=decision.experiment,
            variant=decision.variant,
            queued_for_review=queued_for_review,
            **_set_fields(decision),
            answer=None if answer is None else answer_text(answer),
            answer_decision_id=None if answer is None else answer_id or answer.id,
        )


#: How many of the model's most probable actions a reviewer is shown (with their probabilities).
TOP_K = 5


def top_k(decision: Decision, k: int = TOP_K) -> dict[str, float]:
    """The ``k`` most probable actions of the decision and their probabilities, most probable first
    (ties: the order of ``actions``).

    >>> from rewardloop.types import Decision
    >>> d = Decision(policy="p", policy_version="1", kind="classifier", actions=("a", "b", "c"),
    ...              action="b", action_dist=(0.2, 0.5, 0.3), pscore=0.5)
    >>> top_k(d, 2)
    {'b': 0.5, 'c': 0.3}
    """
    order = sorted(range(len(decision.actions)), key=lambda i: -decision.action_dist[i])
    return {decision.actions[i]: decision.action_dist[i] for i in order[:k]}


def review_pair(decision: Decision) -> tuple[str, str] | None:
    """The two candidates a reviewer compares for a reranker (the served one first): its ranking's top
    two, else the two most probable actions; None for other kinds and with fewer than two candidates
    (a generator's answer is rated, not compared)."""
    if decision.kind != "reranker" or len(decision.actions) < 2:
        return None
    if decision.ranking is not None:
        return decision.ranking[0], decision.ranking[1]
    runner = next(a for a in top_k(decision, 2) if a != decision.action)
    return decision.action, runner


@dataclass(frozen=True, slots=True)
class ReviewQueueItem:
    """A review-queue item with what a reviewer needs of its decision: its text, the model's guess and
    confidence, and the labels to pick from."""

    __pydantic_config__: ClassVar[dict[str, Any]] = _SCHEMA_CONFIG

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
    action: str = field(metadata=doc("the model's guess"))
    confidence: float
    actions: list[str] = field(metadata=doc("the labels a reviewer can pick"))
    kind: str = field(
        metadata=doc("the decision's kind: a ``set`` decision is resolved with ``labels``, not ``label``")
    )
    label_space: list[str] | None = field(
        metadata=doc("the labels a reviewer can tick, when the decision carries a set")
    )
    chosen_set: list[str] | None = field(metadata=doc("the model's set (a hint to the reviewer)"))
    label_probs: list[float] | None = field(
        metadata=doc("each label's probability of being chosen, aligned with ``label_space``")
    )

    claimed_at: datetime | None = field(
        metadata=doc("when the claim was made (it lapses after ``review.claim_minutes``)")
    )
    answers_needed: int = field(
        metadata=doc("2 for an overlap item: two reviewers answer it, and their agreement counts")
    )
    top_k: dict[str, float] = field(
        metadata=doc(
            f"the model's {TOP_K} most probable actions with their probabilities, most probable first"
        ),
    )
    pair: list[str] | None = field(
        metadata=doc("a reranker's two top candidates (the served one first), for `better`; else null"),
    )
    candidates: list[str] | None = field(
        metadata=doc("a reranker's candidate texts, aligned with ``actions``")
    )

    @classmethod
    def of(cls, item: ReviewItem, decision: Decision) -> ReviewQueueItem:
        pair = review_pair(decision)
        return cls(
            **dataclasses.asdict(item),
            top_k=top_k(decision),
            pair=list(pair) if pair is not None else None,
            candidates=list(decision.candidates) if decision.candidates is not None else None,
            policy=decision.policy,
            text=decision.text,
            action=decision.action,
            confidence=_confidence(decision),
            actions=list(decision.actions),
            kind=decision.kind,
            **_set_fields(decision),
        )
