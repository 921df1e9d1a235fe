"""Stored rows back to typed records."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rewardloop.types import Decision, Feedback, Reward, TraceStep


def aware(t: datetime | None) -> datetime | None:
    if t is None:
        return None
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


def decision_from_row(r: Any) -> Decision:
    sets = r.action_set or {}
    return Decision(
        id=r.id,
        policy=r.policy,
        policy_version=r.policy_version,
        kind=r.kind,
        actions=tuple(r.actions),
        action=r.action,
        action_dist=tuple(r.action_dist),
        pscore=r.pscore,
        confidence=r.confidence,
        latency_ms=r.latency_ms,
        text=r.text,
        features=tuple(r.features) if r.features is not None else None,
        candidates=tuple(r.candidates) if r.candidates is not None else None,
        metadata=r.meta or {},
        ranking=tuple(r.ranking) if r.ranking is not None else None,
        experiment=r.experiment,
        variant=r.variant,
        variant_share=r.variant_share,
        trace=tuple(TraceStep(**s) for s in r.trace) if r.trace else (),
        idempotency_key=r.idempotency_key,
        created_at=aware(r.created_at),  # type: ignore[arg-type]
        client_time=aware(r.client_time),
        label_space=tuple(sets["labels"]) if sets else None,
        chosen_set=tuple(sets["chosen"]) if sets else None,
        label_probs=tuple(sets["probs"]) if sets else None,
    )


def feedback_from_row(r: Any) -> Feedback:
    return Feedback(
        id=r.id,
        decision_id=r.decision_id,
        kind=r.kind,
        value=r.value,
        scale=(r.scale_low, r.scale_high) if r.scale_low is not None else None,
        label=r.label,
        preferred=r.preferred,
        rejected=r.rejected,
        scores=r.scores,
        rater_id=r.rater_id,
        authority=r.authority,
        source=r.source,
        comment=r.comment,
        created_at=aware(r.created_at),  # type: ignore[arg-type]
        client_time=aware(r.client_time),
        labels=tuple(r.labels) if r.labels is not None else None,
    )


def reward_from_row(r: Any) -> Reward:
    return Reward(
        decision_id=r.decision_id,
        spec=r.spec,
        spec_version=r.spec_version,
        value=r.value,
        components=r.components or {},
        feedback_ids=tuple(r.feedback_ids or ()),
        disagreement=r.disagreement,
        created_at=aware(r.created_at),  # type: ignore[arg-type]
    )
