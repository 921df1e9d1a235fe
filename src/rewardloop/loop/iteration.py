"""One iteration of the loop on a store: what ``rewardloop loop run`` does, and the demo each round.

1. compile rewards from the feedback that came in;
2. if an experiment of the policy is running: advance it (ramp up, promote or roll back by the
   statistics and guardrails) and stop there;
3. otherwise train a challenger from the store — supervised on every correction and confirmation
   (weighted by rater authority), then optionally an RL learner on the bandit feedback — evaluate it on
   the golden set and by off-policy evaluation (doubly robust) on the champion's logged traffic, gate it
   against the champion, and start a canary experiment when it passes.

Every step is recorded: the TrainingRun, the registered version with its metrics and lineage, the gate
report (in the experiment's log and the alias history), the experiment's verdicts.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import numpy as np

from rewardloop.config.sections import GateConfig
from rewardloop.encoders import MiniLMEncoder, default_encoder
from rewardloop.evaluation.gate import GateReport, OPEComparison, run_gate
from rewardloop.evaluation.golden import GoldenSet
from rewardloop.evaluation.metrics import GoldenReport, evaluate_predictions
from rewardloop.evaluation.offline import evaluate_candidate_on_logs
from rewardloop.evaluation.ope import DoublyRobust
from rewardloop.learners import LEARNERS, SupervisedConfig, SupervisedLearner, labelled_from_batch
from rewardloop.learners.base import BanditData, LearnerConfig
from rewardloop.loop.compile import compile_rewards
from rewardloop.loop.experiments import Experiments
from rewardloop.policies.classifier import ClassifierPolicy
from rewardloop.registry import CHAMPION, Registry, RegistryError
from rewardloop.rewards import RewardSpec
from rewardloop.store import Store, finish_run, read_decisions, start_run
from rewardloop.types import DecisionBatch, TrainingRun


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


@dataclass
class LoopRunner:
    """The loop's steps over one classifier policy in a store.

    Parameters
    ----------
    store, registry, experiments
        Where decisions/feedback live, where versions are registered, and the experiment controller.
    policy : str
        The policy's name, as logged on its decisions.
    golden : GoldenSet
        The golden set every candidate is scored on.
    spec : RewardSpec
        The reward the RL learner and the off-policy estimates read.
    gate : GateConfig
        Thresholds a challenger must pass before a canary.
    labels : sequence of str, optional
        The policy's labels; default: the champion's.
    rl_learner : str or None
        A name in ``learners.LEARNERS`` applied after supervised training (None: supervised only).
    base_texts, base_labels
        Labelled examples always trained on besides the store's feedback (e.g. the seed set).
    """

    store: Store
    registry: Registry
    experiments: Experiments
    policy: str
    golden: GoldenSet
    spec: RewardSpec
    gate: GateConfig
    artifacts: Path
    labels: Sequence[str] | None = None
    rl_learner: str | None = "ppo"
    base_texts: Sequence[str] = ()
    base_labels: Sequence[str] = ()
    seed: int = 0
    encoder: MiniLMEncoder | None = None
    actor: str = "rewardloop-loop"
    _policies: dict[str, ClassifierPolicy] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        if self.rl_learner is not None and self.rl_learner not in LEARNERS:
            raise LoopError(
                f"training.learner: unknown learner {self.rl_learner!r} (known: {', '.join(LEARNERS)})"
            )
        if self.encoder is None:
            self.encoder = default_encoder()

    # ------------------------------------------------------------------------------------ versions

    def load(self, version: str) -> ClassifierPolicy:
        """The registered version, verified against its checksum and loaded (cached)."""
        if version not in self._policies:
            path = self.registry.artifact_path(f"{self.policy}@{version}")
            self._policies[version] = ClassifierPolicy.load(path, encoder=self.encoder)
        return self._policies[version]

    def champion_version(self) -> str | None:
        try:
            return self.registry.resolve(f"{self.policy}@{CHAMPION}").version
        except RegistryError:
            return None

    def evaluate(self, policy: ClassifierPolicy, name: str) -> GoldenReport:
        proba = policy.predict_proba(self.golden.texts)  # (n_golden, K)
        return evaluate_predictions(self.golden, policy.labels, proba, policy=name)

    def register(
        self, policy: ClassifierPolicy, report: GoldenReport, parent: str | None, run_id: str | None
    ) -> str:
        version = self.registry.next_version(self.policy) if parent else "1.0.0"
        policy.name, policy.version = self.policy, version
        folder = policy.save(self.artifacts / f"{self.policy}-{version}")
        metrics = {"golden_accuracy": report.accuracy, "ece": report.ece, "macro_f1": report.macro_f1}
        self.registry.register(
            self.policy,
            folder,
            "classifier",
            version=version,
            metrics=metrics,
            parent_version=parent,
            training_run_id=run_id,
        )
        self._policies[version] = policy
        return version

    # ------------------------------------------------------------------------------------ training

    def fit_supervised(
        self,
        texts: Sequence[str],
        labels: Sequence[str],
        weights: Any = None,
        start: ClassifierPolicy | None = None,
    ) -> ClassifierPolicy:
        """Supervised training on texts and labels (optionally continuing from ``start``'s head)."""
        learner = SupervisedLearner(SupervisedConfig(seed=self.seed, warm_start=start is not None))
        if start is not None:
            start = ClassifierPolicy(
                start.labels, head=copy.deepcopy(start.head), hidden=start.hidden, encoder=self.encoder
            )
            start.head_fitted = True
        labels_order = list(self.labels) if self.labels is not None else None
        policy = learner.fit(list(texts), list(labels), weights, policy=start, labels=labels_order)
        policy._encoder = self.encoder
        return policy

    def train_challenger(
        self,
        *,
        since: datetime | None = None,
        corrupt_labels: Callable[[list[str]], list[str]] | None = None,
        note: str = "",
    ) -> tuple[ClassifierPolicy, str, DecisionBatch]:
        """Train, evaluate and register a challenger from the store; returns it, its version, its data.

        ``corrupt_labels`` deliberately breaks the labels (the demo's bad challenger: a broken pipeline).
        """
        parent = self.champion_version()
        logged = read_decisions(
            self.store, policy=self.policy, since=since, include_feedback=True, reward_spec=self.spec.key
        )
        labelled = labelled_from_batch(logged, self.labels)
        texts = list(self.base_texts) + labelled.texts
        labels = list(self.base_labels) + labelled.labels
        if not texts:
            raise LoopError(
                f"no labelled data for {self.policy}: send corrections (or ratings at the top of their scale)"
            )
        weights = np.concatenate([np.ones(len(self.base_texts)), labelled.sample_weight])
        if corrupt_labels is not None:
            labels = corrupt_labels(labels)
        learner = "supervised" + (f"+{self.rl_learner}" if self.rl_learner and corrupt_labels is None else "")
        run = start_run(
            self.store,
            TrainingRun(
                policy=self.policy,
                learner=learner + (f" ({note})" if note else ""),
                config={"rl_learner": self.rl_learner, "seed": self.seed, "parent": parent, "note": note},
                data_window=(since, None),
                n_samples=len(texts),
            ),
        )
        try:
            policy = self.fit_supervised(texts, labels, weights)
            if self.rl_learner is not None and corrupt_labels is None:
                policy = self._fit_rl(policy, logged)
            report = self.evaluate(policy, "challenger")
            version = self.register(policy, report, parent, run.id)
        except Exception:
            finish_run(self.store, run, {}, status="failed")
            raise
        finish_run(
            self.store,
            run,
            {"golden_accuracy": report.accuracy, "ece": report.ece, "n_labelled": float(len(labelled.texts))},
            str(self.registry.artifact_path(f"{self.policy}@{version}")),
        )
        return policy, version, logged

    def _fit_rl(self, policy: ClassifierPolicy, logged: DecisionBatch) -> ClassifierPolicy:
        assert self.rl_learner is not None
        learner_cls = LEARNERS[self.rl_learner]
        data = BanditData.from_batch(logged, policy.labels, policy.embed)
        if not len(data):
            return policy
        config_cls = cast(type[LearnerConfig], learner_cls.config_class)
        config = config_cls.from_dict({"seed": self.seed})
        learner = learner_cls(config)
        fitted: ClassifierPolicy = learner.fit(data, policy=policy)
        fitted._encoder = self.encoder
        return fitted

    # ---------------------------------------------------------------------------------- evaluation

    def ope(self, candidate: ClassifierPolicy, logged: DecisionBatch) -> OPEComparison | None:
        """Doubly robust value of ``candidate`` on logged decisions vs the logging policy's own value."""
        if not logged.rewards:
            return None
        offline = evaluate_candidate_on_logs(
            candidate,
            logged.with_rewards(),
            estimators=[DoublyRobust()],
            n_bootstrap_samples=300,
            random_state=self.seed,
        )
        return OPEComparison(offline.report.value("dr"), offline.logging_policy_value)

    def champion_logs(self, since: datetime | None = None) -> DecisionBatch:
        """The champion's logged decisions (with rewards) since ``since``: what the OPE check reads."""
        return read_decisions(
            self.store,
            policy=self.policy,
            version=self.champion_version(),
            since=since,
            reward_spec=self.spec.key,
        )

    def gate_report(self, candidate: ClassifierPolicy, logged: DecisionBatch) -> GateReport:
        champion = self.champion_version()
        champion_report = self.evaluate(self.load(champion), "champion") if champion else None
        report = self.evaluate(candidate, "candidate")
        return run_gate(report, champion_report, self.gate, ope=self.ope(candidate, logged))

    def start_canary(self, version: str, report: GateReport) -> None:
        """Start the champion-vs-``version`` experiment the gate ``report`` allowed."""
        # A salt of its own per experiment (independent assignments), derived from the seed so that
        # a rerun assigns every user the same way.
        salt = hashlib.sha256(f"{self.policy}:{version}:{self.seed}".encode()).hexdigest()[:16]
        self.experiments.start(
            f"{self.policy}-{version}", self.policy, version, gate_report=report, actor=self.actor, salt=salt
        )

    # ----------------------------------------------------------------------------------- iteration

    def iterate(self, *, since: datetime | None = None, ope_since: datetime | None = None) -> IterationResult:
        """Run one iteration (see the module docstring).

        ``since`` limits the training data to decisions from then on (default: all); ``ope_since`` the
        champion's logged decisions the off-policy check reads (default: ``since``).
        """
        compile_rewards(self.store, self.spec, policy=self.policy, incremental=True)
        running = self.experiments.running_for(self.policy)
        if running is not None:
            step = self.experiments.advance(running, actor=self.actor)
            challenger = running.variants.get("challenger")
            if step.action == "rolled_back" and challenger is not None:
                self._policies.pop(challenger, None)
            return IterationResult(
                step.action, step.summary(), challenger, details={"verdict": step.verdict.to_dict()}
            )
        champion = self.champion_version()
        if champion is None:
            policy, version, _ = self.train_challenger(note="first version")
            self.registry.activate(
                f"{self.policy}@{version}", actor=self.actor, reason="first version of the policy"
            )
            return IterationResult(
                "bootstrapped", f"{version} trained and activated as the first champion", version
            )
        policy, version, _ = self.train_challenger(since=since)
        logged = self.champion_logs(ope_since or since)
        report = self.gate_report(policy, logged)
        if not report.passed:
            failed = ", ".join(c.name for c in report.failed)
            return IterationResult("gated", f"{version} stopped at the gate ({failed})", version, report)
        self.start_canary(version, report)
        return IterationResult("canary", f"{version} passed the gate; canary started", version, report)
