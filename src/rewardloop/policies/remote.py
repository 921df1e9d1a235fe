"""A chat model behind any OpenAI-compatible ``POST /chat/completions`` endpoint (OpenAI, vLLM, a
llama.cpp server, or rewardloop's own ``/v1/chat/completions``).

It answers the messages of a prompt: the teacher of ``rewardloop distil``, an agent or the LLM judge of
``rewardloop evals``. The API key comes from an environment variable whose *name* is configured
(``key_env``), so that no key is written to a project file, a command line or a TrainingRun.

>>> ChatEndpoint("ftp://example.org/v1", "m")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
rewardloop.policies.remote.EndpointError: url: must start with http:// or https://, got 'ftp://example.org/v1'
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

#: HTTP statuses that mean the endpoint is configured wrongly (a bad key, model or URL): stop at once.
CONFIG_STATUSES = (400, 401, 403, 404, 422)


class EndpointError(ValueError):
    """The endpoint is configured wrongly or answered out of contract; ``field`` names what. Stop."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")


class EndpointUnavailable(RuntimeError):
    """One request failed for a reason that may pass (a timeout, a 5xx): callers count and go on."""


@dataclass(frozen=True)
class ChatAnswer:
    """One answer: its text, the endpoint's token counts (0 when it gives none) and the wall time."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    latency_ms: float
    finish_reason: str


class ChatEndpoint:
    """An OpenAI-compatible chat endpoint.

    Parameters
    ----------
    url : str
        The API base (``http://host:8000/v1``); ``/chat/completions`` is appended.
    model : str
        The ``model`` of each request (for rewardloop's endpoint: a generator policy's name).
    key_env : str or None
        The name of the environment variable holding the API key (read when the endpoint is built;
        None: no ``Authorization`` header).
    temperature : float, default 0.0
        Sent with each request; 0 asks for the endpoint's most likely answer (a teacher, a judge).
    max_tokens : int, default 256
    timeout : float, default 60.0
        Seconds per request (of the client built here).
    client : httpx.Client, optional
        The HTTP client to send with (tests pass a Starlette ``TestClient``); default: a new one.

    Attributes
    ----------
    base_url : str
        ``url`` without a trailing slash (what a TrainingRun records).
    """

    def __init__(
        self,
        url: str,
        model: str,
        key_env: str | None = None,
        *,
        temperature: float = 0.0,
        max_tokens: int = 256,
        timeout: float = 60.0,
        client: Any = None,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise EndpointError("url", f"must start with http:// or https://, got {url!r}")
        if not model:
            raise EndpointError("model", "name the endpoint's model")
        key = None
        if key_env is not None:
            key = os.environ.get(key_env)
            if not key:
                raise EndpointError("key_env", f"the environment variable {key_env} is not set")
        self.base_url = url.rstrip("/")
        self.url = self.base_url + "/chat/completions"
        self.model = model
        self.temperature = temperature
        self.max_tokens = max_tokens
        self._headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._timeout = timeout
        self._client = client

    def __repr__(self) -> str:  # never the key
        return f"ChatEndpoint({self.url!r}, model={self.model!r})"

    def _http(self) -> Any:
        if self._client is None:
            import httpx

            self._client = httpx.Client(timeout=self._timeout)
        return self._client

    def complete(self, messages: Sequence[Mapping[str, str]]) -> ChatAnswer:
        """The endpoint's answer to ``messages`` (OpenAI chat messages, the last one the user's).

        Raises EndpointError when the endpoint refuses the request as configured (400, 401, 403, 404,
        422) or answers in another shape; EndpointUnavailable when the request failed otherwise.
        """
        import httpx

        body = {
            "model": self.model,
            "messages": [dict(m) for m in messages],
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
        }
        start = time.perf_counter()
        try:
            response = self._http().post(self.url, json=body, headers=self._headers)
        except httpx.HTTPError as err:
            raise EndpointUnavailable(f"{self.url}: {type(err).__name__}: {err}") from err
        latency = (time.perf_counter() - start) * 1000.0
        if response.status_code in CONFIG_STATUSES:
            raise EndpointError(
                "url", f"{self.url} answered HTTP {response.status_code}: {_detail(response)}"
            )
        if response.status_code >= 400:
            raise EndpointUnavailable(f"{self.url}: HTTP {response.status_code}")
        return _answer(response, latency)


def _detail(response: Any) -> str:
    """The error body's message (OpenAI's ``error.message`` or FastAPI's ``detail``), cut short."""
    try:
        body = response.json()
    except ValueError:
        return str(response.text)[:200]
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and "message" in error:
            return str(error["message"])[:200]
        if "detail" in body:
            return str(body["detail"])[:200]
    return str(body)[:200]


def _answer(response: Any, latency: float) -> ChatAnswer:
    """The first choice's message of an OpenAI chat-completion body; EndpointError when it has none."""
    try:
        body = response.json()
        choice = body["choices"][0]
        text = choice["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        raise EndpointError(
            "response", "not an OpenAI chat completion (no choices[0].message.content)"
        ) from None
    if not isinstance(text, str):
        raise EndpointError("response", "choices[0].message.content is not a string")
    usage = body.get("usage") or {}
    return ChatAnswer(
        text.strip(),
        int(usage.get("prompt_tokens") or 0),
        int(usage.get("completion_tokens") or 0),
        latency,
        str(choice.get("finish_reason") or "stop"),
    )


__all__ = ["ChatAnswer", "ChatEndpoint", "EndpointError", "EndpointUnavailable"]
