"""Online router learning: one learner per router version applies each compiled reward exactly once,
in log order, and publishes versioned router states that the service's workers pick up.

The learner of ``policy``@``version`` (``rewardloop learn``) starts from the registered artifact (state
0) or from the last state it published, and repeats:

1. read the next feedback-log events on the version's decisions after its persisted position
   (:func:`rewardloop.store.online.read_events`: inserts and voids, in log order, none skipped);
2. recompile each touched decision's reward from *all* its current feedback with the spec's
   compiler (:func:`rewardloop.rewards.compile_feedback`, the one ``rewardloop rewards compile``
   runs), and bring the router to it: a new reward is learned (``learn``), a changed one is taken back
   and learned anew (``unlearn`` + ``learn``), a withdrawn one (its feedback voided) is taken back;
3. every ``publish_every`` changed rewards, or ``publish_interval_s`` after the first unpublished
   one, publish state ``s + 1``: the router, the position read to and the ledger of applied rewards
   in one transaction (:func:`rewardloop.store.online.publish_state`).

Nothing is written between publishes, so a learner killed at any point resumes from its last state
and position and re-reads what followed: each reward counts exactly once in every published state,
and a published state equals an offline replay (``fit`` from the artifact) of the same decisions with
the same rewards, up to rounding (:func:`replay_lineage`). The rewards are recompiled here, not read
from the ``rewards`` table, so the learner does not wait for a compile job; they equal what
``rewardloop rewards compile`` stores for the same spec.

Service workers decide with the latest state of the version they serve and log its number in each
decision's ``metadata["router_state"]`` (:data:`STATE_KEY`), so that OPE and replay know exactly which
state decided (:mod:`rewardloop.service.router_state`).
"""

from __future__ import annotations

import io
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rewardloop.config.faults import fault_point
from rewardloop.learners.bandits import BanditRouter, load_router
from rewardloop.learners.bandits.replay import fit_logged, logged_rows
from rewardloop.policies.router import ContextFeatures, FloatArray, RouterInputError
from rewardloop.registry import CHAMPION, Registry, RegistryError
from rewardloop.rewards import RewardSpec, compile_feedback
from rewardloop.store import Store, read_decisions
from rewardloop.store.online import (
    Applied,
    Lineage,
    LogPosition,
    RouterState,
    publish_state,
    read_applied,
    read_events,
    read_lineage,
    read_state,
    start_lineage,
)
from rewardloop.store.reward_compile import read_compile_inputs
from rewardloop.types import DecisionBatch, utcnow

#: The metadata key under which every decision served by a learned router names its state version.
STATE_KEY = "router_state"


class OnlineError(ValueError):
    """Online learning cannot run as asked (no such router version, a bad option); the message says why."""


# ------------------------------------------------------------------------------------------ states


def encode_router(router: BanditRouter) -> tuple[str, bytes]:
    """A router as its saved artifact's two files: the ``router.json`` text and the ``state.npz`` bytes."""
    with tempfile.TemporaryDirectory(prefix="rl-state-") as tmp:
        folder = router.save(Path(tmp))
        return (folder / "router.json").read_text(), (folder / "state.npz").read_bytes()


def decode_router(meta: str, arrays: bytes) -> BanditRouter:
    """The router :func:`encode_router` encoded; it decides exactly as the encoded one (no pickle)."""
    with tempfile.TemporaryDirectory(prefix="rl-state-") as tmp:
        folder = Path(tmp)
        (folder / "router.json").write_text(meta)
        (folder / "state.npz").write_bytes(arrays)
        return load_router(folder)


def state_arrays(router: BanditRouter) -> dict[str, FloatArray]:
    """The router's learned arrays by name (``A_inv``, ``theta``, ``n_pulls``...), as saved."""
    with np.load(io.BytesIO(encode_router(router)[1]), allow_pickle=False) as z:
        return {k: np.asarray(z[k], dtype=np.float64) for k in z.files}


def max_abs_diff(a: BanditRouter, b: BanditRouter) -> float:
    """The largest absolute difference between two routers' learned arrays (inf if they differ in shape)."""
    x, y = state_arrays(a), state_arrays(b)
    if x.keys() != y.keys() or any(x[k].shape != y[k].shape for k in x):
        return float("inf")
    return max((float(np.max(np.abs(x[k] - y[k]), initial=0.0)) for k in x), default=0.0)


