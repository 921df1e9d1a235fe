"""Hyperparameters chosen on held-out logged feedback, never on the golden set.

The logged decisions are split (seeded) into a training and a validation share; each point of a
declared grid is fitted on the training share and scored by the self-normalised IPS estimate of its
value on the validation share (Swaminathan & Joachims 2015b, "The self-normalized estimator for
counterfactual learning"):

    V̂_SN(π) = (Σ_bandit w_i · r_i + Σ_corrected π(c_i|x_i)) / (Σ_bandit w_i + n_corrected),
    w_i = π(a_i|x_i) / μ(a_i|x_i)

— a corrected row is full information (reward 1 for the corrected label, 0 elsewhere), so π's
expected reward on it, π(c_i|x_i), enters with weight 1. The best point is refitted on all the data;
the learner that made the final fit carries the :class:`Selection` as ``selection_`` (for the
TrainingRun). scikit-learn's ``GridSearchCV`` with one validation split and an off-policy score.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from rewardloop.learners.base import BanditData, LearnerConfig
from rewardloop.learners.crm import corrections_of
from rewardloop.policies.classifier import ClassifierPolicy

D = TypeVar("D", bound=BanditData)

#: ``fit(params, data) -> (learner, fitted policy)``: one fit at one grid point.
FitFn = Callable[[dict[str, Any], BanditData], tuple[Any, ClassifierPolicy]]


@dataclass(frozen=True)
class Selection:
    """What a sweep chose and why.

    Attributes
    ----------
    params : dict
        The chosen grid point.
    score : float
        Its V̂_SN on the validation share.
    scores : list of (dict, float)
        Every grid point with its score, in grid order.
    n_train, n_valid : int
        Logged decisions in each share.
    metric : str
    """

    params: dict[str, Any]
    score: float
    scores: list[tuple[dict[str, Any], float]]
    n_train: int
    n_valid: int
    metric: str = "snips"

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready record (for the TrainingRun's config)."""
        return {
            "metric": self.metric,
            "params": self.params,
            "score": self.score,
            "scores": [{"params": p, "score": s} for p, s in self.scores],
            "n_train": self.n_train,
            "n_valid": self.n_valid,
        }


def subset(data: D, rows: np.ndarray) -> D:
    """``data`` restricted to ``rows``: every per-row array field indexed, the rest (labels) kept."""
    n = len(data)
    values = {}
    for f in dataclasses.fields(data):
        value = getattr(data, f.name)
        if isinstance(value, np.ndarray) and value.ndim >= 1 and len(value) == n:
            value = value[rows]
        values[f.name] = value
    return dataclasses.replace(data, **values)


def split_bandit_data(data: D, valid_fraction: float, seed: int) -> tuple[D, D]:
    """A seeded random (train, validation) split of the logged decisions."""
    n = len(data)
    if not 0.0 < valid_fraction < 1.0:
        raise ValueError(f"valid_fraction: must be in (0, 1), got {valid_fraction}")
    n_valid = round(valid_fraction * n)
    if n_valid < 1 or n_valid >= n:
        raise ValueError(
            f"valid_fraction: {valid_fraction} of {n} decisions leaves no training or no validation data"
        )
    perm = np.random.default_rng(seed).permutation(n)
    return subset(data, np.sort(perm[n_valid:])), subset(data, np.sort(perm[:n_valid]))


def snips_value(policy: ClassifierPolicy, data: BanditData) -> float:
    """V̂_SN of ``policy`` on logged ``data`` (corrected rows as full information; see the module)."""
    proba = policy.predict_proba_embeddings(data.X)  # (n, K)
    rows = np.arange(len(data))
    correction = corrections_of(data)
    corrected = correction >= 0
    w = proba[rows, data.action] / data.pscore  # (n,)
    num = float((w * data.reward)[~corrected].sum() + proba[rows, correction][corrected].sum())
    den = float(w[~corrected].sum() + corrected.sum())
    if not den > 0:
        raise ValueError("data: the policy puts no mass on any logged action; V̂_SN is undefined")
    return num / den


def grid_points(grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Every combination of a declared grid, in order (``{"lr": [1, 2], "baseline": [0]}`` → 2 points)."""
    if not grid:
        return [{}]
    for key, values in grid.items():
        if len(values) == 0:
            raise ValueError(f"grid.{key}: no values to try")
    keys = list(grid)
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*(grid[k] for k in keys))]


def sweep(
    fit: FitFn,
    grid: Mapping[str, Sequence[Any]],
    data: BanditData,
    valid_fraction: float = 0.25,
    seed: int = 0,
) -> tuple[Any, ClassifierPolicy, Selection]:
    """Fit every grid point on the training share, score it on the validation share, refit the best on all.

    Returns the learner of the final fit (with ``selection_`` set), its fitted policy, and the selection.
    Ties go to the earlier grid point.
    """
    train, valid = split_bandit_data(data, valid_fraction, seed)
    scores = []
    for params in grid_points(grid):
        _, fitted = fit(params, train)
        scores.append((params, snips_value(fitted, valid)))
    best, best_score = max(scores, key=lambda item: item[1])  # max keeps the first of equal scores
    learner, fitted = fit(best, data)
    selection = Selection(dict(best), best_score, scores, len(train), len(valid))
    learner.selection_ = selection
    return learner, fitted, selection


def select_and_fit(
    learner_cls: Any,
    config: LearnerConfig,
    grid: Mapping[str, Sequence[Any]],
    data: BanditData,
    *,
    policy: ClassifierPolicy,
    valid_fraction: float = 0.25,
    seed: int = 0,
) -> Any:
    """:func:`sweep` for a bandit learner of ``LEARNERS``: its config with each grid point replaced.

    Returns the fitted learner (``policy_``, ``selection_``, ``history_``).

    Examples
    --------
    >>> from rewardloop.learners import CRM, CRMConfig
    >>> learner = select_and_fit(CRM, CRMConfig(epochs=5), {"baseline": [0.0, 0.5]}, data,
    ...                          policy=policy)                                   # doctest: +SKIP
    >>> learner.selection_.params                                                 # doctest: +SKIP
    {'baseline': 0.5}
    """
    for key in grid:
        if key not in {f.name for f in dataclasses.fields(config)}:
            raise ValueError(f"grid.{key}: not a field of {type(config).__name__}")

    def fit(params: dict[str, Any], part: BanditData) -> tuple[Any, ClassifierPolicy]:
        learner = learner_cls(dataclasses.replace(config, **params))
        return learner, learner.fit(part, policy=policy)

    learner, _, _ = sweep(fit, grid, data, valid_fraction, seed)
    return learner


__all__ = [
    "Selection",
    "grid_points",
    "select_and_fit",
    "snips_value",
    "split_bandit_data",
    "subset",
    "sweep",
]
