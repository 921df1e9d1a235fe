"""``rewardloop loop run`` for a set policy: retrain from the set feedback, score on a golden set of
sets and by per-label OPE, gate, canary.

One iteration (:meth:`SetLoopRunner.iterate`), after the shared repair of a killed one
(:func:`rewardloop.loop.steps.recover`):

1. compile rewards from the feedback that came in;
2. a running experiment is advanced (ramp, promote or roll back) and the iteration stops there;
3. otherwise ``set_supervised`` is trained on the base examples (e.g. a labelled seed set) and every
   logged set decision of the policy with set feedback — ``missed_actions``, ``unnecessary_actions``,
   ``set_correction``, each rater weighted by authority (:func:`~rewardloop.learners.multilabel.
   set_data_from_batch`) — warm-started from the champion; with ``training.learner: set_bandit`` the
   per-label bandit learner then improves it on the logged sets. Recorded as one TrainingRun
   (:func:`rewardloop.loop.training.fit_and_record`), with the golden figures (``golden/micro_f1``,
   ``golden/subset_accuracy``, ``golden/hamming_loss``, ...), and registered as a ``set`` version;
4. no champion yet: that first version is activated; otherwise it is gated against the champion
   (:func:`~rewardloop.evaluation.sets.set_gate`: ``evaluation.gate``'s ``min_accuracy`` as subset
   accuracy, ``max_ece``, ``max_class_drop`` per action, ``min_micro_f1``, ``max_hamming_loss``, and
   ``min_ope_lower_vs_champion`` on the per-label doubly robust value of the challenger, served as it
   explores, on the champion's logged sets against their logged value), and a canary starts when it
   passes, with its offline evidence (golden micro F1 and the per-label DR value, each against the
   champion's), which lets a non-inferior canary be promoted as a classifier's is.

The per-label OPE values the additive set penalty with the reward spec's penalties (``options.
missed_penalty``, ``unnecessary_penalty``, ``action_penalties``: :class:`~rewardloop.rewards.sets.
Penalties`), whatever the spec's function: it is the reward that splits over labels.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rewardloop.config.sections import GateConfig
from rewardloop.encoders import MiniLMEncoder, default_encoder
from rewardloop.evaluation.evidence import OfflineEvidence
from rewardloop.evaluation.gate import GateReport, OPEComparison
from rewardloop.evaluation.golden import GoldenSet
from rewardloop.evaluation.sets import SetEvaluation, evaluate_set_policy, per_label_logs, set_gate, set_ope
from rewardloop.learners.base import DataSpec, LearnerConfig
from rewardloop.learners.multilabel import SET_LEARNERS, SetData
from rewardloop.loop.serving import exploration_for
from rewardloop.loop.steps import IterationResult, KindLoop, LoopError, next_version
from rewardloop.policies.contract import EXPLORATION_OPTIONS, Exploration, PolicyInputError
from rewardloop.policies.multilabel import MultiLabelPolicy
from rewardloop.rewards.sets import Penalties
from rewardloop.store import read_decisions
from rewardloop.types import DecisionBatch

#: The learner every set challenger starts with; ``set_bandit`` runs after it.
SET_LABEL_LEARNER = "set_supervised"


@dataclass(kw_only=True)
class SetLoopRunner(KindLoop):
    """The loop's steps over one set policy in a store (see the module docstring).

    Parameters
    ----------
    golden : GoldenSet
        A golden set of sets (``labels`` per item) every version is scored on.
    gate : GateConfig
        The thresholds a challenger must pass (``evaluation.gate``).
    labels : sequence of str
        The policy's label space (``policies[].labels``).
    learner : {"set_supervised", "set_bandit"}
        ``training.learner``; ``config`` its resolved config (default: its defaults with the seed).
    options : mapping
        ``policies[].options``: how the policy is served (``explore``, ``epsilon``, ``temperature``),
        which the per-label OPE scores the challenger with.
    base_texts, base_sets
        Labelled examples always trained on besides the store's feedback (e.g. the seed set).
    """

    golden: GoldenSet
    gate: GateConfig
    labels: Sequence[str]
    learner: str = SET_LABEL_LEARNER
    config: LearnerConfig | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    base_texts: Sequence[str] = ()
    base_sets: Sequence[Sequence[str]] = ()
    encoder: MiniLMEncoder | None = None
    n_bootstrap: int = 300
    _loaded: dict[str, MultiLabelPolicy] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        if self.learner not in SET_LEARNERS:
            raise LoopError(
                f"training.learner: {self.learner!r} does not train set policies "
                f"(known: {', '.join(SET_LEARNERS)})"
            )
        if not self.labels:
            raise LoopError(f"policies.labels: name the actions (labels) {self.policy} chooses a set of")
        unknown = sorted(set(self.options) - set(EXPLORATION_OPTIONS))
        if unknown:
            raise LoopError(
                f"options.{unknown[0]}: not a set policy option (known: {', '.join(EXPLORATION_OPTIONS)})"
            )
        try:
            exploration = exploration_for("set", self.options)
        except PolicyInputError as err:
            raise LoopError(str(err)) from None
        assert exploration is not None
        self.exploration: Exploration = exploration
        if len(self.base_texts) != len(self.base_sets):
            raise LoopError(f"base_sets: {len(self.base_sets)} sets for {len(self.base_texts)} texts")
        try:
            self.golden.check_labels(self.labels)
        except ValueError as err:
            raise LoopError(f"evaluation.golden: {err}") from None
        if not self.golden.is_sets:
            raise LoopError(
                f"evaluation.golden: {self.golden.source} expects single labels; a set policy's golden "
                "set gives each item's right set as 'labels'"
            )
        if self.encoder is None:
            self.encoder = default_encoder()

    # ------------------------------------------------------------------------------------ versions

    def load(self, version: str) -> MultiLabelPolicy:
        """The registered ``version`` (checksum verified), served with the configured exploration."""
        if version not in self._loaded:
            path = self.registry.artifact_path(f"{self.policy}@{version}")
            self._loaded[version] = MultiLabelPolicy.load(
                path, encoder=self.encoder, exploration=self.exploration
            )
        return self._loaded[version]

    def evaluate(self, policy: MultiLabelPolicy, name: str) -> SetEvaluation:
        return evaluate_set_policy(policy, self.golden, name)

    # ------------------------------------------------------------------------------------ training

    def logs(self, version: str | None = None) -> DecisionBatch:
        """The policy's (or one version's) logged set decisions with their feedback."""
        return read_decisions(
            self.store, policy=self.policy, version=version, kind="set", include_feedback=True
        )

    def _config(self, name: str) -> LearnerConfig:
        """The configured learner's own config; the other learner's defaults with the seed."""
        if name == self.learner and self.config is not None:
            return self.config
        return SET_LEARNERS[name].config_class.from_dict({"seed": self.seed})

    def data(self, batch: DecisionBatch) -> tuple[SetData, SetData]:
        """(the supervised data: base examples + the store's judged sets, the store's part alone)."""
        spec = DataSpec(config=self._config(SET_LABEL_LEARNER), labels=list(self.labels))
        logged = SET_LEARNERS[SET_LABEL_LEARNER].data_from_batch(batch, spec)
        if not self.base_texts:
            return logged, logged
        base = SetData.from_sets(list(self.base_texts), self.base_sets, list(self.labels))
        return base.concat(logged), logged

    def train(self, start: MultiLabelPolicy | None, note: str = "") -> tuple[MultiLabelPolicy, str]:
        """Fit a version from the store (warm from ``start``), evaluate, record and register it."""
        supervised, logged = self.data(self.logs())
        if not len(supervised):
            raise LoopError(
                f"no set feedback for {self.policy}: send missed_actions, unnecessary_actions or "
                "set_correction feedback on its set decisions (or give base examples)"
            )
        names = [SET_LABEL_LEARNER] + ([self.learner] if self.learner != SET_LABEL_LEARNER else [])
        if start is None:
            start = MultiLabelPolicy(list(self.labels), encoder=self.encoder, name=self.policy)

        version = next_version(self.registry, self.policy)  # the one train_and_register registers

        def fit() -> tuple[MultiLabelPolicy, list[dict[str, float]]]:
            policy, history = start, []
            for stage, name in enumerate(names):
                data = supervised if stage == 0 else logged
                if not len(data):
                    continue
                learner = SET_LEARNERS[name](self._config(name))
                policy = learner.fit(data, policy=policy)
                history += [{**row, "stage": float(stage)} for row in learner.history_]
            policy.exploration = self.exploration
            policy.name, policy.version = self.policy, version
            return policy, history

        def evaluate(policy: MultiLabelPolicy) -> dict[str, float]:
            return {**self.evaluate(policy, "challenger").figures(), "n_logged": float(len(logged))}

        fitted, version = self.train_and_register(
            "set",
            "+".join(names),
            fit,
            n_samples=len(supervised),
            note=note,
            config={
                "learner": {n: dataclasses.asdict(self._config(n)) for n in names},
                "n_base": len(self.base_texts),
            },
            skipped=supervised.skipped,
            evaluate=evaluate,
        )
        self._loaded[version] = fitted
        return fitted, version

    # ---------------------------------------------------------------------------------- evaluation

    def penalties(self) -> Penalties:
        return Penalties.from_options(self.spec.options)

    def ope(self, candidate: MultiLabelPolicy, champion: str) -> OPEComparison | None:
        """Per-label DR of ``candidate`` (as served) on the champion's judged sets vs their logged value;
        the champion's probabilities are DR's reward model."""
        logs = per_label_logs(self.logs(champion), self.labels, self.penalties())
        return set_ope(
            candidate, logs, self.load(champion), n_bootstrap_samples=self.n_bootstrap, random_state=self.seed
        )

    def gate_report(
        self, candidate: MultiLabelPolicy, version: str, champion: str
    ) -> tuple[GateReport, OfflineEvidence]:
        """The set gate's report on ``candidate`` against ``champion``, and the offline evidence its
        canary carries: golden micro F1 (the set policy's accuracy) and the per-label DR value vs the
        champion's logged value."""
        ours, theirs = self.evaluate(candidate, version), self.evaluate(self.load(champion), champion)
        ope = self.ope(candidate, champion)
        report = set_gate(ours, theirs, self.gate, ope)
        offline = OfflineEvidence(
            ours.metrics.micro_f1,
            theirs.metrics.micro_f1,
            ope.candidate.value if ope is not None else None,
            ope.champion_value if ope is not None else None,
        )
        return dataclasses.replace(report, candidate=version, champion=champion), offline

    # ----------------------------------------------------------------------------------- iteration

    def first_version(self) -> str:
        """Trained on the base examples and the set feedback present, recorded and registered."""
        return self.train(None, note="first version")[1]

    def challenge(self, champion: str) -> IterationResult:
        """Retrain from the champion, gate against it, canary it when it passes."""
        candidate, version = self.train(self.load(champion))
        return self.decided(version, *self.gate_report(candidate, version, champion))


__all__ = ["SET_LABEL_LEARNER", "SetLoopRunner"]
