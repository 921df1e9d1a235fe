"""A service app whose provider serves one tiny generator as ``chat`` (and a classifier ``intent``, to
be refused by the chat endpoint): the OpenAI-compatible endpoint's tests, and the teacher or agent
of the distillation and judged-evaluation tests."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
from fastapi import FastAPI

from rewardloop.config import ProjectConfig
from rewardloop.policies.generator import GeneratorPolicy
from rewardloop.service import (
    DecideInput,
    DecideOutcome,
    PolicyInfo,
    ProviderError,
    create_app,
)
from rewardloop.store import Store
from rewardloop.store.apikeys import create_api_key
from rewardloop.types import Decision

#: The one decision of the classifier ``intent``.
INTENT = dict(policy="intent", policy_version="1", kind="classifier", actions=("a",), action="a", pscore=1.0)


@dataclass
class GeneratorProvider:
    """Serves ``chat`` (a tiny sampled generator) and ``intent`` (a classifier, to be refused)."""

    policy: GeneratorPolicy

    def decide(self, request: DecideInput) -> DecideOutcome:
        if request.policy == "intent":
            return DecideOutcome(Decision(**INTENT, action_dist=(1.0,), text=request.text))
        if request.policy != "chat":
            raise ProviderError("not_found", f"policy: no policy {request.policy!r}", "policy")
        return DecideOutcome(self.policy.decide(request, np.random.default_rng(0)))

    def list_policies(self) -> list[PolicyInfo]:
        return [PolicyInfo("chat", "generator", {"champion": "1"}, ["1"])]


def generator_app(store: Store, policy: GeneratorPolicy) -> tuple[FastAPI, str]:
    """The app serving ``policy`` as ``chat`` on ``store``, and a client key of project ``acme``."""
    provider = GeneratorProvider(policy)
    app = create_app(store, config=ProjectConfig(), provider=provider, admin=provider)  # type: ignore[arg-type]
    return app, create_api_key(store, "client", "acme", role="client")[1]


@contextmanager
def served_over_http(app: FastAPI) -> Iterator[str]:
    """``app`` served by uvicorn on a free local port in a thread; yields its API base URL (``.../v1``)."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
