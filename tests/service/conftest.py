"""The service under test: the real app on the real store (SQLite and PostgreSQL), with in-test fakes
for the policies and the registry (their real wiring lives in ``service/providers.py``)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from fastapi.testclient import TestClient

from rewardloop.config import ProjectConfig
from rewardloop.service import (
    AliasMove,
    DecideInput,
    DecideOutcome,
    ExperimentInfo,
    PolicyInfo,
    ProviderError,
    create_app,
)
from rewardloop.store import Store
from rewardloop.store.apikeys import authenticate, create_api_key
from rewardloop.types import Decision

LABELS = ("lights_on", "lights_off", "weather")

#: The fake classifier's distribution for a text (over LABELS); unknown texts get the first row.
DISTS = {
    "turn on the lights": (0.9, 0.05, 0.05),
    "is it dark": (0.5, 0.3, 0.2),  # unsure: confidence 0.5 < 0.7, goes to review
    "lights please": (0.6, 0.3, 0.1),
}


@dataclass
class FakeRegistry:
    """A policy provider and admin in one: champion v1 / challenger v2 of ``intent``, an experiment that
    sends unit ids whose hash is even to the challenger, and an alias history."""

    aliases: dict[str, str] = field(default_factory=lambda: {"champion": "1", "challenger": "2"})
    history: list[str] = field(default_factory=list)
    shadow: bool = False
    gate_passes: bool = True

    def decide(self, request: DecideInput) -> DecideOutcome:
        if request.policy != "intent":
            raise ProviderError("not_found", f"policy: no policy {request.policy!r}", "policy")
        dist = DISTS.get(request.text or "", (0.9, 0.05, 0.05))
        variant = "champion"
        if request.unit_id is not None and int(hashlib.sha256(request.unit_id.encode()).hexdigest(), 16) % 2:
            variant = "challenger"
        best = max(range(len(LABELS)), key=lambda i: dist[i])
        decision = Decision(
            policy="intent",
            policy_version=self.aliases[variant],
            kind="classifier",
            actions=LABELS,
            action=LABELS[best],
            action_dist=dist,
            pscore=dist[best],
            latency_ms=3.0,
            text=request.text,
            metadata=dict(request.metadata),
            experiment="intent-ab",
            variant=variant,
            variant_share=0.5,
            idempotency_key=request.idempotency_key,
        )
        shadow = None
        if self.shadow:
            other = (best + 1) % len(LABELS)
            flipped = tuple(dist[(i - 1) % len(LABELS)] for i in range(len(LABELS)))
            shadow = Decision(
                policy="intent",
                policy_version=self.aliases["challenger"],
                kind="classifier",
                actions=LABELS,
                action=LABELS[other],
                action_dist=flipped,
                pscore=flipped[other],
                text=request.text,
            )
        return DecideOutcome(decision, shadow)

    def list_policies(self) -> list[PolicyInfo]:
        return [PolicyInfo("intent", "classifier", dict(self.aliases), ["1", "2", "3"])]

    def promote(
        self, policy: str, version: str, alias: str, actor: str, reason: str, force: bool
    ) -> AliasMove:
        if version not in ("1", "2", "3"):
            raise ProviderError("not_found", f"version: no version {version!r} of {policy!r}", "version")
        if not self.gate_passes and not force:
            raise ProviderError("refused", "the gate failed: accuracy 0.81 < 0.95 (pass force to override)")
        before = self.aliases.get(alias)
        self.aliases[alias] = version
        self.history.append(f"{actor}:{alias}:{before}->{version}")
        return AliasMove(policy, alias, before, version, "promote", force)

    def rollback(self, policy: str, alias: str, actor: str, reason: str) -> AliasMove:
        before = self.aliases[alias]
        self.aliases[alias] = "1"
        self.history.append(f"{actor}:{alias}:{before}->1 rollback")
        return AliasMove(policy, alias, before, "1", "rollback")

    def experiments(self) -> list[ExperimentInfo]:
        return [
            ExperimentInfo(
                "intent-ab",
                "intent",
                {"champion": "1", "challenger": "2"},
                {"champion": 0.5, "challenger": 0.5},
                "running",
            )
        ]


@dataclass
class Api:
    client: TestClient
    store: Store
    registry: FakeRegistry
    keys: dict[str, str]

    def h(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[who]}"}

    def csrf(self) -> str:
        """The dashboard's CSRF token: a page sets it as a cookie, every form posts it back."""
        self.client.get("/login")
        return str(self.client.cookies["rl_csrf"])

    def key_id(self, who: str) -> str:
        """The id of a key (the reviewer identity recorded on what it does: names are not unique)."""
        found = authenticate(self.store, self.keys[who])
        assert found is not None
        return found.id


def make_keys(store: Store) -> dict[str, str]:
    keys = {}
    for name, project, role in (
        ("admin", "acme", "admin"),
        ("client", "acme", "client"),
        ("reviewer", "acme", "reviewer"),
        ("intruder", "other", "admin"),
    ):
        keys[name] = create_api_key(store, name, project, role=role)[1]
    return keys


@pytest.fixture
def api(store: Store) -> Iterator[Api]:
    cfg = ProjectConfig()
    cfg.service.max_body_bytes = 20_000
    cfg.service.key_cache_seconds = 0.0
    cfg.review.confidence_below = 0.7  # the threshold these tests' "unsure" decision (0.5) is written for
    registry = FakeRegistry()
    app = create_app(store, config=cfg, provider=registry, admin=registry)
    keys = make_keys(store)
    with TestClient(app) as client:
        yield Api(client, store, registry, keys)
