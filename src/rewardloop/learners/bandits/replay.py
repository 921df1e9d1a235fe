"""Batch replay: train a router from logged decisions and their compiled rewards, vectorised.

The store's ``read_decisions(..., reward_spec=(name, version))`` gives a
:class:`~rewardloop.types.DecisionBatch`; :func:`logged_rows` turns it into arrays (contexts through
:class:`~rewardloop.policies.router.ContextFeatures`), and :func:`replay` feeds them to the router's
``partial_fit`` in one vectorised step — the same parameters as calling ``learn`` row by row.

Importance weighting. A per-arm reward regression fitted on logs sees each arm only on the contexts the
*logging* policy sent to it. Where that policy differs from the router being trained, each row is
weighted by ``w = (1/K) / pscore`` (clipped at ``max_weight``), the inverse-propensity weight that
re-weights every arm's rows to the context distribution of a uniform policy (Strehl et al. 2010,
"Learning from Logged Implicit Exploration Data", NeurIPS; Bottou et al. 2013, JMLR §4). Rows that the
router itself logged keep weight 1: its own choices are what its online updates saw.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from rewardloop.learners.bandits._base import BanditRouter
from rewardloop.learners.bandits._partition import MapParts
from rewardloop.policies.router import ContextFeatures, FloatArray, RouterInputError
from rewardloop.types import DecisionBatch

Weighting = Literal["auto", "none", "ipw"]


@dataclass(frozen=True)
class LoggedRows:
    """Logged router decisions as arrays, aligned row by row.

    ``X`` has shape (n_rounds, dim) (None for a context-free router); ``arms``, ``rewards``, ``pscore``,
    ``n_actions`` have shape (n_rounds,); ``policies`` and ``categories`` are lists.
    """

    X: FloatArray | None
    arms: list[str]
    rewards: FloatArray
    pscore: FloatArray
    n_actions: FloatArray
    policies: list[str]
    categories: list[str | None]
    skipped_without_reward: int = 0

    def __len__(self) -> int:
        return len(self.arms)


@dataclass(frozen=True)
class ReplayReport:
    """What a replay did: rows learned, rows skipped, arms added, and the weights used."""

    rows: int
    skipped_without_reward: int
    added_arms: list[str] = field(default_factory=list)
    weighted_rows: int = 0
    max_weight_used: float = 1.0
    effective_sample_size: float = 0.0


def logged_rows(
    batch: DecisionBatch, features: ContextFeatures | None, category_key: str = "category"
) -> LoggedRows:
    """Arrays of a batch's decisions that have a compiled reward, oldest first.

    ``features`` builds the contexts (None for a context-free router). A decision whose context cannot
    be built raises :class:`RouterInputError` naming its row in the batch and its id.
    """
    kept = batch.with_rewards()
    skipped = len(batch) - len(kept)
    decisions = list(kept)
    X = None
    if features is not None and decisions:
        try:
            X = features.from_batch(kept)
        except RouterInputError as err:
            row = _row_of(err.field)
            where = f" (decision {decisions[row].id})" if row is not None and row < len(decisions) else ""
            raise RouterInputError(err.field, err.reason + where) from None
    elif features is not None:
        X = np.zeros((0, features.dim))
    cats = [d.metadata.get(category_key) for d in decisions]
    return LoggedRows(
        X=X,
        arms=[d.action for d in decisions],
        rewards=kept.reward_array(),
        pscore=kept.pscore,
        n_actions=np.array([len(d.actions) for d in decisions], dtype=np.float64),
        policies=[d.policy for d in decisions],
        categories=[None if c is None else str(c) for c in cats],
        skipped_without_reward=skipped,
    )


def _row_of(field_name: str) -> int | None:
    if "[" in field_name and field_name.endswith("]"):
        try:
            return int(field_name[field_name.index("[") + 1 : -1])
        except ValueError:
            return None
    return None


def replay_weights(
    rows: LoggedRows, weighting: Weighting = "auto", policy: str | None = None, max_weight: float = 10.0
) -> FloatArray:
    """Per-row weights, shape (n_rounds,): ``(1/K) / pscore`` clipped at ``max_weight``.

    ``weighting="ipw"`` weights every row; ``"auto"`` only rows logged by a policy other than
    ``policy``; ``"none"`` none (all ones).
    """
    n = len(rows)
    if weighting == "none":
        return np.ones(n)
    if weighting not in ("auto", "ipw"):
        raise RouterInputError("weighting", f"must be auto, none or ipw; got {weighting!r}")
    if not max_weight >= 1.0:
        raise RouterInputError("max_weight", f"must be >= 1, got {max_weight}")
    w = np.minimum((1.0 / rows.n_actions) / rows.pscore, max_weight)
    if weighting == "auto":
        own = np.array([p == policy for p in rows.policies], dtype=bool)
        w = np.where(own, 1.0, w)
    return w


def replay(
    router: BanditRouter,
    rows: LoggedRows,
    *,
    weighting: Weighting = "auto",
    policy: str | None = None,
    max_weight: float = 10.0,
    add_unknown_arms: bool = False,
    partitions: int = 1,
    map_parts: MapParts | None = None,
) -> ReplayReport:
    """Learn all ``rows`` into ``router`` at once (its ``partial_fit``); returns what was done.

    Parameters
    ----------
    router : BanditRouter
        Updated in place (call ``router.reset()`` first to train from the priors only).
    rows : LoggedRows
        From :func:`logged_rows`.
    weighting : {"auto", "none", "ipw"}
        See :func:`replay_weights`; ``policy`` is the router's own policy name for ``auto``.
    add_unknown_arms : bool
        Add logged arms the router does not have (at the default prior) instead of refusing them.
    partitions : int, default 1
        Contiguous parts of the rows whose statistics ``map_parts`` computes apart and sums (exact
        for every router here: see :mod:`rewardloop.learners.bandits._partition`).
    map_parts : callable, optional
        Where the parts run (default: in turn; ``ComputeBackend.map_parts``: Ray tasks).

    Raises
    ------
    RouterInputError
        For an unknown arm (unless ``add_unknown_arms``), a reward outside the router's range, or a
        context of the wrong width; the router is unchanged then.
    """
    router._ensure()
    unknown = [a for a in dict.fromkeys(rows.arms) if a not in router.arms_]
    if unknown and not add_unknown_arms:
        raise RouterInputError(
            "arms",
            f"the logs name arm(s) {unknown} the router does not have; pass add_unknown_arms to add them",
        )
    w = replay_weights(rows, weighting, policy, max_weight)
    # With arms to add, work on a copy so that a bad row leaves the router exactly as it was.
    work = copy.deepcopy(router) if unknown else router
    for a in unknown:
        work.add_arm(a)
    work.partial_fit(
        rows.X,
        rows.arms,
        rows.rewards,
        sample_weight=w,
        categories=rows.categories,
        partitions=partitions,
        map_parts=map_parts,
    )
    if work is not router:
        router.__dict__.update(work.__dict__)
    weighted = int(np.count_nonzero(w != 1.0))
    ess = float(w.sum() ** 2 / (w * w).sum()) if len(w) else 0.0
    return ReplayReport(
        rows=len(rows),
        skipped_without_reward=rows.skipped_without_reward,
        added_arms=unknown,
        weighted_rows=weighted,
        max_weight_used=float(w.max()) if len(w) else 1.0,
        effective_sample_size=ess,
    )


def fit_logged(
    router: BanditRouter,
    rows: LoggedRows,
    *,
    policy: BanditRouter | None = None,
    weighting: Weighting = "auto",
    own_policy: str | None = None,
    max_weight: float = 10.0,
    add_unknown_arms: bool | None = None,
    partitions: int = 1,
    map_parts: MapParts | None = None,
) -> BanditRouter:
    """``router.fit(rows)``: replay ``rows`` from ``policy``'s state (a copy) or from the priors.

    ``add_unknown_arms`` defaults to True from the priors (the logs name the arms) and False when
    continuing from ``policy``. ``router.history_`` gets one row (``train/rows``, ``train/ess``...);
    ``router.replay_report_`` the :class:`ReplayReport`. ``partitions`` and ``map_parts``: as in
    :func:`replay`.
    """
    if not isinstance(rows, LoggedRows):
        raise RouterInputError(
            "data", f"expected LoggedRows (from data_from_batch), got {type(rows).__name__}"
        )
    if policy is not None:
        router.__dict__.update(copy.deepcopy(policy).__dict__)
    else:
        router.reset()
    report = replay(
        router,
        rows,
        weighting=weighting,
        policy=own_policy,
        max_weight=max_weight,
        add_unknown_arms=(policy is None) if add_unknown_arms is None else add_unknown_arms,
        partitions=partitions,
        map_parts=map_parts,
    )
    router.replay_report_ = report
    router.history_ = [
        {
            "time/step": 1.0,
            "train/rows": float(report.rows),
            "train/skipped_without_reward": float(report.skipped_without_reward),
            "train/weighted_rows": float(report.weighted_rows),
            "train/ess": report.effective_sample_size,
            "train/mean_reward": float(np.mean(rows.rewards)) if len(rows) else float("nan"),
        }
    ]
    return router


def arms_of(batch: DecisionBatch) -> list[str]:
    """Every arm named in a batch's candidate actions, in first-seen order."""
    seen: dict[str, None] = {}
    for d in batch:
        for a in d.actions:
            seen.setdefault(a)
    return list(seen)


__all__: Sequence[str] = [
    "LoggedRows",
    "ReplayReport",
    "arms_of",
    "fit_logged",
    "logged_rows",
    "replay",
    "replay_weights",
]
