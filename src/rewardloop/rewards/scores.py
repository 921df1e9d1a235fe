"""Feedback → [0, 1] scores: the one definition that the compiler, the dashboard and the gating learner read.

Each feedback row gives named signals in [0, 1] about the decision it is attached to
(:func:`feedback_signals`); its ``correct`` signal is the row's *score* (:func:`feedback_score`):

============ ===================================================================================
kind         score
============ ===================================================================================
correction   1 if ``label`` equals the decision's chosen action, else 0
rating       ``(value - low) / (high - low)`` on its declared scale (thumbs ±1 → 0 / 1; 4 on 1–5 → 0.75)
implicit     the value on its scale (acted 1, ignored 0)
preference   1 if ``preferred`` is the chosen action (or this decision's id), 0 if ``rejected`` is;
             none for a preference between two other items
multilevel   the row's ``value`` if given, else :func:`level_rollup` of its scores (each mapped from
             its scale) with the level weights
============ ===================================================================================

A decision's score (:func:`decision_score`) combines its rows: a rater counts once (their latest row),
and raters combine by their authority, ``Σ a_i v_i / Σ a_i`` (:func:`combine`).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from typing import Any, Protocol, TypeVar

#: Every kind of feedback, in the order of the table above.
FEEDBACK_KINDS = ("correction", "rating", "implicit", "preference", "multilevel")


class ChosenLike(Protocol):
    """What a score reads of a decision: its id and the action it took."""

    @property
    def id(self) -> str: ...
    @property
    def action(self) -> str: ...


class FeedbackLike(Protocol):
    """What a score reads of a feedback row (a :class:`~rewardloop.types.Feedback` or a store view).

    ``created_at`` only orders the rows of one decision: any comparable value of one type will do.
    """

    @property
    def id(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def value(self) -> float | None: ...
    @property
    def scale(self) -> tuple[float, float] | None: ...
    @property
    def label(self) -> str | None: ...
    @property
    def preferred(self) -> str | None: ...
    @property
    def rejected(self) -> str | None: ...
    @property
    def scores(self) -> Mapping[str, float] | None: ...
    @property
    def rater_id(self) -> str | None: ...
    @property
    def authority(self) -> float: ...
    @property
    def created_at(self) -> Any: ...


F = TypeVar("F", bound=FeedbackLike)


def unit(value: float, scale: tuple[float, float] | None) -> float:
    """``value`` mapped linearly from ``scale = (low, high)`` (default (0, 1)) onto [0, 1].

    >>> unit(4, (1, 5)), unit(-1, (-1, 1))
    (0.75, 0.0)
    """
    low, high = scale if scale is not None else (0.0, 1.0)
    return (value - low) / (high - low)


def level_rollup(scores: Mapping[str, float], weights: Mapping[str, float] | None = None) -> float | None:
    """Roll named level scores in [0, 1] up into one overall score in [0, 1].

    Keys may be dotted, ``"retrieval.precision"``: sub-scores average within their level (the part
    before the first dot), then the levels combine as a weighted mean with ``weights`` per level
    (default: equal). Levels scored but not weighted are left out, and weighted levels without a score
    too; None when no weighted level has a score.

    >>> level_rollup({"retrieval.precision": 1.0, "retrieval.recall": 0.5, "reasoning": 0.5,
    ...               "synthesis": 0.0}, {"retrieval": 2, "reasoning": 1, "synthesis": 1})
    0.5
    """
    levels: dict[str, list[float]] = {}
    for k, v in scores.items():
        levels.setdefault(k.split(".", 1)[0], []).append(v)
    means = {k: sum(v) / len(v) for k, v in levels.items()}
    w = {k: float(x) for k, x in weights.items() if k in means} if weights else dict.fromkeys(means, 1.0)
    total = sum(w.values())
    if not w or total <= 0:
        return None
    return sum(wk * means[k] for k, wk in w.items()) / total


def feedback_signals(
    decision: ChosenLike | None, fb: FeedbackLike, level_weights: Mapping[str, float] | None = None
) -> dict[str, float]:
    """The named [0, 1] signals one feedback row gives about its decision; ``correct`` is its score.

    A multilevel row also gives one signal per score name and ``multilevel`` (= ``correct``); a rating
    ``rating``, an implicit row ``implicit``, a preference ``preference``. Without a ``decision``,
    corrections and preferences say nothing.

    >>> from rewardloop.types import Feedback
    >>> feedback_signals(None, Feedback(decision_id="d", kind="rating", value=4, scale=(1, 5)))
    {'correct': 0.75, 'rating': 0.75}
    """
    kind = fb.kind
    if kind in ("rating", "implicit"):
        assert fb.value is not None
        v = unit(fb.value, fb.scale)
        return {"correct": v, kind: v}
    if kind == "multilevel":
        assert fb.scores is not None
        out = {k: unit(v, fb.scale) for k, v in fb.scores.items()}
        overall = unit(fb.value, fb.scale) if fb.value is not None else level_rollup(out, level_weights)
        if overall is not None:  # None: none of the weighted levels scored, no overall from this row
            out["multilevel"] = out["correct"] = overall
        return out
    if decision is None:
        return {}
    if kind == "correction":
        return {"correct": 1.0 if fb.label == decision.action else 0.0}
    mine = (decision.action, decision.id)  # preference
    if fb.preferred in mine:
        return {"correct": 1.0, "preference": 1.0}
    if fb.rejected in mine:
        return {"correct": 0.0, "preference": 0.0}
    return {}


def feedback_score(
    decision: ChosenLike | None,
    fb: FeedbackLike,
    level_weights: Mapping[str, float] | None = None,
    kinds: Collection[str] = FEEDBACK_KINDS,
) -> float | None:
    """One row's score in [0, 1] (the table in the module doc), or None when it gives none.

    ``kinds`` limits which kinds of feedback count (a row of another kind gives None).
    """
    if fb.kind not in kinds:
        return None
    return feedback_signals(decision, fb, level_weights).get("correct")


def latest_per_rater(rows: Sequence[F]) -> list[F]:
    """The rows oldest first, each rater's latest row only (rows without a rater id stand alone)."""
    if len(rows) < 2:
        return list(rows)
    ordered = sorted(rows, key=lambda fb: (fb.created_at, fb.id))
    seen: set[str] = set()
    kept: list[F] = []
    for fb in reversed(ordered):
        if fb.rater_id is None or fb.rater_id not in seen:
            kept.append(fb)
            if fb.rater_id is not None:
                seen.add(fb.rater_id)
    return kept[::-1]


