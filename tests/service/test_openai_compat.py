"""The OpenAI-compatible chat endpoint, driven by the official ``openai`` client, on the real app and
store with a tiny random generator behind the provider."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

pytest.importorskip("openai")
pytest.importorskip("gguf")

import openai
from tests.service._generator_app import generator_app

from rewardloop.policies.generator import Generation, GeneratorPolicy
from rewardloop.store import Store, read_decisions
from rewardloop.types import EMPTY_ANSWER


@pytest.fixture(scope="module")
def policy() -> GeneratorPolicy:
    return GeneratorPolicy.random(seed=0, name="chat", version="1", mode="sample", max_new_tokens=6)


@pytest.fixture
def served(store: Store, policy: GeneratorPolicy) -> Iterator[tuple[openai.OpenAI, Store, TestClient, str]]:
    app, key = generator_app(store, policy)
    with TestClient(app) as http:
        client = openai.OpenAI(base_url="http://testserver/v1", api_key=key, http_client=http, max_retries=0)
        yield client, store, http, key


def test_the_official_client_gets_an_answer_and_the_decision_is_logged(served) -> None:
    client, store, _, _ = served
    reply = client.chat.completions.create(
        model="chat",
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello"}],
        temperature=0.2,
        user="u1",
    )
    choice = reply.choices[0]
    assert reply.object == "chat.completion" and reply.model == "chat" and choice.message.role == "assistant"
    assert choice.finish_reason in ("stop", "length")
    assert reply.usage.completion_tokens >= 1 and reply.usage.prompt_tokens > 3
    extra = reply.model_extra["rewardloop"]
    (logged,) = list(read_decisions(store, policy="chat"))
    assert logged.id == extra["decision_id"] and reply.id == f"chatcmpl-{logged.id}"
    assert logged.kind == "generator" and logged.action == choice.message.content
    assert logged.text == "Say hello" and logged.metadata["project"] == "acme"
    assert logged.pscore == pytest.approx(extra["pscore"]) and 0 < logged.pscore <= 1
    assert logged.pscore == pytest.approx(math.exp(logged.metadata["sampling_logp"]))


@pytest.mark.parametrize(
    ("body", "status", "detail"),
    [
        ({"model": "chat", "messages": [{"role": "user", "content": "hi"}], "n": 2}, 422, "body.n"),
        (
            {"model": "chat", "messages": [{"role": "user", "content": "hi"}], "stream": True},
            422,
            "body.stream",
        ),
        ({"model": "chat", "messages": [{"role": "assistant", "content": "hi"}]}, 422, "body.messages"),
        ({"model": "chat", "messages": []}, 422, "messages"),
        ({"model": "intent", "messages": [{"role": "user", "content": "hi"}]}, 422, "not a generator"),
        ({"model": "nope", "messages": [{"role": "user", "content": "hi"}]}, 404, "no policy"),
    ],
)
def test_bad_requests_are_refused_and_nothing_is_logged(served, body: dict, status: int, detail: str) -> None:
    _, store, http, key = served
    response = http.post("/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == status, response.text
    assert detail in response.json()["detail"]
    assert len(read_decisions(store)) == 0


def test_a_wrong_key_is_refused(served) -> None:
    client, _, _, _ = served
    bad = openai.OpenAI(
        base_url="http://testserver/v1", api_key="wrong", http_client=client._client, max_retries=0
    )
    with pytest.raises(openai.AuthenticationError):
        bad.chat.completions.create(model="chat", messages=[{"role": "user", "content": "hi"}])


def test_an_empty_answer_comes_back_empty_and_is_logged_as_such(
    served, policy: GeneratorPolicy, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Regression: the endpoint returned the logged placeholder "<empty>" as the answer's content, so a
    # distillation run took it for the teacher's text instead of skipping an empty answer.
    client, store, _, _ = served
    empty = Generation("", sequence_logp=-1.0, sampling_logp=0.0, prompt_tokens=5, completion_tokens=1)
    monkeypatch.setattr(policy, "mode", "greedy")
    monkeypatch.setattr(policy, "generate", lambda prompts, rng=None, max_new_tokens=None: [empty])
    reply = client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "hi"}])
    assert reply.choices[0].message.content == ""
    (logged,) = list(read_decisions(store, policy="chat"))
    assert logged.action == EMPTY_ANSWER and logged.metadata["empty_answer"] is True
    assert logged.pscore == 1.0
