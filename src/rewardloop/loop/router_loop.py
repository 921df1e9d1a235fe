"""``rewardloop loop run`` for a router: replay-train a challenger, score it by OPE, gate, canary.

One iteration (:meth:`RouterLoopRunner.iterate`), after the shared repair of a killed one
(:func:`rewardloop.loop.steps.recover`):

1. compile rewards from the feedback that came in;
2. a running experiment is advanced (ramp, promote or roll back) and the iteration stops there;
3. no champion yet: the first version is the router at its priors (``policies[].options``), recorded
   as a TrainingRun of 0 rows, registered and activated;
4. otherwise a challenger is replayed from the priors on every logged decision of the policy with a
   reward (:meth:`BanditRouter.fit` through :func:`rewardloop.loop.training.fit_and_record`), scored
   by doubly robust OPE on the champion's logged traffic — its own action distribution on each logged
   context, as it will be served — against the champion's logged value, gated on the
   ``ope_lower_vs_champion`` check (``evaluation.gate.min_ope_lower_vs_champion``, 0 when unset: the
   candidate's lower bound must reach the champion's value) and canaried when it passes.

The replay reads ``compute.replay_partitions``: with N > 1 the per-arm sums of N contiguous parts of
the log are computed apart (Ray tasks on ``compute.backend: ray``) and added, the same router as one
pass to rounding (:mod:`rewardloop.learners.bandits._partition`); the TrainingRun records the count and
the backend.

The router comes from ``policies[].options``: ``algorithm`` (one of ``learners.bandits.ROUTERS``,
default ``beta_thompson``), ``features`` (numeric, text or both: the context of a contextual router),
``n_features`` (numeric width when no logged decision has features yet), ``priors``, ``default_prior``
and ``params`` (the algorithm's own hyperparameters, e.g. ``{epsilon: 0.1}``).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rewardloop.config.sections import ComputeConfig, GateConfig
from rewardloop.evaluation.gate import GateReport, OPEComparison, ope_check
from rewardloop.evaluation.offline import evaluate_dist_on_logs
from rewardloop.evaluation.ope import DoublyRobust, logged_feedback_from_decisions
from rewardloop.learners.bandits import ROUTERS, BanditRouter
from rewardloop.learners.bandits.replay import logged_rows
from rewardloop.learners.base import DataSpec
from rewardloop.loop.compute import ComputeBackend, ComputeError
from rewardloop.loop.steps import IterationResult, KindLoop, LoopError
from rewardloop.policies.router import ContextFeatures, RouterInputError
from rewardloop.store import read_decisions
from rewardloop.types import DecisionBatch

#: The ``policies[].options`` keys a router reads.
ROUTER_OPTIONS = ("algorithm", "features", "n_features", "priors", "default_prior", "params")


@dataclass(kw_only=True)
class RouterLoopRunner(KindLoop):
    """The loop's steps over one router policy in a store (see the module docstring)."""

    gate: GateConfig
    arms: Sequence[str]
    options: Mapping[str, Any] = field(default_factory=dict)
    n_bootstrap: int = 300
    compute: ComputeConfig = field(default_factory=ComputeConfig)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.options) - set(ROUTER_OPTIONS))
        if unknown:
            raise LoopError(f"options.{unknown[0]}: not a router option (known: {', '.join(ROUTER_OPTIONS)})")
        algorithm = self.options.get("algorithm", "beta_thompson")
        if algorithm not in ROUTERS:
            raise LoopError(f"options.algorithm: unknown router {algorithm!r} (known: {', '.join(ROUTERS)})")
        if not self.arms:
            raise LoopError(f"policies.labels: name the arms {self.policy} routes between")
        self.algorithm: str = algorithm

    # ------------------------------------------------------------------------------------ building

    def logs(self, version: str | None = None) -> DecisionBatch:
        """The policy's (or one version's) logged router decisions with their compiled rewards."""
        return read_decisions(
            self.store, policy=self.policy, version=version, kind="router", reward_spec=self.spec.key
        )

    def features(self, batch: DecisionBatch) -> ContextFeatures | None:
        """The context builder of a contextual router (None for a context-free one)."""
        if not ROUTERS[self.algorithm].needs_context:
            return None
        first = next((d for d in batch if d.features), None)
        width = len(first.features or ()) if first is not None else self.options.get("n_features")
        mode = self.options.get("features", "numeric")
        if mode not in ("numeric", "text", "both"):
            raise LoopError(f"options.features: must be numeric, text or both; got {mode!r}")
        if mode != "text" and not width:
            raise LoopError("options.n_features: no logged decision has features yet; give their width")
        return ContextFeatures(mode, n_numeric=int(width or 0))

    def new_router(self, feats: ContextFeatures | None) -> BanditRouter:
        """A router at its priors, from the options."""
        kw: dict[str, Any] = {
            "reward_range": (-1.0, 1.0) if self.spec.scale == "signed" else (0.0, 1.0),
            "random_state": self.seed,
            **dict(self.options.get("params", {})),
        }
        for key in ("priors", "default_prior"):
            if key in self.options:
                kw[key] = self.options[key]
        if feats is not None:
            kw["dim"] = feats.dim
        try:
            router = ROUTERS[self.algorithm](list(self.arms), **kw)
            router.reset()
        except (TypeError, RouterInputError) as err:
            raise LoopError(f"options: cannot build the {self.algorithm} router: {err}") from None
        return router

    # ------------------------------------------------------------------------------------ training

    def train(self, *, replay: bool = True, note: str = "") -> tuple[BanditRouter, str]:
        """Replay the logs into a router from its priors (``replay=False``: the priors only); record,
        save and register it. Returns it and its version."""
        batch = self.logs()
        feats = self.features(batch)
        router = self.new_router(feats)
        rows = router.data_from_batch(batch, DataSpec(features=feats)) if replay else None

        def fit() -> tuple[BanditRouter, list[dict[str, float]]]:
            if rows is None or not len(rows):
                return router, []
            fitted = self.replay(router, rows)
            return fitted, list(fitted.history_)

        parts = {"partitions": self.compute.replay_partitions, "backend": self.compute.backend}
        return self.train_and_register(
            "router",
            f"router.{self.algorithm}",
            fit,
            n_samples=len(rows) if rows is not None else 0,
            note=note,
            config=router.get_params() | (parts if replay else {}),
        )

    def replay(self, router: BanditRouter, rows: Any) -> BanditRouter:
        """``router`` fitted on the logged ``rows`` from its priors, in ``compute.replay_partitions``
        parts (on the compute backend; one part is the one-pass replay, and starts no Ray)."""
        partitions = self.compute.replay_partitions
        options: dict[str, Any] = {
            "own_policy": self.policy,
            "add_unknown_arms": False,
            "partitions": partitions,
        }
        if partitions == 1:
            return router.fit(rows, **options)
        try:
            with ComputeBackend(self.compute) as backend:
                return router.fit(rows, map_parts=backend.map_parts, **options)
        except ComputeError as err:
            raise LoopError(f"compute: {err}") from None

    # ---------------------------------------------------------------------------------- evaluation

    def served_dist(self, router: BanditRouter, batch: DecisionBatch, actions: Sequence[str]) -> np.ndarray:
        """The router's distribution over ``actions`` on each rewarded logged context, shape (n, K).

        Drawn on a copy with a seeded generator (Thompson routers estimate theirs by draws); arms the
        router lacks get 0 and each row is renormalised over the logged actions.
        """
        work = copy.deepcopy(router)
        work.rng_ = np.random.default_rng(self.seed)
        rows = logged_rows(batch, self.features(batch))
        out = np.zeros((len(rows), len(actions)))
        cols = [work.arms_.index(a) if a in work.arms_ else -1 for a in actions]
        for i in range(len(rows)):
            dist = work.act(None if rows.X is None else rows.X[i]).action_dist
            out[i] = [dist[c] if c >= 0 else 0.0 for c in cols]
        mass = out.sum(axis=1, keepdims=True)
        if np.any(mass <= 0):
            raise LoopError(f"{self.policy}: the challenger puts no probability on any logged arm")
        return np.asarray(out / mass, dtype=np.float64)

    def ope(self, router: BanditRouter, champion: str) -> OPEComparison | None:
        """Doubly robust value of ``router`` on the champion's rewarded traffic vs its logged value."""
        batch = self.logs(champion).with_rewards()
        if not len(batch):
            return None
        logged = logged_feedback_from_decisions(batch)
        offline = evaluate_dist_on_logs(
            logged,
            self.served_dist(router, batch, logged.actions),
            f"{self.algorithm} (its own exploration)",
            estimators=[DoublyRobust()],
            n_bootstrap_samples=self.n_bootstrap,
            random_state=self.seed,
        )
        return OPEComparison.from_offline(offline)

    def gate_report(self, router: BanditRouter, version: str, champion: str) -> GateReport:
        threshold = self.gate.min_ope_lower_vs_champion
        check = ope_check(self.ope(router, champion), 0.0 if threshold is None else threshold)
        return GateReport(version, champion, [check])

    # ----------------------------------------------------------------------------------- iteration

    def first_version(self) -> str:
        """The router at its priors, recorded and registered."""
        return self.train(replay=False, note="first version, at its priors")[1]

    def challenge(self, champion: str) -> IterationResult:
        """Replay a challenger, gate it by OPE on ``champion``'s traffic, canary it when it passes."""
        router, version = self.train()
        report = self.gate_report(router, version, champion)
        return self.decided(version, report)


__all__ = ["ROUTER_OPTIONS", "RouterLoopRunner"]