def context_features(router: BanditRouter, options: Mapping[str, Any]) -> ContextFeatures | None:
    """How the router's contexts are built from a decision (``policies[].options.features``: numeric,
    text or both; numeric by default), or None for a context-free router."""
    if not router.needs_context:
        return None
    mode = options.get("features", "numeric")
    if mode not in ("numeric", "text", "both"):
        raise OnlineError(f"options.features: must be numeric, text or both; got {mode!r}")
    dim = int(router.get_params()["dim"])
    feats = ContextFeatures(mode, n_numeric=dim if mode == "numeric" else 0)
    if mode == "both":
        feats = ContextFeatures(mode, n_numeric=dim - feats.text_dim)
    if feats.dim != dim:
        raise OnlineError(f"options.features: {mode} contexts have {feats.dim} dims, the router {dim}")
    return feats


# ----------------------------------------------------------------------------------------- learner


@dataclass(frozen=True)
class Published:
    """One publish: the state version, what it holds, what changed since the previous one."""

    state_version: int
    position: LogPosition
    events: int  # feedback-log events consumed by the lineage so far
    rewards: int  # decisions with a reward in the state
    changed: int  # rewards learned, revised or withdrawn since the previous state
    seconds: float  # since the previous publish (or the start)


@dataclass
class LearnSummary:
    """What a :meth:`OnlineLearner.run` did."""

    policy: str
    version: str
    state_version: int = 0
    publishes: int = 0
    events: int = 0  # consumed in this run
    changed: int = 0  # rewards learned, revised or withdrawn in this run
    rewards: int = 0  # decisions with a reward in the final state
    seconds: float = 0.0
    versions_followed: list[str] = field(default_factory=list)

    def line(self) -> str:
        rate = self.changed / self.seconds if self.seconds > 0 else 0.0
        return (
            f"{self.policy}@{self.version}: {self.events} feedback events read, {self.changed} rewards "
            f"applied ({rate:,.0f}/s) in {self.publishes} publishes; state {self.state_version} holds "
            f"{self.rewards} rewarded decisions ({self.seconds:.1f} s)"
        )


