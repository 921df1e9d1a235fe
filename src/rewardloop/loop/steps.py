"""The loop's steps every policy kind shares: repair a killed iteration, advance the running
experiment, start a canary, activate the first champion.

:class:`rewardloop.loop.iteration.LoopRunner` (classifiers),
:class:`rewardloop.loop.router_loop.RouterLoopRunner` and
:class:`rewardloop.loop.reranker_loop.RerankerLoopRunner` all call these, so that one kill at any step
is repaired the same way whatever the kind.
"""

from __future__ import annotations

import hashlib
import shutil
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rewardloop.config.faults import fault_point
from rewardloop.evaluation.evidence import OfflineEvidence
from rewardloop.evaluation.gate import GateReport
from rewardloop.loop.compile import compile_rewards
from rewardloop.loop.experiments import Experiments
from rewardloop.loop.training import fit_and_record
from rewardloop.registry import CHALLENGER, CHAMPION, Registry, RegistryError
from rewardloop.registry.artifacts import MANIFEST_SUFFIX
from rewardloop.registry.registry import semver_key
from rewardloop.rewards import RewardSpec
from rewardloop.store import Store, finish_run, read_runs
from rewardloop.types import DecisionKind, Experiment, TrainingRun

#: ``TrainingRun.config["source"]`` of the loop's runs (what :func:`recover` closes).
LOOP_SOURCE = "loop"


class LoopError(ValueError):
    """The loop cannot run on this store as configured; the message says what is missing."""


@dataclass
class IterationResult:
    """What one iteration did, in words and figures."""

    action: str  # "advanced", "held", "promoted", "rolled_back", "canary", "gated", "bootstrapped", "idle"
    summary: str
    challenger: str | None = None
    gate: GateReport | None = None
    details: dict[str, Any] = field(default_factory=dict)


def champion_version(registry: Registry, policy: str) -> str | None:
    """The version the ``champion`` alias names, or None before the first one."""
    try:
        return registry.resolve(f"{policy}@{CHAMPION}").version
    except RegistryError:
        return None


def next_version(registry: Registry, policy: str) -> str:
    """The version the next registration gets (``1.0.0`` for the first)."""
    return registry.next_version(policy) if registry.versions(policy) else "1.0.0"


def recover(store: Store, registry: Registry, experiments: Experiments, policy: str, actor: str) -> list[str]:
    """Repair what a killed iteration left half-done; returns what was repaired, in words.

    Each step of an iteration is either idempotent or repaired here, so that a rerun after a kill
    at any step completes with a consistent history (one loop process per policy is assumed):

    - a TrainingRun of the loop left ``running`` is closed: ``succeeded`` if the version it
      registered exists (with that version's metrics and artifact), else ``failed``;
    - a registry folder or manifest of this policy that no registered version owns (killed
      between the artifact copy and the registry insert) is removed, so the version is free again;
    - a running experiment whose challenger has no ``challenger`` alias gets it.
    """
    return [
        *close_interrupted_runs(store, registry, policy),
        *remove_orphan_artifacts(registry, policy),
        *repair_alias(registry, experiments, policy, actor),
    ]


def close_interrupted_runs(store: Store, registry: Registry, policy: str) -> list[str]:
    done = []
    by_run = {v.training_run_id: v for v in registry.versions(policy) if v.training_run_id}
    for run in read_runs(store, policy=policy):
        if run.status != "running" or run.config.get("source") != LOOP_SOURCE:
            continue
        pv = by_run.get(run.id)
        if pv is not None:
            finish_run(store, run, {**pv.metrics, "recovered": 1.0}, artifact_path=pv.artifact_path)
            done.append(f"run {run.id[:8]} closed: it registered {pv.version} before it was interrupted")
        else:
            finish_run(store, run, {"interrupted": 1.0}, status="failed")
            done.append(f"run {run.id[:8]} closed as failed: interrupted before it registered a version")
    return done


