"""Evaluate a candidate policy offline on stored logs: its action distribution on every logged context,
then the off-policy estimators of :mod:`rewardloop.evaluation.ope`.

The logging policy's own value (the mean logged reward) comes along: it is the champion's value the gate
compares the candidate's lower bound with, when the champion is the policy that logged the decisions.
That value is the champion *as deployed* (with its exploration), so the candidate is scored as it will
be deployed too: its distribution is the one its serving exploration produces
(:class:`~rewardloop.policies.contract.Exploration`, e.g. ε-greedy), not its raw softmax — a classifier
served ε-greedy but scored by sampling from its softmax is a different, usually much worse, policy.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Unpack

import numpy as np

from rewardloop.evaluation.metrics import ProbabilisticPolicy
from rewardloop.evaluation.ope import (
    DEFAULT_RANDOM_STATE,
    LoggedFeedback,
    OPEInputError,
    OPEOptions,
    OPEReport,
    evaluate_off_policy,
    logged_feedback_from_decisions,
    tabular_reward_model,
)
from rewardloop.policies.contract import Exploration
from rewardloop.types.batches import DecisionBatch


@dataclass(frozen=True)
class OfflineEvaluation:
    """A candidate's OPE report on stored logs, and the logging policy's on-policy value."""

    report: OPEReport
    logging_policy_value: float
    n_rounds: int
    #: How the candidate was scored: :meth:`Exploration.describe` of its serving exploration.
    served_as: str = "sample (T=1)"
    #: Decisions read whose propensities were estimated, not logged (``metadata["propensity"]``
    #: ``estimated:...``, from ``import decisions --estimate-propensities``): the report then estimates
    #: on estimates.
    estimated_propensities: int = 0

    def to_dict(self) -> dict[str, Any]:
        """The OPE report plus ``champion_value`` (the logging policy's value): what ``gate --ope`` reads."""
        return self.report.to_dict() | {
            "champion_value": self.logging_policy_value,
            "n_rounds": self.n_rounds,
            "candidate_served_as": self.served_as,
            "estimated_propensities": self.estimated_propensities,
        }


def serving_exploration(policy: object, exploration: Exploration | None = None) -> Exploration:
    """How ``policy`` will be served: ``exploration`` if given, else the policy's own ``exploration``
    (a :class:`~rewardloop.policies.classifier.ClassifierPolicy` carries it; ``load_policy`` sets it from
    ``policies[].options``), else its probabilities as given (a model that runs outside rewardloop)."""
    if exploration is not None:
        return exploration
    own = getattr(policy, "exploration", None)
    return own if isinstance(own, Exploration) else Exploration("sample")


def candidate_action_dist(
    policy: ProbabilisticPolicy,
    batch: DecisionBatch,
    logged: LoggedFeedback,
    exploration: Exploration | None = None,
) -> np.ndarray:
    """The candidate's served distribution over the logged ``actions`` on each logged text, shape (n, K).

    Its probabilities over its own labels are turned into the distribution it is served with
    (:func:`serving_exploration`), then restricted to the logged actions. The candidate's labels must
    include every logged action; probability on labels that were not candidates when the decision was
    logged is dropped and the rest renormalised (those actions could not have been logged, so no
    estimator could credit them).
    """
    by_id = {d.id: d for d in batch.decisions}
    texts = []
    for i in logged.decision_ids:
        text = by_id[i].text
        if text is None:
            raise OPEInputError(f"decisions: {i} has no text for the candidate to read")
        texts.append(text)
    labels = list(policy.labels)
    missing = [a for a in logged.actions if a not in labels]
    if missing:
        raise OPEInputError(f"candidate: its labels lack the logged action(s) {missing[:5]}")
    cols = [labels.index(a) for a in logged.actions]
    proba = np.asarray(policy.predict_proba(texts), dtype=np.float64)  # (n, n_labels)
    if proba.shape != (len(texts), len(labels)):
        raise OPEInputError(f"candidate: predict_proba returned shape {proba.shape} for {len(texts)} texts")
    served = serving_exploration(policy, exploration).action_dist(proba)  # (n, n_labels)
    dist = served[:, cols]  # (n, K)
    mass = dist.sum(axis=1, keepdims=True)
    if np.any(mass <= 0):
        t = int(np.flatnonzero(mass[:, 0] <= 0)[0])
        raise OPEInputError(
            f"candidate: no probability on any logged action for decision {logged.decision_ids[t]}"
        )
    return np.asarray(dist / mass, dtype=np.float64)


def evaluate_candidate_on_logs(
    policy: ProbabilisticPolicy,
    batch: DecisionBatch,
    *,
    exploration: Exploration | None = None,
    **options: Unpack[OPEOptions],
) -> OfflineEvaluation:
    """IPW, SNIPW, DM and DR (DM/DR with a cross-fitted per-action reward table) of ``policy`` on logs.

    ``batch`` comes from ``read_decisions(store, policy=..., reward_spec=(name, version))``: decisions
    with their compiled rewards; decisions without a reward are left out. The candidate is scored as it
    will be served (``exploration``, default :func:`serving_exploration`), like the champion whose
    logged value it is compared with. ``options`` go to
    :func:`~rewardloop.evaluation.ope.evaluate_off_policy` (estimators, alpha, bootstrap samples, seed,
    resampler).
    """
    logged = logged_feedback_from_decisions(batch)
    served = serving_exploration(policy, exploration)
    action_dist = candidate_action_dist(policy, batch, logged, served)
    result = evaluate_dist_on_logs(logged, action_dist, served.describe(), **options)
    estimated = sum(str(d.metadata.get("propensity", "")).startswith("estimated") for d in batch)
    return dataclasses.replace(result, estimated_propensities=estimated)


def evaluate_dist_on_logs(
    logged: LoggedFeedback,
    action_dist: np.ndarray,
    served_as: str,
    **options: Unpack[OPEOptions],
) -> OfflineEvaluation:
    """The estimators for a candidate's served distribution over the logged actions, shape (n, K), on
    ``logged`` (any policy kind: a router gives its own distribution per logged context).

    The cross-fitted reward model of DM/DR is seeded with the bootstrap's ``random_state``."""
    q_hat = tabular_reward_model(
        reward=logged.reward,
        action=logged.action,
        n_actions=len(logged.actions),
        random_state=options.get("random_state", DEFAULT_RANDOM_STATE),
    )[:, :, 0]
    report = evaluate_off_policy(
        reward=logged.reward,
        action=logged.action,
        pscore=logged.pscore,
        action_dist=action_dist,
        estimated_rewards_by_reg_model=q_hat,
        behavior_action_dist=logged.behavior_action_dist,
        **options,
    )
    return OfflineEvaluation(report, float(logged.reward.mean()), logged.n_rounds, served_as)


__all__ = [
    "OfflineEvaluation",
    "candidate_action_dist",
    "evaluate_candidate_on_logs",
    "evaluate_dist_on_logs",
    "serving_exploration",
]
