"""What the service needs from the policies, the registry and the experiments, as small Protocols.

The HTTP layer depends only on these; :func:`default_providers` wires them to the real registry
(``rewardloop.registry``), experiments (``rewardloop.loop``) and policies (:class:`RegistryProviders`).
Tests pass fakes.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np

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
    stopped: tuple[str, ...] = ()  # experiments a rollback stopped


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


class RegistryProviders:
    """The real wiring: the registry's aliases and versions, experiment assignment, loaded policies.

    Serving reads the running experiment and the champion alias through a short cache (``ttl``
    seconds), so a promotion or a ramp step reaches every worker within that time without a query per
    request. Loaded artifacts are verified against their checksum once per version.

    Classifiers decide ε-greedy by default (``policies[].options``: ``explore`` = greedy | sample |
    epsilon, ``epsilon``), so every served decision carries a propensity for off-policy evaluation.
    Routers act on ``features`` with their own exploration; rerankers sample from a softmax over their
    scores (``options.temperature``).
    """

    def __init__(self, config: ProjectConfig, store: Store, ttl: float = 2.0) -> None:
        from rewardloop.loop.experiments import Experiments
        from rewardloop.registry import Registry

        self.config = config
        # Every project's policies (project=None): the HTTP layer checks the caller's project first.
        self.registry = Registry(
            store, config.experiments.registry_root, keep_last=config.experiments.keep_last, project=None
        )
        self.experiment_ctl = Experiments(store, self.registry, config.experiments)
        self.ttl = ttl
        self._cache: dict[tuple[str, str], tuple[float, Any]] = {}
        self._generations: dict[str, int | None] = {}
        self._loaded: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()

    # -- cached lookups ----------------------------------------------------------------------------

    def _cached(self, key: tuple[str, str], compute: Any) -> Any:
        now = time.monotonic()
        hit = self._cache.get(key)
        if hit is not None and now - hit[0] < self.ttl:
            return hit[1]
        value = compute()
        self._cache[key] = (now, value)
        return value

    def _load(self, policy: str, version: str) -> Any:
        from rewardloop.registry import RegistryError

        key = (policy, version)
        with self._lock:
            if key in self._loaded:
                return self._loaded[key]
            try:
                pv = self.registry.get(policy, version)
                path = self.registry.artifact_path(f"{policy}@{version}")
            except RegistryError as err:
                raise ProviderError("not_found", str(err), "policy") from None
            self._loaded[key] = (pv.kind, _load_artifact(pv.kind, path))
            return self._loaded[key]

    # -- PolicyProvider ----------------------------------------------------------------------------

    def _invalidate_on_move(self, policy: str) -> None:
        """Drop the policy's cached alias and experiment once any of its aliases moved, in any worker:
        every alias move bumps the policy's counter in the store (one primary-key read here)."""
        from rewardloop.store.registry import policy_generation

        generation = policy_generation(self.registry.store, policy)
        if self._generations.get(policy, -1) != generation:
            for key in list(self._cache):  # a snapshot: other threads may add entries meanwhile
                if key[1] == policy:
                    self._cache.pop(key, None)
            self._generations[policy] = generation

    def decide(self, request: DecideInput) -> DecideOutcome:
        from rewardloop.registry import RegistryError

        self._invalidate_on_move(request.policy)
        exp = self._cached(
            ("experiment", request.policy), lambda: self.experiment_ctl.running_for(request.policy)
        )
        assignment = None
        if exp is not None and request.unit_id is not None:
            assignment = self.experiment_ctl.assign(exp, request.unit_id)
        if assignment is not None:
            version = assignment.version
        else:
            try:
                version = self._cached(
                    ("champion", request.policy),
                    lambda: self.registry.resolve(f"{request.policy}@champion").version,
                )
            except RegistryError as err:
                raise ProviderError("not_found", str(err), "policy") from None
        decision = self._decide_with(request, version)
        decision = dataclasses.replace(decision, idempotency_key=request.idempotency_key)
        shadow = None
        if assignment is not None:
            decision = assignment.tag(decision)
            for variant, shadow_version in assignment.shadow:
                shadow = assignment.tag_shadow(self._decide_with(request, shadow_version), variant)
        return DecideOutcome(decision, shadow)

    def _decide_with(self, request: DecideInput, version: str) -> Decision:
        kind, model = self._load(request.policy, version)
        options = self._options(request.policy)
        meta = dict(request.metadata)
        if kind == "classifier":
            if not request.text:
                raise ProviderError("invalid", "a classifier decides on `text`", "text")
            mode = options.get("explore", "epsilon")
            d: Decision = model.decide(request.text, mode=mode, epsilon=float(options.get("epsilon", 0.1)))
            return dataclasses.replace(d, policy=request.policy, policy_version=version, metadata=meta)
        if kind == "router":
            if request.features is None:
                raise ProviderError("invalid", "a router decides on `features`", "features")
            try:
                routed = model.act(list(request.features))
            except ValueError as err:
                raise ProviderError("invalid", str(err), "features") from None
            record: Decision = routed.to_record(
                request.policy, version, features=request.features, text=request.text, metadata=meta
            )
            return record
        if not request.candidates:
            raise ProviderError("invalid", "a reranker ranks `candidates`", "candidates")
        actions = request.actions or tuple(f"c{i}" for i in range(len(request.candidates)))
        dist = model.action_dist(
            request.text or "", list(request.candidates), float(options.get("temperature", 1.0))
        )
        rng = np.random.default_rng()
        top = int(rng.choice(len(dist), p=dist))
        order = [top, *[i for i in np.argsort(-dist) if i != top]]
        return Decision(
            policy=request.policy,
            policy_version=version,
            kind="reranker",
            actions=tuple(actions),
            action=actions[top],
            action_dist=tuple(float(p) for p in dist),
            pscore=float(dist[top]),
            text=request.text,
            candidates=tuple(request.candidates),
            ranking=tuple(actions[i] for i in order),
            metadata=meta,
        )

    def _options(self, policy: str) -> Mapping[str, Any]:
        return next((p.options for p in self.config.policies if p.name == policy), {})

    # -- PolicyAdmin -------------------------------------------------------------------------------

    def list_policies(self) -> list[PolicyInfo]:
        out = []
        for name in self.registry.policies():
            versions = self.registry.versions(name)
            kind = versions[-1].kind if versions else "classifier"
            out.append(PolicyInfo(name, kind, self.registry.aliases(name), [v.version for v in versions]))
        return out

    def promote(
        self, policy: str, version: str, alias: str, actor: str, reason: str, force: bool
    ) -> AliasMove:
        from rewardloop.registry import RegistryError

        try:
            e = self.registry.promote(
                f"{policy}@{version}", None, force=force, actor=actor, reason=reason, alias=alias
            )
        except RegistryError as err:
            raise ProviderError("refused", f"{err} (promote through an experiment, or force it)") from None
        self._cache.clear()
        return AliasMove(e.policy, e.alias, e.from_version, e.to_version, e.action, e.forced)

    def rollback(self, policy: str, alias: str, actor: str, reason: str) -> AliasMove:
        from rewardloop.loop.experiments import ExperimentError
        from rewardloop.loop.rollback import rollback_champion
        from rewardloop.registry import RegistryError

        try:  # the policy's running experiments stop first, so what is served follows the alias
            out = rollback_champion(
                self.registry, self.experiment_ctl, policy, actor=actor, reason=reason, alias=alias
            )
        except (RegistryError, ExperimentError) as err:
            raise ProviderError("refused", str(err)) from None
        self._cache.clear()
        e = out.event
        stopped = tuple(x.name for x in out.stopped)
        return AliasMove(e.policy, e.alias, e.from_version, e.to_version, e.action, e.forced, stopped)

    def experiments(self) -> list[ExperimentInfo]:
        return [
            ExperimentInfo(e.name, e.policy, e.variants, e.shares, e.status, e.stage, e.shadow, e.verdict)
            for e in self.experiment_ctl.list()
        ]


def _load_artifact(kind: str, path: Any) -> Any:
    if kind == "classifier":
        from rewardloop.policies.classifier import ClassifierPolicy

        return ClassifierPolicy.load(path)
    if kind == "router":
        from rewardloop.learners.bandits import load_router

        return load_router(path)
    from rewardloop.policies.reranker import Reranker

    return Reranker.load(path)


def default_providers(config: ProjectConfig, store: Store) -> tuple[PolicyProvider, PolicyAdmin]:
    """The providers ``rewardloop serve`` uses: the registry, experiments and policies of the store."""
    wired = RegistryProviders(config, store)
    return wired, wired


__all__ = [
    "AliasMove",
    "DecideInput",
    "DecideOutcome",
    "ExperimentInfo",
    "PolicyAdmin",
    "PolicyInfo",
    "PolicyProvider",
    "ProviderError",
    "RegistryProviders",
    "Unwired",
    "default_providers",
]
