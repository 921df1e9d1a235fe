"""Several estimators on the same logs at once, with diagnostics; the tabular reward model."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypedDict, Unpack

import numpy as np

from rewardloop.evaluation.ope._common import FloatArray, OPEInputError
from rewardloop.evaluation.ope.bootstrap import (
    PolicyValueInterval,
    Resampler,
    bootstrap_means,
    check_alpha,
    percentile_interval,
)
from rewardloop.evaluation.ope.diagnostics import OPEDiagnostics, ope_diagnostics
from rewardloop.evaluation.ope.estimators import (
    BaseOffPolicyEstimator,
    DirectMethod,
    DoublyRobust,
    InverseProbabilityWeighting,
    SelfNormalizedInverseProbabilityWeighting,
)
from rewardloop.evaluation.ope.inputs import BanditFeedback, BanditLogs, as_1d, check_bandit_feedback


@dataclass(frozen=True)
class OPEReport:
    """Several estimators' values and intervals on the same logs, with the diagnostics."""

    estimates: dict[str, PolicyValueInterval]
    diagnostics: OPEDiagnostics

    def value(self, estimator: str) -> PolicyValueInterval:
        try:
            return self.estimates[estimator]
        except KeyError:
            raise KeyError(f"no estimate named {estimator!r} (have: {', '.join(self.estimates)})") from None

    def to_dict(self) -> dict[str, Any]:
        return {
            "estimates": {k: v.to_dict() for k, v in self.estimates.items()},
            "diagnostics": self.diagnostics.to_dict(),
        }


def default_estimators(with_reward_model: bool) -> list[BaseOffPolicyEstimator]:
    """IPW and SNIPW; plus DM and DR when a reward model is given."""
    ests: list[BaseOffPolicyEstimator] = [
        InverseProbabilityWeighting(),
        SelfNormalizedInverseProbabilityWeighting(),
    ]
    if with_reward_model:
        ests += [DirectMethod(), DoublyRobust()]
    return ests


#: The bootstrap seed :func:`evaluate_off_policy` (and a caller's reward model beside it) uses by default.
DEFAULT_RANDOM_STATE = 0


class OPEOptions(TypedDict, total=False):
    """How :func:`evaluate_off_policy` estimates: its keywords, which a caller that scores a candidate on
    logs (``evaluation.offline``) passes through unchanged; a key left out takes its default there."""

    estimators: Sequence[BaseOffPolicyEstimator] | None
    alpha: float
    n_bootstrap_samples: int
    random_state: int | None
    resample: Resampler


def evaluate_off_policy(
    *,
    behavior_action_dist: Any = None,
    estimators: Sequence[BaseOffPolicyEstimator] | None = None,
    alpha: float = 0.05,
    n_bootstrap_samples: int = 1000,
    random_state: int | None = DEFAULT_RANDOM_STATE,
    resample: Resampler = bootstrap_means,
    **inputs: Unpack[BanditLogs],
) -> OPEReport:
    """Run several estimators (default: IPW, SNIPW, DM, DR) with bootstrap intervals, plus diagnostics.

    ``resample`` draws the bootstrap replicate means (default :func:`bootstrap_means` in this process;
    a compute backend's ``bootstrap_means`` runs partitions of it on Ray).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> action = rng.integers(0, 2, 200); reward = (action == 0).astype(float)
    >>> report = evaluate_off_policy(reward=reward, action=action, pscore=np.full(200, 0.5),
    ...                              action_dist=np.tile([1.0, 0.0], (200, 1)), n_bootstrap_samples=200)
    >>> round(report.value("snipw").value, 6)
    1.0
    """
    check_alpha(alpha)
    bf, ests = _validated(estimators, inputs)
    terms = np.stack([_terms(est, bf) for est in ests]) if ests else np.empty((0, bf.n_rounds))
    # (n_estimators, n_rounds). One set of resampling draws for every estimator: each estimator's own
    # estimate_interval with this random_state draws exactly these, so the intervals are the same.
    means = resample(terms, n_bootstrap_samples, random_state) if ests else terms  # (n_est, B)
    estimates = {}
    for est, row, replicates in zip(ests, terms, means, strict=True):
        mean, lower, upper = percentile_interval(replicates, alpha)
        estimates[est.name] = PolicyValueInterval(
            est.name, float(row.mean()), mean, lower, upper, alpha, n_bootstrap_samples
        )
    diag = ope_diagnostics(
        action=bf.action,
        pscore=bf.pscore,
        action_dist=bf.action_dist,
        position=bf.position,
        behavior_action_dist=behavior_action_dist,
    )
    return OPEReport(estimates, diag)


