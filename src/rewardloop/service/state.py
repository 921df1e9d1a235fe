"""The state every request handler shares (one per worker), and the dependency that hands it out."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request
from fastapi.templating import Jinja2Templates

from rewardloop.config import ProjectConfig
from rewardloop.loop.review import ReviewPolicy
from rewardloop.service.decision_writer import DecisionWriter
from rewardloop.service.feedback_writer import FeedbackWriter
from rewardloop.service.middleware import Metrics
from rewardloop.service.providers import PolicyAdmin, PolicyProvider
from rewardloop.service.security import KeyCache
from rewardloop.store import Store
from rewardloop.store.apikeys import ApiKey
from rewardloop.store.insights import project_of_policy
from rewardloop.store.registry import policy_project
from rewardloop.store.review import ReviewAnswer, resolve_review_item
from rewardloop.types import ReviewItem


@dataclass
class AppState:
    """What every request handler shares (one per worker)."""

    store: Store
    config: ProjectConfig
    provider: PolicyProvider
    admin: PolicyAdmin
    review: ReviewPolicy
    writer: FeedbackWriter
    decisions: DecisionWriter
    keys: KeyCache
    metrics: Metrics
    templates: Jinja2Templates
    owners: dict[str, str] = field(default_factory=dict)

    def owner(self, policy: str) -> str | None:
        """The project a policy belongs to: the project that registered it, from registration on; for a
        policy never registered (decisions logged from elsewhere), the project of its first logged
        decision; None for neither. Cached: it never changes once set."""
        owner = self.owners.get(policy)
        if owner is None:
            owner = policy_project(self.store, policy) or project_of_policy(self.store, policy)
            if owner is not None:
                self.owners[policy] = owner
        return owner

    def resolve_review(self, item_id: str, key: ApiKey, answer: ReviewAnswer) -> ReviewItem:
        """Answer a review item as ``key``'s holder (its id: names are not unique) with the configured
        reviewer authority (:func:`~rewardloop.store.review.resolve_review_item`), and count it."""
        item, _ = resolve_review_item(
            self.store,
            item_id,
            key.project,
            reviewer=key.id,
            authority=self.config.review.reviewer_authority,
            answer=answer,
            claim_minutes=self.config.review.claim_minutes,
        )
        if item.status == "resolved":
            self.metrics.review_resolved.inc()
        kinds = {
            "correction": answer.label,
            "set_correction": answer.labels,
            "rating": answer.rating,
            "preference": answer.better,
        }
        for kind, given in kinds.items():
            if given is not None:
                self.metrics.feedback.labels(kind).inc()
        return item


async def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.rl
    return state


StateDep = Annotated[AppState, Depends(get_state)]
