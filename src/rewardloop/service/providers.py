"""What the service needs from the policies, the registry and the experiments, as small Protocols.

The HTTP layer depends only on these; :func:`default_providers` wires them to the real registry
(``rewardloop.registry``), experiments (``rewardloop.loop``) and policies (:class:`RegistryProviders`).
Tests pass fakes.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from rewardloop.config import PolicyConfig, ProjectConfig
from rewardloop.policies.contract import DecisionContext, Policy, PolicyInputError
from rewardloop.service.batching import MicroBatcher
from rewardloop.store import Store
from rewardloop.types import Decision, new_id

if TYPE_CHECKING:
    from rewardloop.loop.serving import ServingPath
    from rewardloop.service.router_state import RouterStates


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

    @property
    def context(self) -> DecisionContext:
        """What the policy decides on (raises PolicyInputError naming a bad field)."""
        return DecisionContext(self.text, self.features, self.candidates, self.actions, self.metadata)


@dataclass(frozen=True)
class DecideOutcome:
    """The decision served (version from the alias in force, experiment and variant assigned), and in
    shadow mode the challenger's decision on the same request (logged, not served).

    The shadow decision must have its own id and no ``idempotency_key`` (the served decision carries the
    request's key; the store keeps a key once).
    """

    decision: Decision
    shadow: Decision | None = None
    answer: Decision | None = None  # a router's: the decision of the policy its chosen arm names


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


@runtime_checkable
class WarmProvider(Protocol):
    """A provider that can load its models ahead of traffic: the service's lifespan calls ``warm`` and
    answers ``/readyz`` once it returns. ``warm`` returns the versions loaded (``name@version``) and the
    ones that failed, each with its error."""

    def warm(self) -> tuple[list[str], list[str]]: ...


@runtime_checkable
class ClosableProvider(Protocol):
    """A provider holding resources beyond requests (a watcher thread): the lifespan closes it."""

    def close(self) -> None: ...


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

    Every request goes through the one serving path, :class:`rewardloop.loop.serving.ServingPath`
    (assign → decide → tag/shadow), with a generator seeded by the decision's id
    (:func:`~rewardloop.loop.serving.request_rng`). Exploration comes from ``policies[].options``
    (``explore`` = greedy | sample | epsilon, ``epsilon``, ``temperature``; read by
    :func:`~rewardloop.loop.serving.exploration_for`): classifiers ε-greedy with ε = 0.1 by default,
    rerankers sampling from the softmax of their scores, routers by their own algorithm. A classifier
    version whose artifact holds an abstain gate is served behind it. Loading a version is thread-safe
    and warms its encoder before the first decision uses it. Concurrent decisions of one classifier
    version share one encoder pass (``batcher``, by default a
    :class:`~rewardloop.service.batching.MicroBatcher` waiting ≤ 5 ms for ≤ 32 requests; ``max_batch=1``
    decides one at a time), each drawn from its own generator as if alone.
    """

    def __init__(
        self, config: ProjectConfig, store: Store, ttl: float = 2.0, batcher: MicroBatcher | None = None
    ) -> None:
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
        self._loaded: dict[tuple[str, str], Policy] = {}
        self._lock = threading.Lock()
        self.batcher = MicroBatcher() if batcher is None else batcher
        from rewardloop.service.router_state import RouterStates

        # Bandit routers are served on the latest state `rewardloop learn` published.
        self.states: RouterStates = RouterStates(store, config.online.poll_s)

    # -- cached lookups ----------------------------------------------------------------------------

    def _cached(self, key: tuple[str, str], compute: Any) -> Any:
        now = time.monotonic()
        hit = self._cache.get(key)
        if hit is not None and now - hit[0] < self.ttl:
            return hit[1]
        value = compute()
        self._cache[key] = (now, value)
        return value

    def _load(self, policy: str, version: str) -> Policy:
        from rewardloop.loop.serving import exploration_for, load_policy, served_kind, warm
        from rewardloop.registry import RegistryError

        key = (policy, version)
        with self._lock:  # one load at a time: concurrent first imports of transformers fail
            if key in self._loaded:
                return self._loaded[key]
            try:
                pv = self.registry.get(policy, version)
                path = self.registry.artifact_path(f"{policy}@{version}")
            except RegistryError as err:
                raise ProviderError("not_found", str(err), "policy") from None
            kind = served_kind(pv.kind, path)
            try:
                loaded = load_policy(kind, path, exploration_for(kind, self._options(policy)))
            except PolicyInputError as err:
                raise ProviderError("unavailable", f"policies[{policy}].{err}", "policy") from None
            warm(loaded)
            loaded = self.states.serve(policy, version, loaded)
            self._loaded[key] = loaded
            return loaded

    def _champion(self, policy: str, alias: str = "champion") -> str:
        """The version ``alias`` (or a version string) of ``policy`` names, through the short cache."""
        from rewardloop.registry import RegistryError

        try:
            version: str = self._cached(
                (f"alias:{alias}" if alias != "champion" else "champion", policy),
                lambda: self.registry.resolve(f"{policy}@{alias}").version,
            )
        except RegistryError as err:
            raise ProviderError("not_found", str(err), "policy") from None
        return version

    def _path(self, policy: str, pinned: str | None = None, routes: bool = True) -> ServingPath:
        """The serving path of ``policy``: its champion and experiments, or the version an alias or
        version ``pinned`` names (no experiment then); with ``routes``, a router's arms that name a
        policy (``policies[].arm_policies``) are answered by it (one level: an arm's path routes no
        further, so arms naming each other cannot loop)."""
        from rewardloop.loop.serving import ServingPath

        arms = self._config(policy).arm_policies if routes else {}
        # Built per request (a few attribute sets): no per-name state for names that do not exist.
        return ServingPath(
            policy,
            self.experiment_ctl,
            running=lambda: (
                None
                if pinned is not None
                else self._cached(("experiment", policy), lambda: self.experiment_ctl.running_for(policy))
            ),
            champion=lambda: self._champion(policy, pinned or "champion"),
            load=lambda version: self._load(policy, version),
            decide=self.batcher.decide,
            arm_path=(lambda arm: self._arm_path(arms[arm]) if arm in arms else None) if arms else None,
        )

    def _arm_path(self, ref: str) -> ServingPath:
        policy, _, pinned = ref.partition("@")
        self._invalidate_on_move(policy)
        return self._path(policy, pinned or None, routes=False)

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
        from rewardloop.loop.serving import request_rng

        self._invalidate_on_move(request.policy)
        decision_id = new_id()
        try:
            served = self._path(request.policy).serve(
                request.context,
                request.unit_id,
                request_rng(decision_id),
                idempotency_key=request.idempotency_key,
                decision_id=decision_id,
            )
        except PolicyInputError as err:
            raise ProviderError("invalid", str(err), err.field) from None
        return DecideOutcome(served.decision, served.shadow, served.answer)

    def warm(self) -> tuple[list[str], list[str]]:
        """Load (and warm) every policy's champion and the versions of its running experiment."""
        from rewardloop.registry import RegistryError

        loaded, failed = [], []
        for name in self.registry.policies():
            versions = set()
            with contextlib.suppress(RegistryError):  # no champion yet: /v1/decide answers 404
                versions.add(self.registry.resolve(f"{name}@champion").version)
            exp = self.experiment_ctl.running_for(name)
            versions.update(exp.variants.values() if exp is not None else ())
            for version in sorted(versions):
                try:
                    self._load(name, version)
                    loaded.append(f"{name}@{version}")
                except Exception as err:  # reported by /readyz; the service keeps running
                    failed.append(f"{name}@{version}: {type(err).__name__}: {err}")
        return loaded, failed

    def _config(self, policy: str) -> PolicyConfig:
        """The policy's ``policies[]`` entry (an empty one when the project file has none)."""
        found = next((p for p in self.config.policies if p.name == policy), None)
        return found if found is not None else PolicyConfig(name=policy, kind="classifier")

    def _options(self, policy: str) -> Mapping[str, Any]:
        return self._config(policy).options

    def close(self) -> None:
        """Stop following published router states."""
        self.states.close()

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


def default_providers(config: ProjectConfig, store: Store) -> tuple[PolicyProvider, PolicyAdmin]:
    """The providers ``rewardloop serve`` uses: the registry, experiments and policies of the store."""
    wired = RegistryProviders(config, store)
    return wired, wired