def combine(values: Sequence[tuple[float, float]], how: str = "authority_mean") -> tuple[float, float]:
    """(mean, std) of (value, authority) pairs, oldest first: the authority-weighted mean and standard
    deviation ``Σ a_i v_i / Σ a_i`` (default), the plain mean (``"mean"``) or the latest (``"latest"``).

    >>> combine([(1.0, 3.0), (0.0, 1.0)])
    (0.75, 0.4330127018922193)
    """
    if how == "latest":
        return values[-1][0], 0.0
    if how == "mean":
        values = [(v, 1.0) for v, _ in values]
    total = sum(a for _, a in values)
    mean = sum(a * v for v, a in values) / total
    var = sum(a * (v - mean) ** 2 for v, a in values) / total
    return mean, math.sqrt(max(var, 0.0))


def decision_score(
    decision: ChosenLike | None,
    rows: Sequence[FeedbackLike],
    level_weights: Mapping[str, float] | None = None,
    kinds: Collection[str] = FEEDBACK_KINDS,
) -> float | None:
    """A decision's score in [0, 1]: its raters' authority-weighted mean score (a rater counts once,
    with their latest row), or None when no row of ``kinds`` gives a score with authority > 0."""
    pairs = [
        (s, fb.authority)
        for fb in latest_per_rater(rows)
        if (s := feedback_score(decision, fb, level_weights, kinds)) is not None and fb.authority > 0
    ]
    return combine(pairs)[0] if pairs else None


__all__ = [
    "FEEDBACK_KINDS",
    "ChosenLike",
    "FeedbackLike",
    "combine",
    "decision_score",
    "feedback_score",
    "feedback_signals",
    "latest_per_rater",
    "level_rollup",
    "unit",
]
