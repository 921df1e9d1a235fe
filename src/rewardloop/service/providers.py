"""What the service needs from the policies, the registry and the experiments, as small Protocols.

The HTTP layer depends only on these. :func:`default_providers` is the ONE place where they are wired
to the real registry (``rewardloop.registry``), experiments (``rewardloop.loop``) and policies; until
that wiring exists, ``/v1/decide`` and the policy routes answer 503 saying so, and everything that
reads or writes the store works.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from rewardloop.config import ProjectConfig
from rewardloop.store import Store
from rewardloop.types import Decision


class ProviderError(RuntimeError):
    """A provider refused a request.

    ``kind``: ``"not_found"`` (unknown policy, version or alias; HTTP 404), ``"refused"`` (e.g. the gate
    failed a promotion; 409), ``"invalid"`` (a bad input; 422, ``field`` names it) or ``"unavailable"``
    (503).
    """

    def __init__(
        self,
        kind: Literal["not_found", "refused", "invalid", "unavailable"],
        message: str,
        field: str | None = None,
    ) -> None:
        self.kind = kind
        self.field = field
        super().__init__(message)


@dataclass(frozen=True)
class DecideInput:
    """A request for a decision: the context, and the unit (user) id experiments assign by.

    ``actions`` names the candidates of a reranker (``candidates`` holds their texts); classifiers and
    routers decide among their own labels or arms.
    """

    policy: str
    text: str | None = None
    features: tuple[float, ...] | None = None
    candidates: tuple[str, ...] | None = None
    actions: tuple[str, ...] | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    unit_id: str | None = None
    idempotency_key: str | None = None


@dataclass(frozen=True)
class DecideOutcome:
    """The decision served (version from the alias in force, experiment and variant assigned), and in
    shadow mode the challenger's decision on the same request (logged, not served).

    The shadow decision must have its own id and no ``idempotency_key`` (the served decision carries the
    request's key; the store keeps a key once).
    """

    decision: Decision
    shadow: Decision | None = None


@dataclass(frozen=True)
class PolicyInfo:
    name: str
    kind: str
    aliases: Mapping[str, str] = field(default_factory=dict)
    versions: Sequence[str] = ()


@dataclass(frozen=True)
class AliasMove:
    policy: str
    alias: str
    from_version: str | None
    to_version: str | None
    action: str
    forced: bool = False


@dataclass(frozen=True)
class ExperimentInfo:
    name: str
    policy: str
    variants: Mapping[str, str]
    shares: Mapping[str, float]
    status: str
    stage: int = 0
    shadow: bool = False
    verdict: Mapping[str, Any] | None = None


class PolicyProvider(Protocol):
    """Decides with the version an alias points at, applying the experiment assignment."""

    def decide(self, request: DecideInput) -> DecideOutcome: ...


class PolicyAdmin(Protocol):
    """The registry's and the experiments' operations the service exposes."""

    def list_policies(self) -> list[PolicyInfo]: ...

    def promote(
        self, policy: str, version: str, alias: str, actor: str, reason: str, force: bool
    ) -> AliasMove: ...

    def rollback(self, policy: str, alias: str, actor: str, reason: str) -> AliasMove: ...

    def experiments(self) -> list[ExperimentInfo]: ...


class Unwired:
    """Stands in until :func:`default_providers` is wired: every call answers 503, saying why."""

    message = (
        "no policy registry is wired into this service yet (rewardloop.service.providers."
        "default_providers); logging decisions, feedback, review, stats and export work"
    )

    def decide(self, request: DecideInput) -> DecideOutcome:
        raise ProviderError("unavailable", self.message)

    def list_policies(self) -> list[PolicyInfo]:
        return []

    def promote(
        self, policy: str, version: str, alias: str, actor: str, reason: str, force: bool
    ) -> AliasMove:
        raise ProviderError("unavailable", self.message)

    def rollback(self, policy: str, alias: str, actor: str, reason: str) -> AliasMove:
        raise ProviderError("unavailable", self.message)

    def experiments(self) -> list[ExperimentInfo]:
        return []


def default_providers(config: ProjectConfig, store: Store) -> tuple[PolicyProvider, PolicyAdmin]:
    """The providers ``rewardloop serve`` uses.

    MERGE POINT: wire ``rewardloop.registry`` (aliases, promote, rollback), ``rewardloop.loop``'s
    experiment assignment (salted hash of ``DecideInput.unit_id``; ``variant_share`` on the decision;
    the shadow challenger's decision in :class:`DecideOutcome`) and the classifier / router / reranker
    policies' ``decide`` here. Nothing else in the service changes.
    """
    unwired = Unwired()
    return unwired, unwired


__all__ = [
    "AliasMove",
    "DecideInput",
    "DecideOutcome",
    "ExperimentInfo",
    "PolicyAdmin",
    "PolicyInfo",
    "PolicyProvider",
    "ProviderError",
    "Unwired",
    "default_providers",
]
