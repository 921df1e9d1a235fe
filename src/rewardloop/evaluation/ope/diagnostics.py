"""Can the logs support an estimate at all: effective sample size, support, deterministic logging."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from rewardloop.evaluation.ope._common import DETERMINISTIC_PSCORE, OPEInputError
from rewardloop.evaluation.ope.inputs import BanditFeedback, check_bandit_feedback


@dataclass(frozen=True)
class OPEDiagnostics:
    """Can these logs support an off-policy estimate of this policy?

    Attributes
    ----------
    ess : float
        Effective sample size of the importance weights, ``(Σ w)² / Σ w²`` (Kong 1992); compare with
        ``n_rounds``.
    deterministic_share : float
        Share of logged rounds with propensity 1: no exploration, nothing to learn about other actions.
    unsupported_mass : float or None
        Mean probability the evaluation policy puts on actions the logging policy could not take (needs
        ``behavior_action_dist``); None when unknown.
    unlogged_actions : list of int
        Actions the evaluation policy chooses (mass > 0) that never appear in the logs.
    warnings : list of str
        Plain-language warnings; empty when nothing looks wrong.

    Examples
    --------
    >>> d = ope_diagnostics(action=[0, 0, 0, 0], pscore=[1.0] * 4, action_dist=[[0.5, 0.5]] * 4)
    >>> d.deterministic_share, d.unlogged_actions
    (1.0, [1])
    """

    n_rounds: int
    ess: float
    ess_ratio: float
    mean_weight: float
    max_weight: float
    deterministic_share: float
    unsupported_mass: float | None
    unlogged_actions: list[int] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def effective_sample_size(weights: npt.ArrayLike) -> float:
    """``(Σ w)² / Σ w²``: how many equally weighted rounds the weighted sample is worth."""
    w = np.asarray(weights, dtype=np.float64)
    sq = float(np.sum(w * w))
    return float(np.sum(w)) ** 2 / sq if sq > 0 else 0.0


def _unsupported_mass(bf: BanditFeedback, behavior_action_dist: Any) -> float | None:
    """Mean probability the evaluation policy puts where the logging policy's is 0 (None: unknown)."""
    if behavior_action_dist is None:
        return None
    pi_b = np.asarray(behavior_action_dist, dtype=np.float64)
    if pi_b.ndim == 2:
        pi_b = pi_b[:, :, None]
    if pi_b.shape != bf.action_dist.shape:
        raise OPEInputError(
            f"behavior_action_dist: shape {np.shape(behavior_action_dist)} differs from action_dist's"
        )
    pi_b_k = bf._at_position(pi_b)  # (n, K)
    return float(np.mean(np.sum(bf.pi_e_at_position * (pi_b_k <= 0), axis=1)))


def _threshold_warnings(
    n: int,
    ess: float,
    det: float,
    mean_w: float,
    min_ess_ratio: float,
    max_deterministic_share: float,
    weight_mean_tol: float,
    pscore_rtol: float | None,
) -> list[str]:
    """The warnings of :func:`ope_diagnostics` that compare a figure with its threshold."""
    warnings: list[str] = []
    if det > max_deterministic_share:
        warnings.append(
            f"no exploration: {det:.1%} of the logs have propensity 1; off-policy estimates only "
            "cover where the candidate agrees with the logging policy"
        )
    if ess < min_ess_ratio * n:
        warnings.append(
            f"low effective sample size: {ess:.1f} of {n} rounds ({ess / n:.2%}); intervals will be wide"
        )
    if pscore_rtol is not None:
        if not 0 <= pscore_rtol < 1:
            raise OPEInputError(f"pscore_rtol: must be in [0, 1), got {pscore_rtol}")
        warnings.append(
            f"estimated propensities: each within {pscore_rtol:.1g} relative, so the importance weights "
            f"(and IPW/DR estimates) carry up to ±{pscore_rtol:.1g} relative error from them"
        )
    if abs(mean_w - 1.0) > weight_mean_tol:
        warnings.append(
            f"mean importance weight is {mean_w:.3f}, expected ≈ 1: propensities may be wrong or the "
            "candidate's actions poorly covered"
        )
    return warnings


def ope_diagnostics(
    *,
    action: Any,
    pscore: Any,
    action_dist: Any,
    position: Any = None,
    behavior_action_dist: Any = None,
    min_ess_ratio: float = 0.01,
    max_deterministic_share: float = 0.5,
    weight_mean_tol: float = 0.25,
    pscore_rtol: float | None = None,
) -> OPEDiagnostics:
    """Effective sample size, propensity-1 share and support/overlap warnings.

    Parameters
    ----------
    behavior_action_dist : array of shape like ``action_dist``, optional
        The logging policy's full distribution (rewardloop logs it on every Decision). With it the
        support check is exact: the evaluation policy's mass on actions the logging policy could not take.
    min_ess_ratio, max_deterministic_share, weight_mean_tol : float
        Warning thresholds: ESS below ``min_ess_ratio · n``; more than ``max_deterministic_share`` of
        the logs with propensity 1; mean weight further than ``weight_mean_tol`` from 1 (its
        expectation under full support and correct propensities).
    pscore_rtol : float, optional
        The logged propensities are numerical estimates, each within this relative error (linear
        Thompson sampling's, :func:`rewardloop.learners.bandits.lin_thompson.win_probabilities`):
        the importance weights, and every estimate but DM, carry up to that relative error, which the
        warnings say; a propensity of 0 is still read as no support (that computation gives an arm
        that can win a positive probability).
    """
    bf = check_bandit_feedback(
        reward=np.zeros(np.shape(pscore)[0] if np.ndim(pscore) else 0),
        action=action,
        pscore=pscore,
        action_dist=action_dist,
        position=position,
    )
    n = bf.n_rounds
    w = bf.importance_weight
    ess = effective_sample_size(w)
    det = float(np.mean(bf.pscore >= DETERMINISTIC_PSCORE))
    warnings: list[str] = []
    pi_e = bf.pi_e_at_position  # (n, K)
    unsupported = _unsupported_mass(bf, behavior_action_dist)
    if unsupported:
        warnings.append(
            f"no support: the candidate puts {unsupported:.1%} of its probability on actions the "
            "logging policy could not take; every estimator but DM is biased there"
        )
    logged = np.zeros(bf.n_actions, dtype=bool)
    logged[np.unique(bf.action)] = True
    chosen = pi_e.sum(axis=0) > 0  # (K,)
    unlogged = [int(a) for a in np.flatnonzero(chosen & ~logged)]
    if unlogged:
        mass = float(pi_e[:, ~logged].sum() / n)
        warnings.append(
            f"overlap: {len(unlogged)} action(s) the candidate chooses never appear in the logs "
            f"({mass:.1%} of its probability), e.g. {unlogged[:5]}"
        )
    mean_w = float(w.mean())
    warnings += _threshold_warnings(
        n, ess, det, mean_w, min_ess_ratio, max_deterministic_share, weight_mean_tol, pscore_rtol
    )
    return OPEDiagnostics(
        n_rounds=n,
        ess=ess,
        ess_ratio=ess / n,
        mean_weight=mean_w,
        max_weight=float(w.max()),
        deterministic_share=det,
        unsupported_mass=unsupported,
        unlogged_actions=unlogged,
        warnings=warnings,
    )
