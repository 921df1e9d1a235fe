"""One iteration of the loop on a store: what ``rewardloop loop run`` does, and the demo each round.

1. compile rewards from the feedback that came in;
2. if an experiment of the policy is running: advance it (ramp up, promote or roll back by the
   statistics and guardrails) and stop there;
3. otherwise train a challenger from the store — the label learner (supervised or LoRA) on every
   correction and confirmation (weighted by rater authority), then optionally an RL learner with the
   YAML hyperparameters on the data its ``data_from_batch`` builds — evaluate it on the golden set and
   by off-policy evaluation (doubly robust) on the champion's logged traffic, gate it against the
   champion, and start a canary experiment when it passes — with its offline evidence (golden set,
   OPE), which lets a non-inferior canary be promoted. With ``candidates=True`` (the demo) step 3
   trains several candidates and keeps the one the held-out logs and OPE prefer
   (:mod:`rewardloop.loop.candidates`; the next one when the gate stops it), and also runs in the
   round a canary ends and while one runs
   (a newer challenger whose evidence beats the canary's replaces it).

Every step is recorded: the TrainingRun (through :func:`rewardloop.loop.training.fit_and_record`),
the registered version with its metrics and lineage, the gate report (in the experiment's log and the
alias history), the experiment's verdicts. A kill at any step is repaired by the next iteration
(:meth:`LoopRunner.recover`); ``REWARDLOOP_FAULT=<step>`` kills the process at a named step for the
tests: ``trained``, ``registered``, ``run_finished``, ``canary_started`` (and, inside the registry and
the experiments, ``registry.artifact_copied`` and ``experiment.inserted``).
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from rewardloop.config.faults import fault_point
from rewardloop.config.sections import GateConfig
from rewardloop.encoders import MiniLMEncoder, default_encoder
from rewardloop.evaluation.evidence import OfflineEvidence
from rewardloop.evaluation.gate import GateReport, OPEComparison, run_gate
from rewardloop.evaluation.golden import GoldenSet
from rewardloop.evaluation.metrics import GoldenReport, evaluate_predictions
from rewardloop.evaluation.offline import evaluate_candidate_on_logs
from rewardloop.evaluation.ope import DoublyRobust
from rewardloop.learners import LEARNERS, LabelledData, labelled_from_batch
from rewardloop.learners.base import DataSpec, LearnerConfig
from rewardloop.loop.candidates import Candidate, challengers_on_evidence
from rewardloop.loop.compile import compile_rewards
from rewardloop.loop.experiments import Experiments
from rewardloop.loop.review import exploration_pick
from rewardloop.loop.steps import (
    LOOP_SOURCE,
    IterationResult,
    LoopError,
    bootstrap,
    champion_version,
    next_version,
    recover,
    start_canary,
)
from rewardloop.loop.training import fit_and_record
from rewardloop.policies.abstain import AbstainGate
from rewardloop.policies.classifier import ClassifierPolicy
from rewardloop.registry import Registry
from rewardloop.rewards import RewardSpec
from rewardloop.store import Store, read_decisions
from rewardloop.types import DecisionBatch, Experiment, TrainingRun

#: The label learners (the loop's first step); any other learner runs after one of them.
LABEL_LEARNERS = ("supervised", "lora")
#: ``skipped`` key of the ratings of exploration picks: no label (:meth:`LoopRunner.labelled_data`).
EXPLORATION_RATING = "rating of an exploration pick (no label)"
#: Folder inside a challenger's artifact that holds DQN's learned abstain gate.
ABSTAIN_GATE_DIR = "abstain_gate"


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
        A name in ``learners.LEARNERS`` applied after the label learner (None: labels only). DQN learns
        an abstain gate over the challenger: it is saved beside it (``abstain_gate/``) and registered
        with it; the classifier is what the gate and the canary judge.
    rl_config : LearnerConfig, optional
        The RL learner's config (the YAML ``training`` section resolved); default: its defaults + seed.
    label_learner, label_config
        The learner of the label step (``supervised`` or ``lora``) and its config (default + seed).
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
    rl_config: LearnerConfig | None = None
    label_learner: str = "supervised"
    label_config: LearnerConfig | None = None
    base_texts: Sequence[str] = ()
    base_labels: Sequence[str] = ()
    seed: int = 0
    encoder: MiniLMEncoder | None = None
    actor: str = "rewardloop-loop"
    #: Train every candidate and keep the one the held-out logs and OPE prefer, and train again in
    #: the round a canary ends or while one runs (it may replace it); False: the one configured
    #: learner, and no training while a canary runs (``rewardloop loop run``).
    candidates: bool = False
    #: The last label step's per-step metrics (namespaced, with ``stage`` 0).
    history_: list[dict[str, float]] = field(default_factory=list, init=False)
    _policies: dict[str, ClassifierPolicy] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        for name in (self.rl_learner, self.label_learner):
            if name is not None and name not in LEARNERS:
                raise LoopError(f"training.learner: unknown learner {name!r} (known: {', '.join(LEARNERS)})")
        if self.label_learner not in LABEL_LEARNERS:
            raise LoopError(f"label_learner: {self.label_learner!r} does not learn from labels")
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
        return champion_version(self.registry, self.policy)

    def evaluate(self, policy: ClassifierPolicy, name: str) -> GoldenReport:
        proba = policy.predict_proba(self.golden.texts)  # (n_golden, K)
        return evaluate_predictions(self.golden, policy.labels, proba, policy=name)

    def register(
        self, policy: ClassifierPolicy, report: GoldenReport, parent: str | None, run_id: str | None
    ) -> str:
        """Save ``policy`` and register it as the next version; returns the version."""
        version = self._next_version()
        policy.name, policy.version = self.policy, version
        folder = policy.save(self.artifacts / f"{self.policy}-{version}")
        return self._register_folder(policy, folder, report, parent, run_id)

    def _next_version(self) -> str:
        return next_version(self.registry, self.policy)

    def _register_folder(
        self,
        policy: ClassifierPolicy,
        folder: Path,
        report: GoldenReport,
        parent: str | None,
        run_id: str | None,
    ) -> str:
        metrics = {"golden_accuracy": report.accuracy, "ece": report.ece, "macro_f1": report.macro_f1}
        pv = self.registry.register(
            self.policy,
            folder,
            "classifier",
            version=policy.version,
            metrics=metrics,
            parent_version=parent,
            training_run_id=run_id,
        )
        self._policies[pv.version] = policy
        return pv.version

    # ------------------------------------------------------------------------------------ training

    def fit_supervised(
        self,
        texts: Sequence[str],
        labels: Sequence[str],
        weights: Any = None,
        start: ClassifierPolicy | None = None,
    ) -> ClassifierPolicy:
        """The label learner on texts and labels (optionally continuing from ``start``'s head)."""
        cls = LEARNERS[self.label_learner]
        config: Any = self.label_config or cls.config_class.from_dict({"seed": self.seed})
        if start is not None:  # both label learners' configs have warm_start
            config = dataclasses.replace(config, warm_start=True)
            start = ClassifierPolicy(
                start.labels, head=copy.deepcopy(start.head), hidden=start.hidden, encoder=self.encoder
            )
            start.head_fitted = True
        elif self.labels is not None:  # a fresh policy in the configured label order
            start = ClassifierPolicy(list(self.labels), encoder=self.encoder)
        w = np.ones(len(texts)) if weights is None else np.asarray(weights, dtype=np.float64)
        learner = cls(config)
        policy: ClassifierPolicy = learner.fit(LabelledData(list(texts), list(labels), w), policy=start)
        if policy.backend != "finetuned":
            policy._encoder = self.encoder
        self.history_ = [{**row, "stage": 0.0} for row in learner.history_]
        return policy

    def labelled_data(self, logged: DecisionBatch) -> LabelledData:
        """The base examples and the store's labelled feedback (unknown labels skipped and counted).

        A thumbs up on an **exploration pick** (the uniform draw of ε-greedy, see
        :func:`~rewardloop.loop.review.exploration_pick`) does not make its action a label: such an
        action is right about 1/K of the time, so a rater who slips with probability q confirms a wrong
        one (1 − 1/K)·q / ((1/K)·(1 − q)) times as often as a right one — with K = 42 and q = 0.15
        about 7 times as often. (The demo's 6 rounds: dropping them took supervision on the logged
        feedback from 0.917 to 0.927 golden accuracy, against 0.931 with only the right labels.)
        Its corrections still count, and the bandit learners still read its thumbs, weighted by
        their propensities. Counted in ``skipped``.
        """
        picks = {d.id for d in logged if exploration_pick(d)}
        feedback = {
            i: [f for f in fbs if f.kind == "correction"] if i in picks else fbs
            for i, fbs in logged.feedback.items()
        }
        dropped = sum(len(fbs) - len(feedback[i]) for i, fbs in logged.feedback.items())
        kept = DecisionBatch(logged.decisions, feedback, logged.rewards)
        store = labelled_from_batch(kept, self.labels, unknown_labels="skip")
        skipped = dict(store.skipped)
        if dropped:
            skipped[EXPLORATION_RATING] = dropped
        return LabelledData(
            list(self.base_texts) + store.texts,
            list(self.base_labels) + store.labels,
            np.concatenate([np.ones(len(self.base_texts)), store.sample_weight]),
            [""] * len(self.base_texts) + store.decision_ids,
            skipped,
        )

    def train_challenger(
        self,
        *,
        since: datetime | None = None,
        labelled: LabelledData | None = None,
        rl: bool = True,
        note: str = "",
        rl_config: LearnerConfig | None = None,
        record: dict[str, Any] | None = None,
    ) -> tuple[ClassifierPolicy, str, DecisionBatch]:
        """Train, evaluate and register a challenger from the store; returns it, its version, its data.

        ``labelled`` replaces the labelled examples (default: :meth:`labelled_data` of the store's
        feedback since ``since``); ``rl=False`` skips the RL step; ``rl_config`` replaces the RL
        learner's config (the candidates' chosen hyperparameters); ``record`` is added to the run's
        config. Recorded through :func:`rewardloop.loop.training.fit_and_record`: the run is closed
        whatever happens.
        """
        rl_config = rl_config or self.rl_config
        parent = self.champion_version()
        logged = read_decisions(
            self.store, policy=self.policy, since=since, include_feedback=True, reward_spec=self.spec.key
        )
        data = labelled if labelled is not None else self.labelled_data(logged)
        if not len(data):
            raise LoopError(
                f"no labelled data for {self.policy}: send corrections (or ratings at the top of their scale)"
            )
        rl_name = self.rl_learner if rl else None
        learner = self.label_learner + (f"+{rl_name}" if rl_name else "")
        run = TrainingRun(
            policy=self.policy,
            learner=learner + (f" ({note})" if note else ""),
            config={
                "source": LOOP_SOURCE,
                "rl_learner": rl_name,
                "seed": self.seed,
                "parent": parent,
                "note": note,
                "rl_config": dataclasses.asdict(rl_config) if rl_config else None,
                **(record or {}),
            },
            data_window=(since, None),
            n_samples=len(data),
        )
        reports: dict[str, GoldenReport] = {}
        gates: list[AbstainGate] = []

        def fit() -> tuple[ClassifierPolicy, list[dict[str, float]]]:
            policy = self.fit_supervised(data.texts, data.labels, data.sample_weight)
            history = list(self.history_)
            if rl_name is not None:
                policy, rl_history, gate = self._fit_rl(policy, logged, rl_config)
                history += rl_history
                gates.extend([gate] if gate is not None else [])
            policy.name, policy.version = self.policy, self._next_version()
            return policy, history

        def evaluate(policy: ClassifierPolicy) -> dict[str, float]:
            reports["challenger"] = report = self.evaluate(policy, "challenger")
            return {"golden_accuracy": report.accuracy, "ece": report.ece, "n_labelled": float(len(data))}

        def register(policy: ClassifierPolicy, folder: Path, run: TrainingRun, _m: dict[str, float]) -> str:
            for gate in gates:  # DQN's abstain gate is registered with the classifier it gates
                gate.save(folder / ABSTAIN_GATE_DIR)
            return self._register_folder(policy, folder, reports["challenger"], parent, run.id)

        outcome = fit_and_record(
            self.store,
            run,
            fit,
            self.artifacts / f"{self.policy}-{self._next_version()}",
            skipped=data.skipped,
            evaluate=evaluate,
            register=register,
        )
        fault_point("run_finished")
        return outcome.fitted, str(outcome.version), logged

    def _fit_rl(
        self, policy: ClassifierPolicy, logged: DecisionBatch, config: LearnerConfig | None = None
    ) -> tuple[ClassifierPolicy, list[dict[str, float]], AbstainGate | None]:
        """The RL learner with the YAML config on the data its ``data_from_batch`` builds.

        Returns the policy, the learner's history and DQN's abstain gate (None for the others).
        """
        assert self.rl_learner is not None
        cls = LEARNERS[self.rl_learner]
        config = config or self.rl_config or cls.config_class.from_dict({"seed": self.seed})
        spec = DataSpec(config=config, labels=policy.labels, embed=policy.embed)
        data = cls.data_from_batch(logged, spec)
        if not len(data):
            return policy, [], None
        learner = cls(config)
        fitted = learner.fit(data, policy=policy)
        history = [{**row, "stage": 1.0} for row in learner.history_]
        if isinstance(fitted, AbstainGate):  # DQN: the classifier stays; its learned gate rides along
            return policy, history, fitted
        fitted._encoder = self.encoder
        return fitted, history, None

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

    def start_canary(
        self, version: str, report: GateReport, offline: OfflineEvidence | None = None
    ) -> tuple[Experiment | None, str]:
        """Start the champion-vs-``version`` experiment the gate ``report`` allowed, with the
        candidate's ``offline`` evidence (which lets a non-inferior canary be promoted). With a canary
        running already, ``version`` replaces it only if its evidence beats the canary's
        (:meth:`Experiments.supersede`). Returns (the experiment started or None, why)."""
        return start_canary(
            self.experiments, self.policy, version, report, self.seed, self.actor, offline=offline
        )

    # ------------------------------------------------------------------------------------ recovery

    def recover(self) -> list[str]:
        """Repair what a killed iteration left half-done (:func:`rewardloop.loop.steps.recover`)."""
        return recover(self.store, self.registry, self.experiments, self.policy, self.actor)

    # ----------------------------------------------------------------------------------- iteration

    def iterate(self, *, since: datetime | None = None, ope_since: datetime | None = None) -> IterationResult:
        """Run one iteration (see the module docstring), after :meth:`recover`.

        ``since`` limits the training data to decisions from then on (default: all); ``ope_since`` the
        champion's logged decisions the off-policy check reads (default: ``since``).
        """
        repaired = self.recover()
        compile_rewards(self.store, self.spec, policy=self.policy, incremental=True)
        result = self._step(since, ope_since)
        if repaired:
            result.details["recovered"] = repaired
        return result

    def _step(self, since: datetime | None, ope_since: datetime | None) -> IterationResult:
        running = self.experiments.running_for(self.policy)
        if running is not None:
            step = self.experiments.advance(running, actor=self.actor)
            challenger = running.variants.get("challenger")
            if step.action == "rolled_back" and challenger is not None:
                self._policies.pop(challenger, None)
            result = IterationResult(
                step.action, step.summary(), challenger, details={"verdict": step.verdict.to_dict()}
            )
            if not self.candidates:
                return result
            # No round idle: a challenger right after the canary ended, or one that may replace it.
            nxt = self._challenge(since, ope_since)
            nxt.summary = f"{result.summary}; then {nxt.summary}"
            nxt.details |= {"experiment": result.action, "verdict": result.details["verdict"]}
            return nxt
        if self.champion_version() is None:
            return self._bootstrap()
        return self._challenge(since, ope_since)

    def _offered(
        self, since: datetime | None, logged: DecisionBatch
    ) -> Iterator[tuple[ClassifierPolicy, str, list[Candidate]]]:
        """The challengers to gate, in order: the candidates best ranked first (the next when the
        gate stops one), or the one configured learner's."""
        if self.candidates:
            yield from challengers_on_evidence(self, since, logged)
        else:
            policy, version, _ = self.train_challenger(since=since)
            yield policy, version, []

    def _challenge(self, since: datetime | None, ope_since: datetime | None) -> IterationResult:
        """Train a challenger (on evidence, or the one configured learner), gate it, start its canary."""
        logged = self.champion_logs(ope_since or since)
        stopped: list[str] = []
        for policy, version, candidates in self._offered(since, logged):
            report = self.gate_report(policy, logged)
            details: dict[str, Any] = {"candidates": [c.to_dict() for c in candidates]} if candidates else {}
            if report.passed:
                break
            stopped.append(f"{version} stopped at the gate ({', '.join(c.name for c in report.failed)})")
        else:
            return IterationResult("gated", "; ".join(stopped), version, report, details)
        before = "".join(f"{why}; " for why in stopped)
        if stopped:
            details["stopped"] = stopped
        exp, why = self.start_canary(version, report, self.offline_evidence(policy, logged))
        if exp is None:  # a running canary's evidence is not beaten: it keeps running
            return IterationResult(
                "kept", f"{before}{version} passed the gate; {why}", version, report, details
            )
        return IterationResult(
            "canary", f"{before}{version} passed the gate; canary started", version, report, details
        )

    def offline_evidence(self, candidate: ClassifierPolicy, logged: DecisionBatch) -> OfflineEvidence:
        """Golden accuracy of ``candidate`` and the champion, and the candidate's DR value on the
        champion's traffic vs the champion's logged value: what the canary's promotion reads."""
        champion = self.champion_version()
        champ = self.evaluate(self.load(champion), "champion").accuracy if champion else math.nan
        ope = self.ope(candidate, logged)
        return OfflineEvidence(
            self.evaluate(candidate, "candidate").accuracy,
            champ,
            ope.candidate.value if ope is not None else None,
            ope.champion_value if ope is not None else None,
        )

    def _bootstrap(self) -> IterationResult:
        """No champion yet: train the first version (or take the one an interrupted run registered)."""
        return bootstrap(
            self.registry, self.policy, self.actor, lambda: self.train_challenger(note="first version")[1]
        )