class OnlineLearner:
    """The learner of one router version (see the module docstring).

    Parameters
    ----------
    store : Store
    registry : Registry
        Where the version's artifact (state 0) is registered.
    policy : str
    spec : RewardSpec
        The reward spec the feedback is compiled with.
    version : str, optional
        The registered version to learn; default the ``champion``'s (and :meth:`run` follows the alias).
    options : mapping, optional
        The policy's ``policies[].options`` (``features``: how contexts are built).
    publish_every : int, default 100
        Publish after this many changed rewards ...
    publish_interval_s : float, default 1.0
        ... or this long after the first change not yet published.
    batch_size : int, default 1000
        Feedback-log events read at a time.
    """

    def __init__(
        self,
        store: Store,
        registry: Registry,
        policy: str,
        spec: RewardSpec,
        *,
        version: str | None = None,
        options: Mapping[str, Any] | None = None,
        publish_every: int = 100,
        publish_interval_s: float = 1.0,
        batch_size: int = 1000,
    ) -> None:
        if publish_every < 1 or batch_size < 1 or not publish_interval_s > 0:
            raise OnlineError("publish_every and batch_size must be >= 1, publish_interval_s > 0")
        self.store, self.registry, self.policy, self.spec = store, registry, policy, spec
        self.follow_champion = version is None
        self.options = dict(options or {})
        self.publish_every, self.publish_interval_s, self.batch_size = (
            publish_every,
            publish_interval_s,
            batch_size,
        )
        self._open(version if version is not None else self._champion())

    # -- lineage -----------------------------------------------------------------------------------

    def _champion(self) -> str:
        try:
            return self.registry.resolve(f"{self.policy}@{CHAMPION}").version
        except RegistryError as err:
            raise OnlineError(f"{self.policy}: no champion to learn from ({err}); pass --version") from None

    def _open(self, version: str) -> None:
        """Start (or resume) the lineage of ``version``: its last published state and position."""
        try:
            pv = self.registry.get(self.policy, version)
            path = self.registry.artifact_path(f"{self.policy}@{version}")
        except RegistryError as err:
            raise OnlineError(str(err)) from None
        if pv.kind != "router" or not (path / "router.json").is_file():
            raise OnlineError(f"{self.policy}@{version} is not a bandit router (online learning needs one)")
        lineage = read_lineage(self.store, self.policy, version)
        if lineage is None:
            lineage = start_lineage(self.store, self.policy, version, *encode_router(load_router(path)))
        state = read_state(self.store, self.policy, version, lineage.state_version)
        if state is None:  # pragma: no cover - publish_state writes both in one transaction
            raise OnlineError(f"{self.policy}@{version}: state {lineage.state_version} is missing")
        self.version = version
        self.router = decode_router(state.meta, state.arrays)
        self.features = context_features(self.router, self.options)
        self.lineage: Lineage = lineage
        self.position = lineage.position
        self.events = lineage.events
        self.rewards = lineage.rewards
        self.pending: dict[str, Applied] = {}  # ledger changes not yet published
        self.unpublished = 0  # rewards learned, revised or withdrawn since the last publish
        self.first_pending: float | None = None
        self.last_publish = time.monotonic()

    # -- one batch ---------------------------------------------------------------------------------

    def step(self) -> tuple[int, int]:
        """Read and apply the next batch of log events; returns (events read, rewards changed)."""
        # No more than the rewards still due before the next publish (each event changes at most one).
        limit = min(self.batch_size, max(1, self.publish_every - self.unpublished))
        events = read_events(self.store, self.policy, self.version, self.position, limit)
        if not events:
            return 0, 0
        fault_point("online_read")
        ids = list(dict.fromkeys(e.decision_id for e in events))
        views, feedback = read_compile_inputs(self.store, ids=ids)
        compiled = {r.decision_id: r for r in compile_feedback(views, feedback, self.spec).rewards}
        stored = read_applied(
            self.store, self.policy, self.version, [i for i in ids if i not in self.pending]
        )
        batch = read_decisions(self.store, ids=ids)
        contexts = self._contexts(batch)
        changed = 0
        for d in batch:
            before = self.pending.get(d.id) or stored.get(d.id) or Applied(d.id, None)
            reward = compiled.get(d.id)
            after = (
                Applied(d.id, None) if reward is None else Applied(d.id, reward.value, reward.feedback_ids)
            )
            if after == before:
                continue
            if after.reward != before.reward:
                self._apply(contexts.get(d.id), d.action, d.metadata.get("category"), before, after)
                changed += 1
            self.pending[d.id] = after
        self.position = events[-1].position
        self.events += len(events)
        self.unpublished += changed
        if changed and self.first_pending is None:
            self.first_pending = time.monotonic()
        fault_point("online_applied")
        return len(events), changed

    def _contexts(self, batch: DecisionBatch) -> dict[str, FloatArray | None]:
        if self.features is None or not len(batch):
            return {d.id: None for d in batch}
        X = self.features.from_batch(batch)  # (n, dim)
        return {d.id: X[i] for i, d in enumerate(batch)}

    def _apply(self, x: FloatArray | None, arm: str, category: Any, before: Applied, after: Applied) -> None:
        """Bring the router from the decision's reward ``before`` to ``after`` (None: no reward)."""
        cat = None if category is None else str(category)
        try:
            if before.reward is not None:
                self.router.unlearn(x, arm, before.reward, cat)
                self.rewards -= 1
            if after.reward is not None:
                self.router.learn(x, arm, after.reward, cat)
                self.rewards += 1
        except RouterInputError as err:
            raise OnlineError(f"decision {after.decision_id}: {err}") from None

    # -- publishing --------------------------------------------------------------------------------

    def due(self) -> bool:
        """Whether the unpublished changes call for a publish now."""
        if self.first_pending is None:
            return False
        waited = time.monotonic() - self.first_pending
        return self.unpublished >= self.publish_every or waited >= self.publish_interval_s

    def publish(self) -> Published | None:
        """Publish the next state with the position read to and the ledger changes (None: no change)."""
        if not self.pending:
            return None
        meta, arrays = encode_router(self.router)
        version = self.lineage.state_version + 1
        now = utcnow()
        state = RouterState(self.policy, self.version, version, meta, arrays, self.events, self.rewards, now)
        publish_state(
            self.store, state, self.position, list(self.pending.values()), self.lineage.state_version
        )
        fault_point("online_published")
        changed, self.unpublished = self.unpublished, 0
        self.lineage = Lineage(
            self.policy, self.version, version, self.position, self.events, self.rewards, now
        )
        self.pending.clear()
        self.first_pending = None
        elapsed, self.last_publish = time.monotonic() - self.last_publish, time.monotonic()
        return Published(version, self.position, self.events, self.rewards, changed, elapsed)

    # -- the loop ----------------------------------------------------------------------------------

    def run(
        self,
        *,
        until_idle: bool = False,
        stop: Callable[[], bool] = lambda: False,
        on_publish: Callable[[Published], None] | None = None,
        idle_sleep_s: float = 0.05,
        champion_check_s: float = 5.0,
    ) -> LearnSummary:
        """Learn until ``stop()`` says so (or, with ``until_idle``, until the log has no more events);
        what is pending is published before returning. Following the champion, a move of the alias
        publishes what is pending and continues with the new version's lineage."""
        summary = LearnSummary(self.policy, self.version, versions_followed=[self.version])
        start = checked = time.monotonic()
        while not stop():
            read, changed = self.step()
            summary.events += read
            summary.changed += changed
            if self.due():
                self._published(summary, on_publish)
            if self.follow_champion and time.monotonic() - checked >= champion_check_s:
                checked = time.monotonic()
                if self._champion() != self.version:
                    self._published(summary, on_publish)
                    self._open(self._champion())
                    summary.versions_followed.append(self.version)
            if read == 0:
                if until_idle:
                    break
                time.sleep(idle_sleep_s)
        self._published(summary, on_publish)
        summary.version, summary.state_version, summary.rewards = (
            self.version,
            self.lineage.state_version,
            self.rewards,
        )
        summary.seconds = time.monotonic() - start
        return summary

    def _published(self, summary: LearnSummary, on_publish: Callable[[Published], None] | None) -> None:
        done = self.publish()
        if done is not None:
            summary.publishes += 1
            if on_publish is not None:
                on_publish(done)


