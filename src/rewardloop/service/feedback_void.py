"""``POST /v1/feedback/{feedback_id}/void``: a person withdraws a piece of feedback, with a reason.

The row stays stored and audited (who — the key's id and name —, when, why) and counts for no reward
from then on (:mod:`rewardloop.store.voids`). Needs a key with the ``admin`` or the ``feedback`` scope;
only the caller's project's feedback can be voided (another project's answers 404, like a missing one).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import anyio.to_thread
from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import Field

from rewardloop.service.schemas import Request as RequestModel
from rewardloop.service.schemas import Response as ResponseModel
from rewardloop.service.security import authenticate_request
from rewardloop.service.state import StateDep
from rewardloop.store.apikeys import ApiKey
from rewardloop.store.voids import VoidError, void_feedback

router = APIRouter(prefix="/v1")

_STATUS = {"not_found": 404, "conflict": 409, "invalid": 422}


async def _admin_or_feedback(request: Request) -> ApiKey:
    key = await authenticate_request(request)
    if not (key.allows("admin") or key.allows("feedback")):
        scopes = ", ".join(key.scopes)
        raise HTTPException(
            403, f"this key ({key.name!r}) lacks the 'admin' or 'feedback' scope; its scopes: {scopes}"
        )
    return key


VoidKey = Annotated[ApiKey, Depends(_admin_or_feedback)]


class VoidRequest(RequestModel):
    reason: str = Field(min_length=1, max_length=2000, description="why the feedback is withdrawn")


class VoidResponse(ResponseModel):
    feedback_id: str
    decision_id: str
    voided_by: str
    voided_at: datetime
    reason: str
    rewards_withdrawn: int


@router.post("/feedback/{feedback_id}/void", tags=["feedback"])
async def void(feedback_id: str, body: VoidRequest, key: VoidKey, state: StateDep) -> VoidResponse:
    """Void one of this project's feedback rows: kept for the audit, excluded from rewards from now on
    (its decision's rewards are withdrawn and recompiled from its other feedback)."""
    actor = f"key {key.id} ({key.name})"
    try:
        done = await anyio.to_thread.run_sync(
            lambda: void_feedback(
                state.store, feedback_id, reason=body.reason, actor=actor, project=key.project
            )
        )
    except VoidError as err:
        raise HTTPException(_STATUS[err.kind], str(err)) from None
    return VoidResponse.model_validate(done, from_attributes=True)