def remove_orphan_artifacts(registry: Registry, policy: str) -> list[str]:
    folder = registry.root / policy
    if not folder.is_dir():
        return []
    known = {v.version for v in registry.versions(policy)}
    done = []
    for path in sorted(folder.iterdir()):
        version = path.name.removesuffix(MANIFEST_SUFFIX)
        if version in known:
            continue
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
        done.append(f"removed {path}: no registered version owns it (an interrupted registration)")
    return done


def repair_alias(registry: Registry, experiments: Experiments, policy: str, actor: str) -> list[str]:
    running = experiments.running_for(policy)
    version = running.variants.get(CHALLENGER) if running is not None else None
    if version is None or registry.aliases(policy).get(CHALLENGER) == version:
        return []
    reason = f"experiment {running.name if running else ''} started (alias repaired after an interruption)"
    registry.set_alias(f"{policy}@{version}", CHALLENGER, actor=actor, reason=reason)
    return [f"challenger alias set to {version} for the running experiment"]


def start_canary(
    experiments: Experiments,
    policy: str,
    version: str,
    report: GateReport,
    seed: int,
    actor: str,
    offline: OfflineEvidence | None = None,
) -> tuple[Experiment | None, str]:
    """Start the champion-vs-``version`` experiment the gate ``report`` allowed; returns it and why.

    With the candidate's ``offline`` evidence, a canary already running is replaced only when the
    evidence beats the canary's (:meth:`Experiments.supersede`; None and the reason otherwise).
    """
    # A salt of its own per experiment (independent assignments), derived from the seed so that
    # a rerun assigns every user the same way.
    salt = hashlib.sha256(f"{policy}:{version}:{seed}".encode()).hexdigest()[:16]
    name = f"{policy}-{version}"
    if offline is not None:
        exp, why = experiments.supersede(
            name, policy, version, offline, gate_report=report, actor=actor, salt=salt
        )
    else:
        exp = experiments.start(name, policy, version, gate_report=report, actor=actor, salt=salt)
        why = f"{name} started"
    fault_point("canary_started")
    return exp, why


def advance_running(experiments: Experiments, policy: str, actor: str) -> IterationResult | None:
    """Advance the policy's running experiment (ramp, promote or roll back); None when none runs."""
    running = experiments.running_for(policy)
    if running is None:
        return None
    step = experiments.advance(running, actor=actor)
    return IterationResult(
        step.action,
        step.summary(),
        running.variants.get(CHALLENGER),
        details={"verdict": step.verdict.to_dict()},
    )


def gated_or_canary(
    version: str, report: GateReport, start: Callable[[], tuple[Experiment | None, str]]
) -> IterationResult:
    """The gate's verdict acted on: ``start()`` the canary of ``version`` (:func:`start_canary`) when
    ``report`` passed, else stopped; "kept" when a running canary's evidence is not beaten."""
    if not report.passed:
        failed = ", ".join(c.name for c in report.failed)
        return IterationResult("gated", f"{version} stopped at the gate ({failed})", version, report)
    exp, why = start()
    if exp is None:
        return IterationResult("kept", f"{version} passed the gate; {why}", version, report)
    return IterationResult("canary", f"{version} passed the gate; canary started", version, report)


def registrar(
    registry: Registry, policy: str, kind: DecisionKind, version: str, parent: str | None
) -> Callable[[Any, Path, TrainingRun, dict[str, float]], str]:
    """The ``register`` step of :func:`rewardloop.loop.training.fit_and_record`: the saved folder
    registered as ``version`` of ``policy`` with the run's metrics, its parent and its run."""

    def register(_fitted: Any, folder: Path, run: TrainingRun, metrics: dict[str, float]) -> str:
        pv = registry.register(
            policy,
            folder,
            kind,
            version=version,
            metrics=metrics,
            parent_version=parent,
            training_run_id=run.id,
        )
        return pv.version

    return register


def run_iteration(
    store: Store,
    registry: Registry,
    experiments: Experiments,
    spec: RewardSpec,
    policy: str,
    actor: str,
    train_first: Callable[[], str],
    challenge: Callable[[str], IterationResult],
) -> IterationResult:
    """One iteration of a non-classifier loop: repair, compile rewards, then advance the running
    experiment, or bootstrap (``train_first()``), or ``challenge(champion)``."""
    repaired = recover(store, registry, experiments, policy, actor)
    compile_rewards(store, spec, policy=policy, incremental=True)
    result = advance_running(experiments, policy, actor)
    if result is None:
        champion = champion_version(registry, policy)
        result = bootstrap(registry, policy, actor, train_first) if champion is None else challenge(champion)
    if repaired:
        result.details["recovered"] = repaired
    return result