# ------------------------------------------------------------------------------------------ replay


def replay_lineage(
    store: Store, registry: Registry, policy: str, version: str, spec: RewardSpec, options: Mapping[str, Any]
) -> tuple[BanditRouter, int]:
    """The offline replay the online state must equal: the version's artifact ``fit`` on every one of
    its decisions with a reward (compiled here from their current feedback), unweighted (they are its
    own decisions). Returns the router and the number of rewarded decisions."""
    base = load_router(registry.artifact_path(f"{policy}@{version}"))
    decisions = read_decisions(store, policy=policy, version=version, with_feedback=True)
    ids = [d.id for d in decisions]
    views, feedback = read_compile_inputs(store, ids=ids) if ids else ([], {})
    rewards = compile_feedback(views, feedback, spec).rewards
    batch = DecisionBatch(list(decisions), rewards={r.decision_id: r for r in rewards})
    rows = logged_rows(batch, context_features(base, options))
    fitted = fit_logged(type(base)(**base.get_params()), rows, policy=base, weighting="none")
    return fitted, len(rows)


def published_router(
    store: Store, policy: str, version: str, state_version: int | None = None
) -> BanditRouter:
    """A published state of ``policy``@``version`` as a router (the latest when ``state_version`` is None)."""
    state = read_state(store, policy, version, state_version)
    if state is None:
        raise OnlineError(f"{policy}@{version}: no published router state {state_version or ''}".rstrip())
    return decode_router(state.meta, state.arrays)


__all__ = [
    "STATE_KEY",
    "LearnSummary",
    "OnlineError",
    "OnlineLearner",
    "Published",
    "context_features",
    "decode_router",
    "encode_router",
    "max_abs_diff",
    "published_router",
    "replay_lineage",
    "state_arrays",
]
