"""The OpenAI-compatible chat endpoint client: the request it sends, the answer it reads, its errors."""

from __future__ import annotations

import json

import httpx
import pytest

from rewardloop.policies.remote import ChatEndpoint, EndpointError, EndpointUnavailable

REPLY = {
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": " Paris. "}, "finish_reason": "stop"}
    ],
    "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15},
}


def _endpoint(handler, key_env: str | None = None, **kwargs) -> ChatEndpoint:
    client = httpx.Client(transport=httpx.MockTransport(handler))
    return ChatEndpoint("http://teacher.test/v1/", "big", key_env, client=client, **kwargs)


def test_it_posts_the_openai_request_with_the_key_and_reads_the_first_choice(monkeypatch) -> None:
    monkeypatch.setenv("TEACHER_KEY", "sk-secret")
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=REPLY)

    endpoint = _endpoint(handler, "TEACHER_KEY", max_tokens=32)
    answer = endpoint.complete([{"role": "user", "content": "Capital of France?"}])
    assert (answer.text, answer.prompt_tokens, answer.completion_tokens, answer.finish_reason) == (
        "Paris.",
        12,
        3,
        "stop",
    )
    (request,) = seen
    assert str(request.url) == "http://teacher.test/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer sk-secret"
    assert json.loads(request.content) == {
        "model": "big",
        "messages": [{"role": "user", "content": "Capital of France?"}],
        "temperature": 0.0,
        "max_tokens": 32,
    }
    assert "sk-secret" not in repr(endpoint)


def test_no_key_env_sends_no_authorization() -> None:
    seen: list[httpx.Request] = []
    endpoint = _endpoint(lambda r: seen.append(r) or httpx.Response(200, json=REPLY))
    endpoint.complete([{"role": "user", "content": "hi"}])
    assert "authorization" not in seen[0].headers


@pytest.mark.parametrize(
    ("response", "error", "message"),
    [
        (httpx.Response(401, json={"error": {"message": "bad key"}}), EndpointError, "HTTP 401: bad key"),
        (httpx.Response(404, json={"detail": "policy: no policy 'big'"}), EndpointError, "no policy 'big'"),
        (httpx.Response(503, text="busy"), EndpointUnavailable, "HTTP 503"),
        (
            httpx.Response(200, json={"choices": []}),
            EndpointError,
            "^response: not an OpenAI chat completion",
        ),
        (httpx.Response(200, text="<html>"), EndpointError, "^response: not an OpenAI"),
        (
            httpx.Response(200, json={"choices": [{"message": {"content": None}}]}),
            EndpointError,
            "content is not a string",
        ),
    ],
)
def test_bad_answers_are_errors_that_say_what(response: httpx.Response, error: type, message: str) -> None:
    endpoint = _endpoint(lambda _r: response)
    with pytest.raises(error, match=message):
        endpoint.complete([{"role": "user", "content": "hi"}])


def test_a_connection_failure_is_unavailable() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(EndpointUnavailable, match="ConnectError"):
        _endpoint(handler).complete([{"role": "user", "content": "hi"}])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("teacher.test/v1", "m"), "^url: must start with http"),
        (("http://teacher.test/v1", ""), "^model: name the endpoint's model"),
        (
            ("http://teacher.test/v1", "m", "REWARDLOOP_NO_SUCH_KEY"),
            "^key_env: .*REWARDLOOP_NO_SUCH_KEY is not set",
        ),
    ],
)
def test_bad_configuration_is_refused(args: tuple, message: str) -> None:
    with pytest.raises(EndpointError, match=message):
        ChatEndpoint(*args)