@dataclass(kw_only=True)
class KindLoop(ABC):
    """What the router and reranker loops share: where they read and record, and :meth:`iterate`."""

    store: Store
    registry: Registry
    experiments: Experiments
    policy: str
    spec: RewardSpec
    artifacts: Path
    seed: int = 0
    actor: str = "rewardloop-loop"

    @abstractmethod
    def first_version(self) -> str:
        """Train and register the first version (no champion yet); returns it."""

    @abstractmethod
    def challenge(self, champion: str) -> IterationResult:
        """Train a challenger, gate it against ``champion`` and act on the verdict."""

    def champion_version(self) -> str | None:
        """The version the ``champion`` alias names, or None before the first one."""
        return champion_version(self.registry, self.policy)

    def iterate(self) -> IterationResult:
        """Run one iteration (see :func:`run_iteration`)."""
        return run_iteration(
            self.store,
            self.registry,
            self.experiments,
            self.spec,
            self.policy,
            self.actor,
            self.first_version,
            self.challenge,
        )

    def decided(
        self, version: str, report: GateReport, offline: OfflineEvidence | None = None
    ) -> IterationResult:
        """The gate's verdict on ``version`` acted on (:func:`gated_or_canary`); with the challenger's
        ``offline`` evidence, a non-inferior canary that the evidence says is better is promoted."""
        return gated_or_canary(
            version,
            report,
            lambda: start_canary(
                self.experiments, self.policy, version, report, self.seed, self.actor, offline
            ),
        )

    def train_and_register(
        self,
        kind: DecisionKind,
        learner: str,
        fit: Callable[[], tuple[Any, list[dict[str, float]]]],
        *,
        n_samples: int,
        note: str = "",
        config: Mapping[str, Any] | None = None,
        skipped: Mapping[str, int] | None = None,
        evaluate: Callable[[Any], Mapping[str, float]] | None = None,
    ) -> tuple[Any, str]:
        """``fit()`` recorded as a loop TrainingRun of ``learner`` (``note`` in its name and config),
        saved and registered as the next version of the policy, the champion its parent
        (:func:`rewardloop.loop.training.fit_and_record`). Returns the fitted policy and its version."""
        parent = champion_version(self.registry, self.policy)
        version = next_version(self.registry, self.policy)
        run = TrainingRun(
            policy=self.policy,
            learner=learner + (f" ({note})" if note else ""),
            config={"source": LOOP_SOURCE, "parent": parent, "note": note, **(config or {})},
            n_samples=n_samples,
        )
        outcome = fit_and_record(
            self.store,
            run,
            fit,
            self.artifacts / f"{self.policy}-{version}",
            skipped=skipped,
            evaluate=evaluate,
            register=registrar(self.registry, self.policy, kind, version, parent),
        )
        return outcome.fitted, str(outcome.version)


def bootstrap(registry: Registry, policy: str, actor: str, train_first: Callable[[], str]) -> IterationResult:
    """No champion yet: ``train_first()`` (or take the version an interrupted run registered) and
    activate it as the first champion."""
    versions = registry.versions(policy)
    if versions:
        version = max((v.version for v in versions), key=semver_key)
        note = "registered by an interrupted iteration"
    else:
        version = train_first()
        note = "trained"
    registry.activate(f"{policy}@{version}", actor=actor, reason="first version of the policy")
    return IterationResult("bootstrapped", f"{version} {note} and activated as the first champion", version)


__all__ = [
    "LOOP_SOURCE",
    "IterationResult",
    "KindLoop",
    "LoopError",
    "advance_running",
    "bootstrap",
    "champion_version",
    "gated_or_canary",
    "next_version",
    "recover",
    "registrar",
    "run_iteration",
    "start_canary",
]