def estimate_policy_values(
    *, estimators: Sequence[BaseOffPolicyEstimator] | None = None, **logs: Unpack[BanditLogs]
) -> dict[str, float]:
    """Point estimates of several estimators, validating the inputs once (no bootstrap).

    The fast path for sweeps: the per-estimator terms share one validated :class:`BanditFeedback`.
    """
    bf, ests = _validated(estimators, logs)
    return {est.name: float(_terms(est, bf).mean()) for est in ests}


def _validated(
    estimators: Sequence[BaseOffPolicyEstimator] | None, logs: BanditLogs
) -> tuple[BanditFeedback, list[BaseOffPolicyEstimator]]:
    """The logs validated once and the estimators to run on them (the defaults for the logs when None)."""
    bf = check_bandit_feedback(**logs)  # fail before any work
    if estimators is not None:
        return bf, list(estimators)
    return bf, default_estimators(bf.estimated_rewards_by_reg_model is not None)


def _terms(est: BaseOffPolicyEstimator, bf: BanditFeedback) -> FloatArray:
    """``est``'s per-round terms (n_rounds,) on already validated inputs."""
    if est.needs_reward_model and bf.estimated_rewards_by_reg_model is None:
        raise OPEInputError(f"estimated_rewards_by_reg_model: required by {est.name}")
    return est._round_rewards(bf)


def tabular_reward_model(
    *,
    reward: Any,
    action: Any,
    n_actions: int,
    position: Any = None,
    len_list: int = 1,
    prior_strength: float = 10.0,
    n_folds: int = 2,
    random_state: int | None = 0,
) -> FloatArray:
    """A cross-fitted reward model ``q̂(a, k)``: per-(action, slot) mean reward, shrunk to the slot mean.

    ``q̂(a, k) = (Σ r + m · r̄_k) / (count + m)`` with ``m = prior_strength``, fit on the other folds of
    each round (cross-fitting, as DR's theory asks, so a round's own reward never predicts itself).
    Context-free: right for the Open Bandit Dataset's context-free policies and as a baseline elsewhere.

    Returns
    -------
    ndarray of shape (n_rounds, n_actions, len_list)
    """
    r = as_1d("reward", reward, np.float64, None)
    n = r.shape[0]
    a = as_1d("action", action, np.int64, n)
    k = np.zeros(n, dtype=np.int64) if position is None else as_1d("position", position, np.int64, n)
    if n_folds < 2:
        raise OPEInputError(f"n_folds: must be >= 2 for cross-fitting, got {n_folds}")
    fold = np.random.default_rng(random_state).permutation(n) % n_folds
    out = np.empty((n, n_actions, len_list), dtype=np.float64)
    for f in range(n_folds):
        train = fold != f
        sums = np.zeros((n_actions, len_list))
        counts = np.zeros((n_actions, len_list))
        np.add.at(sums, (a[train], k[train]), r[train])
        np.add.at(counts, (a[train], k[train]), 1.0)
        slot_mean = sums.sum(axis=0) / np.maximum(counts.sum(axis=0), 1.0)  # (L,)
        denom = counts + prior_strength
        q = np.where(denom > 0, (sums + prior_strength * slot_mean) / np.maximum(denom, 1e-300), slot_mean)
        out[fold == f] = q
    return out
