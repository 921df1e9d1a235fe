"""``rewardloop loop run`` for a reranker: retrain its reward model, gate it on held-out pairs, canary.

One iteration (:meth:`RerankerLoopRunner.iterate`), after the shared repair of a killed one
(:func:`rewardloop.loop.steps.recover`):

1. compile rewards from the feedback that came in (the ratings);
2. a running experiment is advanced (ramp, promote or roll back) and the iteration stops there;
3. otherwise the reward model (MiniLM embeddings + logistic regression,
   :class:`~rewardloop.rewards.EmbeddingRewardModel`) is trained on every rated answer so far — the
   chosen candidate of each reranker decision with a compiled reward — through
   :func:`rewardloop.loop.training.fit_and_record`, and registered as a reranker;
4. no champion yet: that first version is activated (trained on the ratings present); otherwise it
   is gated on the held-out pairs — the raters' ``preference`` feedback between two candidates,
   which the reward model (trained on ratings) never sees — against the champion: its pairwise
   accuracy minus the champion's must be at least ``min_pairwise_accuracy_vs_champion``
   (``policies[].options``, default 0), and a canary starts when it passes. A gate with no held-out
   pair fails and says so: it never passes by omission.

``policies[].options`` of a reranker: ``threshold`` (a reward above it is a good answer, default
0.5), ``min_samples`` (refuse to train on fewer ratings, default 10),
``min_pairwise_accuracy_vs_champion``, and the serving exploration (``explore``, ``temperature``,
``epsilon``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rewardloop.evaluation.gate import GateCheck, GateReport
from rewardloop.loop.steps import IterationResult, KindLoop, LoopError
from rewardloop.policies.contract import EXPLORATION_OPTIONS
from rewardloop.policies.reranker import Reranker
from rewardloop.rewards import EmbeddingRewardModel, PreferencePair, RewardError
from rewardloop.rewards.logged_data import preference_pairs_from_batch, rated_from_batch
from rewardloop.store import read_decisions
from rewardloop.types import DecisionBatch

#: The ``policies[].options`` keys a reranker reads (besides its serving exploration).
RERANKER_OPTIONS = ("threshold", "min_samples", "min_pairwise_accuracy_vs_champion")


def pairwise_accuracy(model: Any, pairs: Sequence[PreferencePair]) -> float:
    """Share of ``pairs`` (weighted) whose chosen answer ``model`` scores above the rejected one."""
    if not pairs:
        return float("nan")
    hits = np.array([float(np.diff(model.score(p.prompt, [p.rejected, p.chosen]))[0] > 0) for p in pairs])
    weights = np.array([p.weight for p in pairs], dtype=np.float64)
    return float(np.average(hits, weights=weights))


@dataclass(kw_only=True)
class RerankerLoopRunner(KindLoop):
    """The loop's steps over one reranker policy in a store (see the module docstring)."""

    options: Mapping[str, Any] = field(default_factory=dict)
    encoder: Any = None

    def __post_init__(self) -> None:
        known = (*RERANKER_OPTIONS, *EXPLORATION_OPTIONS)
        unknown = sorted(set(self.options) - set(known))
        if unknown:
            raise LoopError(f"options.{unknown[0]}: not a reranker option (known: {', '.join(known)})")

    def _option(self, key: str, default: float) -> float:
        value = self.options.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise LoopError(f"options.{key}: must be a number, got {value!r}")
        return float(value)

    def held_out(self) -> tuple[list[PreferencePair], set[str]]:
        """The raters' preference feedback between two candidates (what the gate scores on) and the
        decisions it is on (left out of training, whatever reward they compile to)."""
        batch = read_decisions(
            self.store, policy=self.policy, kind="reranker", with_feedback=True, include_feedback=True
        )
        ids = {d for d, fb in batch.feedback.items() if any(f.kind == "preference" for f in fb)}
        return preference_pairs_from_batch(batch), ids

    def train(self, pairs: Sequence[PreferencePair], held: set[str], note: str = "") -> tuple[Reranker, str]:
        """Fit the reward model on every rating so far (the held-out decisions left out); record,
        save and register it as a reranker."""
        batch = read_decisions(self.store, policy=self.policy, kind="reranker", reward_spec=self.spec.key)
        kept = [d for d in batch.decisions if d.id not in held]
        data = rated_from_batch(
            DecisionBatch(kept, {}, {d.id: batch.rewards[d.id] for d in kept if d.id in batch.rewards})
        )
        model = EmbeddingRewardModel(
            threshold=self._option("threshold", 0.5),
            min_samples=int(self._option("min_samples", 10)),
            test_size=0.0,
            random_state=self.seed,
            encoder=self.encoder,
        )

        def fit() -> tuple[Reranker, list[dict[str, float]]]:
            try:
                model.fit(data)
            except RewardError as err:
                raise LoopError(f"{self.policy}: {err}") from None
            return Reranker(model), list(model.history_)

        def evaluate(fitted: Reranker) -> dict[str, float]:
            if not pairs:
                return {"heldout/pairs": 0.0}
            return {
                "heldout/pairwise_accuracy": pairwise_accuracy(fitted, pairs),
                "heldout/pairs": len(pairs),
            }

        return self.train_and_register(
            "reranker",
            f"reranker.{model.name}",
            fit,
            n_samples=len(data),
            note=note,
            config={"threshold": model.threshold},
            skipped=data.skipped,
            evaluate=evaluate,
        )

    def gate_report(
        self, candidate: Reranker, version: str, champion: str, pairs: Sequence[PreferencePair]
    ) -> GateReport:
        """``pairwise_accuracy_vs_champion``: the candidate's held-out pairwise accuracy − the champion's."""
        threshold = self._option("min_pairwise_accuracy_vs_champion", 0.0)
        if not pairs:
            check = GateCheck(
                "pairwise_accuracy_vs_champion", None, threshold, False, ">=", "no held-out pairs"
            )
            return GateReport(version, champion, [check])
        ours = pairwise_accuracy(candidate, pairs)
        path = self.registry.artifact_path(f"{self.policy}@{champion}")
        theirs = pairwise_accuracy(Reranker(EmbeddingRewardModel.load(path, encoder=self.encoder)), pairs)
        detail = f"{ours:.4f} vs champion {theirs:.4f} on {len(pairs)} held-out pairs"
        check = GateCheck(
            "pairwise_accuracy_vs_champion",
            ours - theirs,
            threshold,
            ours - theirs >= threshold,
            ">=",
            detail,
        )
        return GateReport(version, champion, [check])

    def first_version(self) -> str:
        """The reward model trained on the ratings present, recorded and registered."""
        return self.train(*self.held_out(), note="first version")[1]

    def challenge(self, champion: str) -> IterationResult:
        """Retrain the reward model, gate it on the held-out pairs against ``champion``, canary it."""
        pairs, held = self.held_out()
        candidate, version = self.train(pairs, held)
        report = self.gate_report(candidate, version, champion, pairs)
        return self.decided(version, report)


__all__ = ["RERANKER_OPTIONS", "RerankerLoopRunner", "pairwise_accuracy"]
