"""Set-valued decisions: a chosen subset of a label space, drawn label by label.

A decision may carry a set (``Decision.label_space``, ``chosen_set``, ``label_probs``): the policy
includes each label ``j`` independently with probability ``p_j``, so the propensity of the logged set
``S`` is

    π(S | x) = Π_{j ∈ S} p_j · Π_{j ∉ S} (1 − p_j)

(:func:`set_pscore`). A decision of kind ``"set"`` decides only the set; its ``action`` is the set's key
(:func:`set_key`), its ``action_dist`` ``(π(S), 1 − π(S))`` over ``(key, OTHER_SETS)`` and its ``pscore``
``π(S)``, so every reader of ``action``/``pscore`` (stats, OPE, the gate) treats the set as one joint
action. A classifier decision may carry a set beside its label ("category + actions"): then ``pscore``
is the label's propensity and :func:`set_pscore` the set's; the joint propensity is their product.

Feedback on a set names labels (``Feedback.labels``): ``missed_actions`` (labels the set should have
held), ``unnecessary_actions`` (labels it should not have held) and ``set_correction`` (the right set).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rewardloop.types.errors import RecordError
from rewardloop.types.limits import check_texts

if TYPE_CHECKING:
    from rewardloop.types.records import Decision

#: Feedback kinds about a set; each carries ``labels``.
SET_FEEDBACK_KINDS: tuple[str, ...] = ("missed_actions", "unnecessary_actions", "set_correction")
#: The second entry of a set decision's actions: every set other than the logged one.
OTHER_SETS = "<other sets>"


def set_key(chosen: Sequence[str]) -> str:
    """The joint action a set decision logs: its labels (in label-space order) in braces.

    >>> set_key(["area", "name"]), set_key([])
    ('{area,name}', '{}')
    """
    return "{" + ",".join(chosen) + "}"


def set_pscore(label_space: Sequence[str], chosen: Sequence[str], probs: Sequence[float]) -> float:
    """π(S) = Π_{j∈S} p_j · Π_{j∉S} (1 − p_j), floored at the smallest positive double (a large label
    space can underflow the product).

    >>> round(set_pscore(["a", "b", "c"], ["a"], [0.8, 0.3, 0.1]), 6)  # 0.8 · 0.7 · 0.9
    0.504
    """
    inside = set(chosen)
    logp = math.fsum(
        math.log(p if label in inside else 1.0 - p) for label, p in zip(label_space, probs, strict=True)
    )
    return max(math.exp(logp), sys.float_info.min)


def _labels(name: str, values: Any) -> tuple[str, ...]:
    labels = check_texts(name, values)
    if len(set(labels)) != len(labels):
        raise RecordError(name, "must not repeat a label")
    if any(not label.strip() for label in labels):
        raise RecordError(name, "must hold non-empty labels")
    return labels


def _probs(values: Any, n: int) -> tuple[float, ...]:
    try:
        probs = tuple(float(p) for p in values)
    except (TypeError, ValueError):
        raise RecordError("label_probs", "must be a list of numbers") from None
    if len(probs) != n:
        raise RecordError("label_probs", f"has {len(probs)} probabilities for {n} labels in label_space")
    # NaN fails both comparisons, so one pass checks range and finiteness.
    bad = next((p for p in probs if not 0.0 <= p <= 1.0), None)
    if bad is not None:
        raise RecordError("label_probs", f"probabilities must be in [0, 1], got {bad}")
    return probs


def check_action_set(
    label_space: Any, chosen_set: Any, label_probs: Any
) -> tuple[tuple[str, ...], tuple[str, ...], tuple[float, ...]] | None:
    """The three set fields of a decision, checked: (label space, chosen set in label-space order,
    per-label probabilities); None when the decision carries no set. RecordError naming the field."""
    given = [label_space is not None, chosen_set is not None, label_probs is not None]
    if not any(given):
        return None
    if not all(given):
        missing = ("label_space", "chosen_set", "label_probs")[given.index(False)]
        raise RecordError(missing, "a set decision needs label_space, chosen_set and label_probs together")
    space = _labels("label_space", label_space)
    if not space:
        raise RecordError("label_space", "must name at least one label")
    chosen = set(_labels("chosen_set", chosen_set))
    unknown = sorted(chosen - set(space))
    if unknown:
        raise RecordError("chosen_set", f"{unknown[0]!r} is not in the label space ({', '.join(space)})")
    probs = _probs(label_probs, len(space))
    for label, p in zip(space, probs, strict=True):
        if (label in chosen and p == 0.0) or (label not in chosen and p == 1.0):
            how = "chosen with probability 0" if label in chosen else "left out with probability 1"
            raise RecordError("label_probs", f"the logged set has propensity 0: {label!r} was {how}")
    return space, tuple(label for label in space if label in chosen), probs


#: The logged action of a generated answer with no text (an action is never empty);
#: ``metadata.empty_answer`` says so, and :func:`answer_text` gives ``""`` back.
EMPTY_ANSWER = "<empty answer>"


def answer_text(decision: Decision) -> str:
    """The text a generator decision answered: its action, or ``""`` for an empty answer."""
    return "" if decision.metadata.get("empty_answer") else decision.action


def unlisted_action_fields(action: str, pscore: float, others: str) -> dict[str, Any]:
    """``actions``, ``action``, ``action_dist`` and ``pscore`` of a decision in a space too large to
    list (a set, a generated answer): ``action`` and, when its propensity is below 1, ``others``
    holding the rest of the mass, so that ``action_dist`` sums to 1.

    >>> unlisted_action_fields("hi", 0.25, "<other answers>")["action_dist"]
    (0.25, 0.75)
    >>> unlisted_action_fields("hi", 1.0, "<other answers>")["actions"]
    ('hi',)
    """
    one = pscore >= 1.0
    return {
        "actions": (action,) if one else (action, others),
        "action": action,
        "action_dist": (1.0,) if one else (pscore, 1.0 - pscore),
        "pscore": 1.0 if one else pscore,
    }


def set_decision_fields(
    label_space: Sequence[str], chosen: Sequence[str], probs: Sequence[float]
) -> dict[str, Any]:
    """The fields of a ``kind="set"`` decision for a set drawn label by label: ``actions``, ``action``,
    ``action_dist`` and ``pscore`` of the joint action, and the three set fields.

    >>> fields = set_decision_fields(["a", "b"], ["b"], [0.2, 0.9])
    >>> fields["action"], round(fields["pscore"], 6), fields["actions"]
    ('{b}', 0.72, ('{b}', '<other sets>'))
    """
    checked = check_action_set(label_space, chosen, probs)
    assert checked is not None
    space, ordered, p = checked
    pscore = set_pscore(space, ordered, p)
    return {
        **unlisted_action_fields(set_key(ordered), pscore, OTHER_SETS),
        "label_space": space,
        "chosen_set": ordered,
        "label_probs": p,
    }


def check_set_joint(action: str, pscore: float, chosen: Sequence[str], propensity: float) -> None:
    """A ``kind="set"`` decision's joint action is its set: ``action`` the set's key, ``pscore`` π(S)."""
    if action != set_key(chosen):
        raise RecordError("action", f"a set decision's action is its set's key {set_key(chosen)!r}")
    if not math.isclose(pscore, propensity, rel_tol=1e-6, abs_tol=1e-12):
        raise RecordError("pscore", f"{pscore} is not the logged set's propensity {propensity:.9g}")


def check_feedback_labels(kind: str, labels: Any) -> tuple[str, ...] | None:
    """``Feedback.labels`` checked for its kind: required for the set kinds (non-empty for missed and
    unnecessary), refused for the others."""
    if kind not in SET_FEEDBACK_KINDS:
        if labels is not None:
            raise RecordError("labels", f"only {', '.join(SET_FEEDBACK_KINDS)} feedback carries labels")
        return None
    if labels is None:
        raise RecordError("labels", f"is required for {kind} feedback")
    checked = _labels("labels", labels)
    if not checked and kind != "set_correction":
        raise RecordError("labels", f"{kind} feedback must name at least one label")
    return checked


def check_labels_against(
    kind: str, labels: Sequence[str], space: Sequence[str] | None, chosen: Sequence[str]
) -> str | None:
    """Why set feedback cannot be about a stored decision (None: it can): its labels must be in the
    decision's label space, a missed label outside the chosen set, an unnecessary one inside it."""
    if space is None:
        return "the decision carries no set (label_space)"
    unknown = [label for label in labels if label not in space]
    if unknown:
        return f"{unknown[0]!r} is not in the decision's label space ({', '.join(space)})"
    if kind == "missed_actions":
        inside = [label for label in labels if label in chosen]
        if inside:
            return f"{inside[0]!r} was in the chosen set; it cannot have been missed"
    if kind == "unnecessary_actions":
        outside = [label for label in labels if label not in chosen]
        if outside:
            return f"{outside[0]!r} was not in the chosen set; it cannot be unnecessary"
    return None


__all__ = [
    "EMPTY_ANSWER",
    "OTHER_SETS",
    "SET_FEEDBACK_KINDS",
    "answer_text",
    "check_action_set",
    "check_feedback_labels",
    "check_labels_against",
    "check_set_joint",
    "set_decision_fields",
    "set_key",
    "set_pscore",
    "unlisted_action_fields",
]
