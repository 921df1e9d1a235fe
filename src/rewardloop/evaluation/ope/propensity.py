"""Propensity recovery for logs that lack them: fit the behaviour policy, check overlap.

Vowpal Wabbit users ask how to evaluate old logs recorded without probabilities (VW issues 3910, 4319:
"no pre-canned solution"). The standard answer (Strehl, Langford, Li & Kakade 2010, "Learning from
Logged Implicit Exploration Data") is to estimate the logging policy π₀(a | x) from the logs themselves
and use π̂₀ in place of the missing propensities: here a multinomial logistic regression of the
logged action on the logged context,

    π̂₀(a | x) = softmax(W x + b)_a,   fitted by L2-regularised maximum likelihood,

with each estimate clipped below at ``min_pscore`` (an estimated 0 would give an infinite weight).
The estimates are only as good as the overlap: an action the logging policy (almost) never took in a
region of contexts has no data, and IPW on it is unreliable. :class:`PropensityEstimate` carries the
diagnostics that say so (how much estimated mass is tiny, the effective sample size of uniform-target
weights, actions never logged), and every estimated row must be marked as estimated wherever it is
used (an OPE report on estimated propensities is an estimate of an estimate).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from rewardloop.evaluation.ope._common import OPEInputError
from rewardloop.evaluation.ope.diagnostics import effective_sample_size


@dataclass(frozen=True)
class PropensityEstimate:
    """The fitted behaviour policy's probabilities on the logged rounds, and their overlap diagnostics.

    Attributes
    ----------
    action_dist : ndarray of shape (n_rounds, n_actions)
        π̂₀(· | x_i) for every logged round.
    pscore : ndarray of shape (n_rounds,)
        π̂₀(a_i | x_i), the estimated propensity of the logged action (clipped at ``min_pscore``).
    log_loss : float
        Mean negative log-likelihood of the logged actions under π̂₀ (in-sample).
    min_pscore : float
        The smallest estimated propensity of a logged action.
    small_share : float
        Share of rounds where some logged action has an estimated probability below ``small`` (default
        0.05): a target policy choosing it there gets a weight above 20 (weak overlap).
    ess_uniform : float
        Effective sample size of the weights ``(1/K) / p̂`` a uniform target policy would get; compare
        with ``n_rounds``.
    unlogged_actions : list of int
        Actions that never appear in the logs: nothing can be said about them.
    warnings : list of str
        Plain-language warnings; empty when the overlap looks adequate.
    """

    action_dist: npt.NDArray[np.float64]
    pscore: npt.NDArray[np.float64]
    log_loss: float
    min_pscore: float
    small_share: float
    ess_uniform: float
    unlogged_actions: list[int] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def diagnostics(self) -> dict[str, Any]:
        """Everything but the arrays, JSON-ready (for a report)."""
        out = asdict(self)
        del out["action_dist"], out["pscore"]
        return out


def estimate_propensities(
    X: npt.ArrayLike,
    action: npt.ArrayLike,
    n_actions: int,
    *,
    C: float = 1.0,
    min_pscore: float = 1e-3,
    small: float = 0.05,
    random_state: int = 0,
) -> PropensityEstimate:
    """Fit π̂₀(a | x) by multinomial logistic regression on ``(X, action)``; its probabilities and
    overlap diagnostics.

    Parameters
    ----------
    X : array of shape (n_rounds, n_features)
        The logged contexts.
    action : array of shape (n_rounds,)
        The logged actions, integers in ``[0, n_actions)``.
    n_actions : int
    C : float
        Inverse L2 strength of scikit-learn's ``LogisticRegression``.
    min_pscore : float
        Floor of an estimated propensity (a weight is at most ``1 / min_pscore``).
    small : float
        Probabilities below this count in ``small_share``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(400, 2))
    >>> a = (X[:, 0] + 0.3 * rng.normal(size=400) > 0).astype(int)
    >>> est = estimate_propensities(X, a, 3)
    >>> est.action_dist.shape, est.unlogged_actions
    ((400, 3), [2])
    """
    from sklearn.linear_model import LogisticRegression

    X = np.asarray(X, dtype=np.float64)
    a = np.asarray(action)
    if X.ndim != 2 or a.shape != (X.shape[0],):
        raise OPEInputError(
            f"X: expected shape (n_rounds, n_features) with action (n_rounds,), got {X.shape}, {a.shape}"
        )
    if not np.issubdtype(a.dtype, np.integer) or a.min(initial=0) < 0 or a.max(initial=0) >= n_actions:
        raise OPEInputError(f"action: must be integers in [0, {n_actions}), got {a[:5].tolist()}...")
    if not 0 < min_pscore < 1 / n_actions:
        raise OPEInputError(f"min_pscore: must be in (0, 1/n_actions), got {min_pscore}")
    logged = np.unique(a)
    dist = np.zeros((len(a), n_actions))  # (n, K); actions never logged keep probability 0
    if len(logged) == 1:
        dist[:, logged[0]] = 1.0
    else:
        model = LogisticRegression(C=C, max_iter=1000, random_state=random_state).fit(X, a)
        dist[:, model.classes_] = model.predict_proba(X)
    pscore = np.maximum(dist[np.arange(len(a)), a], min_pscore)
    ess = effective_sample_size((1.0 / n_actions) / pscore)
    unlogged = sorted(set(range(n_actions)) - set(logged.tolist()))
    est = PropensityEstimate(
        action_dist=dist,
        pscore=pscore,
        log_loss=float(-np.mean(np.log(pscore))),
        min_pscore=float(pscore.min()),
        small_share=float(np.mean(dist[:, logged].min(axis=1) < small)),
        ess_uniform=ess,
        unlogged_actions=unlogged,
    )
    est.warnings.extend(_warnings(est, len(a), small))
    return est


def _warnings(est: PropensityEstimate, n: int, small: float) -> list[str]:
    out = []
    if est.unlogged_actions:
        out.append(f"actions {est.unlogged_actions} were never logged: no estimate can cover them")
    if est.small_share > 0.1:
        out.append(
            f"in {est.small_share:.0%} of rounds some logged action has an estimated probability below "
            f"{small}: weak overlap, importance weights will be large and the estimate unstable"
        )
    if est.ess_uniform < 0.1 * n:
        out.append(f"effective sample size {est.ess_uniform:.0f} of {n} rounds: little overlap")
    return out


#: What an imputed row's ``metadata["propensity"]`` says: estimated, and by what.
ESTIMATED = "estimated:multinomial_logistic_regression"


@dataclass(frozen=True)
class ImputedGroup:
    """The rows of one (policy, actions) group whose propensities were estimated, and the fit's
    diagnostics (:meth:`PropensityEstimate.diagnostics`)."""

    policy: str
    actions: tuple[str, ...]
    rows: int
    estimated: int
    diagnostics: dict[str, Any]


def impute_propensities(
    rows: list[dict[str, Any]], *, min_pscore: float = 1e-3, random_state: int = 0
) -> list[ImputedGroup]:
    """Fill in ``action_dist`` and ``pscore`` of the decision rows that have neither, in place.

    The rows (dicts with ``policy``, ``actions``, ``action``, ``features``: a decision file's rows) are
    grouped by policy and action list; in each group with a row to fill, the behaviour policy is fitted
    by :func:`estimate_propensities` on every row of the group (the logged contexts ``features`` and
    actions), and each row without propensities gets π̂₀(· | x), floored at ``min_pscore`` and
    renormalised, its ``pscore`` the chosen action's entry, and ``metadata["propensity"]`` =
    :data:`ESTIMATED` (an OPE on it is an estimate of an estimate; ``rewardloop ope`` says so).

    Raises
    ------
    OPEInputError
        A row to fill has no numeric ``features`` or its action is not among its actions (the message
        names the row, counted from 1), or its group's features differ in length.

    Examples
    --------
    >>> rows = [{"policy": "r", "actions": ["a", "b"], "action": "ab"[i % 2], "features": [i % 2, 1.0]}
    ...         for i in range(40)]
    >>> (g,) = impute_propensities(rows)
    >>> g.estimated, rows[0]["metadata"]["propensity"], round(sum(rows[0]["action_dist"]), 6)
    (40, 'estimated:multinomial_logistic_regression', 1.0)
    """
    groups: dict[tuple[str, tuple[str, ...]], list[int]] = {}
    for i, row in enumerate(rows):
        groups.setdefault((str(row.get("policy")), tuple(row.get("actions") or ())), []).append(i)
    out = []
    for (policy, actions), members in groups.items():
        todo = [i for i in members if rows[i].get("pscore") is None and rows[i].get("action_dist") is None]
        if not todo:
            continue
        X, a = _logged(rows, members, actions)
        est = estimate_propensities(X, a, len(actions), min_pscore=min_pscore, random_state=random_state)
        where = {i: k for k, i in enumerate(members)}
        for i in todo:
            dist = np.maximum(est.action_dist[where[i]], min_pscore)
            dist = dist / dist.sum()
            row = rows[i]
            row["action_dist"] = [float(p) for p in dist]
            row["pscore"] = row["action_dist"][actions.index(row["action"])]
            row["metadata"] = {**(row.get("metadata") or {}), "propensity": ESTIMATED}
        out.append(ImputedGroup(policy, actions, len(members), len(todo), est.diagnostics()))
    return out


def _logged(
    rows: list[dict[str, Any]], members: list[int], actions: tuple[str, ...]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """The group's contexts (n, d) and action indices (n,): every row of the group informs the fit,
    with propensities or without; each is checked (rows count from 1)."""
    X: list[list[float]] = []
    a: list[int] = []
    for i in members:
        row, where = rows[i], f"row {i + 1}"
        features = row.get("features")
        if not isinstance(features, (list, tuple)) or not features:
            raise OPEInputError(f"{where}: features: needed to estimate its propensity, got {features!r}")
        if row.get("action") not in actions:
            raise OPEInputError(f"{where}: action: {row.get('action')!r} is not among its actions")
        if X and len(features) != len(X[0]):
            have = len(X[0])
            raise OPEInputError(f"{where}: features: {len(features)} values, the group's rows have {have}")
        try:
            X.append([float(v) for v in features])
        except (TypeError, ValueError):
            raise OPEInputError(f"{where}: features: must be numbers, got {features!r}") from None
        a.append(actions.index(row["action"]))
    return np.asarray(X, dtype=np.float64), np.asarray(a, dtype=np.int64)


__all__ = ["ESTIMATED", "ImputedGroup", "PropensityEstimate", "estimate_propensities", "impute_propensities"]
