"""An OpenAI-compatible ``POST /v1/chat/completions`` for generator policies.

Apps that speak the OpenAI chat API plug in unchanged: ``model`` names a registered generator policy
(served through the same provider as ``/v1/decide``: its alias, experiment and variant) or a router
whose chosen arm a generator answers (``policies[].arm_policies``), ``messages``
is the conversation, and the API key is the caller's rewardloop key with the ``decide`` scope. Each
answer is logged as a decision with its propensity, and its id comes back in ``rewardloop.decision_id``
(an extra field the OpenAI clients ignore) so that feedback can name it.

The policy's own decoding settings apply: ``temperature``, ``top_p`` and ``max_tokens`` of the request
are accepted and not used (a served policy's sampling distribution is part of its version, so that the
logged propensities mean the same thing across requests). ``n`` > 1 and ``stream`` are refused.
"""

from __future__ import annotations

import time
from typing import Any, Literal

import anyio.to_thread
from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, ConfigDict, Field

from rewardloop.service.api import _own_policy_async, _stamp
from rewardloop.service.decision_writer import DecisionJob
from rewardloop.service.errors import BODY, KEYED, error_responses
from rewardloop.service.providers import DecideInput
from rewardloop.service.security import DecideKey
from rewardloop.service.state import StateDep
from rewardloop.types import answer_text

router = APIRouter(prefix="/v1", responses=error_responses(*KEYED, *BODY, 404), tags=["openai"])


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "user", "assistant"]
    content: str = Field(max_length=100_000)


class ChatCompletionRequest(BaseModel):
    """The OpenAI chat-completions request; fields this service does not use are accepted and ignored."""

    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1, max_length=200, description="a registered generator policy")
    messages: list[ChatMessage] = Field(min_length=1, max_length=200)
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    n: int = 1
    stream: bool = False
    user: str | None = Field(default=None, max_length=200, description="unit id for experiments")


class ChatChoiceMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class ChatChoice(BaseModel):
    index: int
    message: ChatChoiceMessage
    finish_reason: Literal["stop", "length"]
    logprobs: None = None


class ChatUsage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class RewardloopInfo(BaseModel):
    decision_id: str = Field(description="the logged decision of `model` (a router's: its arm choice)")
    policy_version: str
    pscore: float
    sequence_logp: float | None
    answer_decision_id: str | None = Field(
        None, description="a router's: the answering generator's logged decision (feedback on it trains it)"
    )
    answer_policy: str | None = Field(
        None, description="a router's: the generator that answered, policy@version"
    )


class ChatCompletionResponse(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: ChatUsage
    rewardloop: RewardloopInfo


@router.post("/chat/completions", response_model=ChatCompletionResponse)
async def chat_completions(
    body: ChatCompletionRequest, key: DecideKey, state: StateDep
) -> ChatCompletionResponse:
    """Answer the conversation with the generator ``model``; the answer is logged as a decision."""
    if body.n != 1:
        raise HTTPException(422, "body.n: only n = 1 is served (one logged decision per answer)")
    if body.stream:
        raise HTTPException(422, "body.stream: streaming is not served")
    if body.messages[-1].role != "user":
        raise HTTPException(422, "body.messages: the last message must be the user's")
    await _own_policy_async(state, key, body.model)
    messages = [m.model_dump() for m in body.messages]
    request = DecideInput(
        policy=body.model,
        text=messages[-1]["content"],
        metadata={"messages": messages, "project": key.project, "api": "openai"},
        unit_id=body.user,
    )
    outcome = await anyio.to_thread.run_sync(state.provider.decide, request)
    decision = _stamp(outcome.decision, key.project)
    routed = None if outcome.answer is None else _stamp(outcome.answer, key.project)
    generated = routed if routed is not None else decision
    if generated.kind != "generator":
        what = (
            f"a {decision.kind} policy"
            if routed is None
            else f"a router whose arm {decision.action!r} is a {routed.kind}"
        )
        raise HTTPException(422, f"body.model: {body.model!r} is {what}, not a generator")
    logged = await state.decisions.submit(DecisionJob(decision, key.project, "decide", answer=routed))
    meta: dict[str, Any] = dict(generated.metadata)
    prompt_tokens = int(meta.get("prompt_tokens", 0))
    completion_tokens = int(meta.get("completion_tokens", 0))
    ended = meta.get("finish_reason", "stop")
    return ChatCompletionResponse(
        id=f"chatcmpl-{logged.decision_id}",
        created=int(time.time()),
        model=body.model,
        choices=[
            ChatChoice(
                index=0,
                message=ChatChoiceMessage(content=answer_text(generated)),
                finish_reason="length" if ended == "length" else "stop",
            )
        ],
        usage=ChatUsage(
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            total_tokens=prompt_tokens + completion_tokens,
        ),
        rewardloop=RewardloopInfo(
            decision_id=logged.decision_id,
            policy_version=decision.policy_version,
            pscore=decision.pscore,
            sequence_logp=meta.get("sequence_logp"),
            answer_decision_id=logged.answer_id,
            answer_policy=None if routed is None else f"{routed.policy}@{routed.policy_version}",
        ),
    )


__all__ = ["ChatCompletionRequest", "ChatCompletionResponse", "router"]
