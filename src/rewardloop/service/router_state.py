"""Serving routers that learn online: each worker decides with the latest state the learner published.

``rewardloop learn`` publishes router states to the store (:mod:`rewardloop.loop.online_learner`).
Every bandit router version a worker serves is wrapped in a :class:`LiveRouter`, and one watcher
thread per worker (:class:`RouterStates`) keeps each on the latest state of its lineage:

- on PostgreSQL it ``LISTEN``s for the learner's ``NOTIFY`` (sent when a publish commits) and loads
  the new state at once; every ``poll_s`` seconds without a notification it also checks the store,
  in case one was missed while reconnecting;
- on SQLite it checks the store every ``poll_s`` seconds.

A worker therefore serves a state at most about ``poll_s`` (SQLite) or one round trip (PostgreSQL)
after it was published. Every decision of a learned router names the state that made it in
``metadata["router_state"]`` (0: the registered artifact, before the first publish); a router whose
version has no learner is served from its artifact and its decisions carry no state.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from rewardloop.learners.bandits import BanditRouter
from rewardloop.loop.online_learner import STATE_KEY, decode_router
from rewardloop.policies.contract import DecisionContext, Policy
from rewardloop.policies.router import ArmStats
from rewardloop.store import Store
from rewardloop.store.online import latest_state_versions, lineages, notifications, read_state, state_meta
from rewardloop.types import Decision

log = logging.getLogger(__name__)


class LiveRouter:
    """A router version served from its latest published state (``state_version`` None: from its
    artifact, no learner yet); every decision names the state it was made with."""

    def __init__(self, policy: str, version: str, router: BanditRouter) -> None:
        self.policy = policy
        self.version = version
        self._current: tuple[int | None, BanditRouter] = (None, router)

    @property
    def state_version(self) -> int | None:
        return self._current[0]

    def swap(self, state_version: int, router: BanditRouter) -> None:
        """Serve ``router`` (state ``state_version``) from the next decision on."""
        self._current = (state_version, router)  # one reference: a decision sees one state or the other

    def decide(self, context: DecisionContext, rng: np.random.Generator) -> Decision:
        state, router = self._current
        decision = router.decide(context, rng)
        if state is None:
            return decision
        return dataclasses.replace(decision, metadata={**decision.metadata, STATE_KEY: state})


class RouterStates:
    """The worker's live routers and the thread that keeps them on their latest states.

    Parameters
    ----------
    store : Store
    poll_s : float, default 1.0
        Seconds between checks of the store (SQLite), or the fallback check (PostgreSQL).
    """

    def __init__(self, store: Store, poll_s: float = 1.0) -> None:
        self.store = store
        self.poll_s = poll_s
        self._live: dict[tuple[str, str], LiveRouter] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def serve(self, policy: str, version: str, loaded: Policy) -> Policy:
        """``loaded`` as served: a bandit router becomes a :class:`LiveRouter` on its latest state (and
        the watcher starts); any other policy is returned as it is."""
        if not isinstance(loaded, BanditRouter):
            return loaded
        live = LiveRouter(policy, version, loaded)
        with self._lock:
            self._live[(policy, version)] = live
            if self._thread is None:
                self._thread = threading.Thread(target=self._watch, name="router-states", daemon=True)
                self._thread.start()
        self.refresh([(policy, version)])
        return live

    def live(self) -> list[LiveRouter]:
        with self._lock:
            return list(self._live.values())

    def refresh(self, keys: Iterable[tuple[str, str]] | None = None) -> int:
        """Load the newer published states of ``keys`` (default: every live router); returns how many
        routers moved to a newer state."""
        with self._lock:
            wanted = list(self._live) if keys is None else [k for k in keys if k in self._live]
        moved = 0
        for key, latest in latest_state_versions(self.store, wanted).items():
            live = self._live[key]
            if live.state_version is not None and live.state_version >= latest:
                continue
            state = read_state(self.store, key[0], key[1], latest)
            if state is not None:
                live.swap(state.state_version, decode_router(state.meta, state.arrays))
                moved += 1
        return moved

    def _watch(self) -> None:
        """The watcher thread: notifications (PostgreSQL) or polling (SQLite) until :meth:`close`."""
        while not self._stop.is_set():
            try:
                if self.store.dialect == "postgresql":
                    self._listen()
                else:
                    self.refresh()
                    self._stop.wait(self.poll_s)
            except Exception as err:  # the store is down or restarting: serve what we have, retry
                log.warning("router states: %s: %s; retrying in %.1f s", type(err).__name__, err, self.poll_s)
                self._stop.wait(self.poll_s)

    def _listen(self) -> None:
        self.refresh()  # what was published before the LISTEN began
        stream = notifications(self.store, timeout=self.poll_s)
        try:
            for note in stream:
                if self._stop.is_set():
                    return
                if note is None:
                    self.refresh()  # the fallback check
                else:  # a lineage this worker serves, at a state it does not have yet: load it
                    self.refresh([(note[0], note[1])])
        finally:
            stream.close()

    def close(self) -> None:
        """Stop the watcher (within ``poll_s``); the live routers keep their last state."""
        self._stop.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout=self.poll_s + 5.0)


# ------------------------------------------------------------------------------------- live figures


@dataclass(frozen=True)
class LineageFigures:
    """A lineage's live figures: the learner's last publish, and the state this worker serves."""

    policy: str
    version: str
    state_version: int
    rewards: int
    events: int
    published_at: datetime
    served_state: int | None


def lineage_figures(
    store: Store, policies: Sequence[str], states: RouterStates | None
) -> list[LineageFigures]:
    """The lineages of ``policies``; ``served_state`` is what ``states`` (this worker) serves now."""
    served = {(r.policy, r.version): r.state_version for r in (states.live() if states is not None else [])}
    return [
        LineageFigures(
            x.policy,
            x.base_version,
            x.state_version,
            x.rewards,
            x.events,
            x.updated_at,
            served.get((x.policy, x.base_version)),
        )
        for name in policies
        for x in lineages(store, name)
    ]


def live_leaderboard(store: Store, policies: Sequence[str]) -> list[dict[str, object]]:
    """Per lineage of ``policies`` and arm: the learned router's pulls, mean reward and 95% interval,
    from its latest published state (the figures the router decides on), best first."""
    rows: list[dict[str, object]] = []
    for name in policies:
        for (policy, version), (state_version, meta) in sorted(state_meta(store, name).items()):
            saved = json.loads(meta)
            for r in ArmStats.from_dict(saved["stats"]).leaderboard(arms=saved["arms"]):
                rows.append(
                    {
                        "policy": policy,
                        "version": version,
                        "state_version": state_version,
                        "arm": r.arm,
                        "pulls": r.pulls,
                        "mean_reward": None if r.pulls == 0 else r.mean,
                        "low": r.low,
                        "high": r.high,
                    }
                )
    return rows


__all__ = ["LineageFigures", "LiveRouter", "RouterStates", "lineage_figures", "live_leaderboard"]
