"""Set rewards: how missed / unnecessary / corrected-set feedback scores a chosen set.

A rater's set feedback on one decision folds, oldest row first, into the set they hold right (``T``),
starting from the chosen set ``S``: ``set_correction`` replaces ``T`` by its labels, ``missed_actions``
adds its labels, ``unnecessary_actions`` removes its labels. So one rater who marks two actions missed
and one unnecessary, in two rows, is one judgement (a rater counts once per decision, as everywhere).
Rows without a rater id stand alone. From ``S`` and ``T``:

=============== =========================================================================== =========
signal          definition                                                                  range
=============== =========================================================================== =========
``set_penalty`` ``− Σ_{a ∈ T∖S} missed_a − Σ_{a ∈ S∖T} unnecessary_a`` (per-action penalties) (−∞, 0]
``set_jaccard`` ``|S ∩ T| / |S ∪ T|`` (1 when both are empty)                                [0, 1]
``set_f1``      ``2 |S ∩ T| / (|S| + |T|)`` (1 when both are empty)                         [0, 1]
=============== =========================================================================== =========

Each is a reward function of its own name and a component of ``weighted`` specs.

The penalties are the spec's ``options``: ``missed_penalty`` (default 0.5), ``unnecessary_penalty``
(default 0.3) and ``action_penalties: {action: {missed: x, unnecessary: y}}`` for single actions (the
email plan: −0.5 per missed, −0.3 per unnecessary).

One more signal is read over a decision's rows jointly: ``classification``, the decision's label judged by
**corrections alone** (1 if the latest correction of a rater names the chosen action, else 0), so that the
plan's "+1 right, −1 wrong" (component ``classification`` = ``2·c − 1``) is not mixed with engagement
(implicit rows also give the generic ``correct`` signal).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from rewardloop.rewards.scores import ChosenLike, FeedbackLike, latest_per_rater

#: The signals this module gives, by the reward function or weighted component that reads them.
SET_SIGNALS = ("set_penalty", "set_jaccard", "set_f1")
#: Weighted components read from :func:`joint_signals` (the ones above and ``classification``).
JOINT_SIGNALS = (*SET_SIGNALS, "classification")
#: The feedback kinds about a set (``rewardloop.types.SET_FEEDBACK_KINDS``).
SET_KINDS = ("missed_actions", "unnecessary_actions", "set_correction")

DEFAULT_MISSED = 0.5
DEFAULT_UNNECESSARY = 0.3


class SetFeedbackLike(FeedbackLike, Protocol):
    @property
    def labels(self) -> tuple[str, ...] | None: ...


class SetDecisionLike(ChosenLike, Protocol):
    @property
    def chosen_set(self) -> tuple[str, ...] | None: ...


@dataclass(frozen=True)
class Penalties:
    """Per-action penalties of missing or wrongly suggesting an action (the spec's ``options``).

    >>> p = Penalties.from_options({"action_penalties": {"pay_invoice": {"missed": 2.0}}})
    >>> p.missed("pay_invoice"), p.missed("archive"), p.unnecessary("pay_invoice")
    (2.0, 0.5, 0.3)
    """

    missed_default: float = DEFAULT_MISSED
    unnecessary_default: float = DEFAULT_UNNECESSARY
    per_action: Mapping[str, Mapping[str, float]] | None = None

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> Penalties:
        per_action = options.get("action_penalties") or {}
        return cls(
            float(options.get("missed_penalty", DEFAULT_MISSED)),
            float(options.get("unnecessary_penalty", DEFAULT_UNNECESSARY)),
            {str(k): dict(v) for k, v in per_action.items()},
        )

    def missed(self, action: str) -> float:
        return float((self.per_action or {}).get(action, {}).get("missed", self.missed_default))

    def unnecessary(self, action: str) -> float:
        return float((self.per_action or {}).get(action, {}).get("unnecessary", self.unnecessary_default))


def jaccard(chosen: Sequence[str], truth: Sequence[str]) -> float:
    """``|S ∩ T| / |S ∪ T|``, 1 when both sets are empty.

    >>> jaccard(["a", "b"], ["b", "c"])
    0.3333333333333333
    """
    s, t = set(chosen), set(truth)
    return 1.0 if not s | t else len(s & t) / len(s | t)


def set_f1(chosen: Sequence[str], truth: Sequence[str]) -> float:
    """``2 |S ∩ T| / (|S| + |T|)``, 1 when both sets are empty.

    >>> set_f1(["a", "b"], ["b", "c"])
    0.5
    """
    s, t = set(chosen), set(truth)
    return 1.0 if not s | t else 2.0 * len(s & t) / (len(s) + len(t))


def set_penalty(chosen: Sequence[str], truth: Sequence[str], penalties: Penalties) -> float:
    """``− Σ_{a ∈ T∖S} missed_a − Σ_{a ∈ S∖T} unnecessary_a``.

    >>> set_penalty(["pay_invoice", "archive"], ["pay_invoice", "remind"], Penalties())
    -0.8
    """
    s, t = set(chosen), set(truth)
    missed = sum(penalties.missed(a) for a in sorted(t - s))
    unnecessary = sum(penalties.unnecessary(a) for a in sorted(s - t))
    return -(missed + unnecessary)


def held_right(chosen: Sequence[str], rows: Sequence[SetFeedbackLike]) -> tuple[str, ...]:
    """The set one rater's set rows (oldest first) hold right, starting from the chosen set."""
    truth = set(chosen)
    for fb in rows:
        labels = set(fb.labels or ())
        if fb.kind == "set_correction":
            truth = labels
        elif fb.kind == "missed_actions":
            truth |= labels
        elif fb.kind == "unnecessary_actions":
            truth -= labels
    return tuple(sorted(truth))


def judgements(
    chosen: Sequence[str], rows: Sequence[SetFeedbackLike]
) -> Iterator[tuple[tuple[str, ...], float, tuple[str, ...]]]:
    """(set held right, authority, feedback ids) per rater, from the set rows among ``rows``."""
    by_rater: dict[str, list[SetFeedbackLike]] = {}
    alone: list[list[SetFeedbackLike]] = []
    for fb in sorted((r for r in rows if r.kind in SET_KINDS), key=lambda r: (r.created_at, r.id)):
        if fb.rater_id is None:
            alone.append([fb])
        else:
            by_rater.setdefault(fb.rater_id, []).append(fb)
    for group in (*by_rater.values(), *alone):
        yield held_right(chosen, group), group[-1].authority, tuple(fb.id for fb in group)


def joint_signals(
    decision: SetDecisionLike, rows: Sequence[FeedbackLike], penalties: Penalties
) -> list[tuple[str, float, float, tuple[str, ...]]]:
    """The signals read over a decision's rows jointly, as (signal, value, authority, feedback ids):
    one ``set_penalty``/``set_jaccard``/``set_f1`` triple per rater of set feedback (when the decision carries
    a set), and ``classification`` per rater's latest correction."""
    out: list[tuple[str, float, float, tuple[str, ...]]] = []
    chosen = decision.chosen_set
    if chosen is not None:
        set_rows: list[SetFeedbackLike] = [r for r in rows if r.kind in SET_KINDS]  # type: ignore[misc]
        for truth, authority, ids in judgements(chosen, set_rows):
            out.append(("set_penalty", set_penalty(chosen, truth, penalties), authority, ids))
            out.append(("set_jaccard", jaccard(chosen, truth), authority, ids))
            out.append(("set_f1", set_f1(chosen, truth), authority, ids))
    corrections = [r for r in rows if r.kind == "correction"]
    for fb in latest_per_rater(corrections):
        out.append(("classification", 1.0 if fb.label == decision.action else 0.0, fb.authority, (fb.id,)))
    return out


__all__ = [
    "JOINT_SIGNALS",
    "SET_KINDS",
    "SET_SIGNALS",
    "Penalties",
    "held_right",
    "jaccard",
    "joint_signals",
    "judgements",
    "set_f1",
    "set_penalty",
]
