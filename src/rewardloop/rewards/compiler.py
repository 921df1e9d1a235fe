"""The feedback → reward compiler (pure: records in, rewards out; the store I/O is in ``loop.compile``).

Two steps.

1. **Signals.** Each feedback row becomes named signals in [0, 1] about the decision it is attached to
   (defined once, in :func:`rewardloop.rewards.scores.feedback_signals`):

   ============ ===================================================================================
   kind         signals
   ============ ===================================================================================
   correction   ``correct`` = 1 if ``label`` equals the decision's chosen action, else 0
   rating       ``correct`` = ``rating`` = (value - low) / (high - low) on its declared scale
                (thumbs ±1 → 0 / 1; 4 on 1–5 → 0.75)
   implicit     ``correct`` = ``implicit`` = the value on its scale (acted 1, ignored 0)
   preference   ``correct`` = ``preference`` = 1 if ``preferred`` is the chosen action (or this
                decision's id), 0 if ``rejected`` is; a preference between two other items says
                nothing about this decision and gives no signal
   multilevel   one signal per score name (normalised), and ``multilevel`` = ``correct`` = the row's
                ``value`` if given, else the roll-up of its scores with the spec's level weights
                (levels a rater did not score are left out of that rater's roll-up)
   ============ ===================================================================================

2. **Combine and score.** A rater who gave several rows on one decision counts once (their latest
   row). Per decision and signal, raters combine by the spec's ``combine``: the authority-weighted mean
   ``Σ a_i v_i / Σ a_i`` (default), with the authority-weighted standard deviation kept as
   ``disagreement``; the plain mean; or the latest row. The spec's function then turns the combined
   signals (and the decision's logged confidence and latency) into the reward.

A decision without the signals its spec needs gets **no** reward (never a silent 0);
:class:`CompileResult` counts the reasons.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

import numpy as np

from rewardloop.rewards import functions as F
from rewardloop.rewards.functions import FloatArray
from rewardloop.rewards.scores import (
    ChosenLike,
    FeedbackLike,
    combine,
    feedback_signals,
    latest_per_rater,
)
from rewardloop.rewards.sets import JOINT_SIGNALS, SET_KINDS, SET_SIGNALS, Penalties, joint_signals
from rewardloop.rewards.spec import RewardSpec
from rewardloop.types import Decision, Feedback, Reward, utcnow  # noqa: F401 (Decision, Feedback: doctests)

#: Components computed from the decision as well as its feedback; each reads the ``correct`` signal.
DERIVED = ("accuracy", "calibration", "confidence", "latency")


@dataclass
class CompileResult:
    """What a compile produced: the rewards, and why the other decisions got none.

    ``skipped`` maps a reason to how many decisions it applied to; ``skipped_ids`` lists them.
    """

    rewards: list[Reward]
    skipped: Counter[str] = field(default_factory=Counter)
    skipped_ids: dict[str, list[str]] = field(default_factory=dict)

    def skip(self, reason: str, decision_id: str) -> None:
        self.skipped[reason] += 1
        self.skipped_ids.setdefault(reason, []).append(decision_id)


class DecisionLike(ChosenLike, Protocol):
    """What the compiler reads of a decision (a :class:`~rewardloop.types.Decision` or a store view)."""

    @property
    def confidence(self) -> float | None: ...
    @property
    def latency_ms(self) -> float | None: ...
    @property
    def chosen_set(self) -> tuple[str, ...] | None: ...


def _needed(spec: RewardSpec) -> list[str]:
    """The signals the spec's function reads."""
    if spec.function in DERIVED:
        return ["correct"]
    if spec.function in ("multilevel", *SET_SIGNALS):
        return [spec.function]
    return sorted({"correct" if k in (*DERIVED, "correct") else k for k in spec.weights})


def _combine_signals(
    d: DecisionLike,
    fbs: Sequence[FeedbackLike],
    spec: RewardSpec,
    needed: list[str],
    level_weights: Mapping[str, float] | None,
) -> tuple[dict[str, tuple[float, float]], list[str]] | str:
    """Each needed signal combined over the decision's raters, (mean, std), with the ids of the rows
    used; or why the decision gets no reward."""
    rows: list[tuple[str, float, float, tuple[str, ...]]] = []  # (signal, value, authority, feedback ids)
    # A rater counts once per decision: their latest row. Rows without a rater id stand alone. Set rows
    # and the corrections' classification are read jointly per rater (rewards/sets.py).
    for fb in latest_per_rater([fb for fb in fbs if fb.kind not in SET_KINDS]):
        for name, v in feedback_signals(d, fb, level_weights).items():
            rows.append((name, v, fb.authority, (fb.id,)))
    if any(name in JOINT_SIGNALS for name in needed):
        rows.extend(joint_signals(d, fbs, Penalties.from_options(spec.options)))
    if not rows:
        return "feedback says nothing about the chosen action"
    signals: dict[str, tuple[float, float]] = {}
    used: list[str] = []
    for name in needed:
        sel = [r for r in rows if r[0] == name and (spec.combine != "authority_mean" or r[2] > 0)]
        if not sel:
            return f"no {name} signal (from feedback with authority > 0)"
        signals[name] = combine([(v, a) for _, v, a, _ in sel], spec.combine)
        used.extend(i for r in (sel[-1:] if spec.combine == "latest" else sel) for i in r[3])
    return signals, used


def compile_feedback(
    decisions: Sequence[DecisionLike],
    feedback: Mapping[str, Sequence[FeedbackLike]],
    spec: RewardSpec,
    created_at: datetime | None = None,
) -> CompileResult:
    """Compile rewards for ``decisions`` from their ``feedback`` (by decision id) under ``spec``.

    Parameters
    ----------
    decisions : sequence of Decision (or any object with id, action, confidence, latency_ms)
    feedback : mapping of decision id to sequence of Feedback
        Each decision's feedback rows; order does not matter (rows are sorted by time).
    spec : RewardSpec
    created_at : datetime, optional
        The rewards' time (default: now). The store orchestration passes the time its read began, so
        that feedback arriving during a compile counts as new for the next incremental one.

    Returns
    -------
    CompileResult
        One :class:`Reward` per decision that had the signals its spec needs, with components, the ids
        of the feedback rows that went into it, and the raters' disagreement.

    Examples
    --------
    >>> d = Decision(policy="p", policy_version="1", kind="classifier", actions=("a", "b"),
    ...              action="a", action_dist=(0.5, 0.5), pscore=0.5, id="d1")
    >>> fb = [Feedback(decision_id="d1", kind="correction", label="a", authority=1.0, rater_id="x"),
    ...       Feedback(decision_id="d1", kind="correction", label="b", authority=0.5, rater_id="y")]
    >>> r = compile_feedback([d], {"d1": fb}, RewardSpec("acc", function="accuracy")).rewards[0]
    >>> round(r.value, 4), round(r.disagreement, 4)
    (0.6667, 0.4714)
    """
    result = CompileResult(rewards=[])
    needed = _needed(spec)
    level_weights = dict(spec.weights) if spec.function == "multilevel" else None
    needs_latency = spec.function == "latency" or "latency" in spec.weights
    # Phase 1, per decision in plain Python: combine each needed signal over the raters.
    kept: list[DecisionLike] = []
    combined: dict[str, list[tuple[float, float]]] = {name: [] for name in needed}
    provenance: list[tuple[str, ...]] = []
    for d in decisions:
        fbs = feedback.get(d.id, ())
        if not fbs:
            result.skip("no feedback", d.id)
            continue
        combined_one = _combine_signals(d, fbs, spec, needed, level_weights)
        if isinstance(combined_one, str):
            result.skip(combined_one, d.id)
            continue
        signals, used = combined_one
        if needs_latency and d.latency_ms is None:
            result.skip("no latency_ms logged", d.id)
            continue
        kept.append(d)
        provenance.append(tuple(dict.fromkeys(used)))
        for name in needed:
            combined[name].append(signals[name])
    if not kept:
        return result
    result.rewards.extend(_rewards(spec, kept, combined, provenance, needs_latency, created_at))
    return result


def _rewards(
    spec: RewardSpec,
    kept: Sequence[DecisionLike],
    combined: Mapping[str, list[tuple[float, float]]],
    provenance: Sequence[tuple[str, ...]],
    needs_latency: bool,
    created_at: datetime | None,
) -> list[Reward]:
    """Phase 2, vectorised over the kept decisions: the spec's function, on the spec's scale."""
    sig = {k: np.array(v, dtype=np.float64).reshape(-1, 2) for k, v in combined.items()}  # (n, 2): mean, std
    conf = np.array([d.confidence if d.confidence is not None else 0.0 for d in kept])  # (n,)
    lat = np.array([d.latency_ms or 0.0 for d in kept]) if needs_latency else None  # (n,)
    value, components, disagreement = _score(spec, sig, conf, lat)
    if spec.scale == "signed" and spec.function != "confidence":
        value = 2.0 * value - 1.0
    elif spec.scale == "unit" and spec.function == "confidence":
        value = (value + 1.0) / 2.0
    if spec.scale == "signed":  # the raters' spread in the reward's own units: [-1, 1] is twice as wide
        disagreement = 2.0 * disagreement
    now = created_at if created_at is not None else utcnow()
    names = list(components)
    cols = [components[k].tolist() for k in names]
    return [
        Reward(
            decision_id=d.id,
            spec=spec.name,
            spec_version=spec.version,
            value=float(value[i]),
            components={k: c[i] for k, c in zip(names, cols, strict=True)},
            feedback_ids=provenance[i],
            # "latest" reads one row: there is no spread to report
            disagreement=None if spec.combine == "latest" else float(disagreement[i]),
            created_at=now,
        )
        for i, d in enumerate(kept)
    ]


def _score(
    spec: RewardSpec,
    sig: Mapping[str, FloatArray],
    conf: FloatArray,
    lat: FloatArray | None,
) -> tuple[FloatArray, dict[str, FloatArray], FloatArray]:
    """(values on the function's natural range, components, disagreement), each of shape (n,)."""
    fn = spec.function
    if fn in ("multilevel", *SET_SIGNALS):
        q, sd = sig[fn][:, 0], sig[fn][:, 1]
        return q, {fn: q}, sd
    q, sd = sig["correct"][:, 0], sig["correct"][:, 1]
    if fn == "accuracy":
        return F.accuracy(q), {"correct": q}, sd
    if fn == "calibration":
        return F.calibration(q, conf), {"correct": q, "confidence": conf}, sd
    if fn == "confidence":
        return F.confidence_weighted(q, conf), {"correct": q, "confidence": conf}, sd
    if fn == "latency":
        assert lat is not None
        factor = F.latency_factor(lat, spec.target_ms)
        return q * factor, {"correct": q, "latency_factor": factor}, sd
    # weighted: each named component in [0, 1]; derived ones read "correct"
    components: dict[str, FloatArray] = {}
    spreads: dict[str, FloatArray] = {}
    for k in spec.weights:
        if k in ("correct", "accuracy"):
            components[k] = q
        elif k == "calibration":
            components[k] = F.calibration(q, conf)
        elif k == "confidence":
            components[k] = (F.confidence_weighted(q, conf) + 1.0) / 2.0
        elif k == "latency":
            assert lat is not None
            components[k] = q * F.latency_factor(lat, spec.target_ms)
        elif k == "classification" and spec.scale == "raw":  # +1 right, -1 wrong
            components[k] = 2.0 * sig[k][:, 0] - 1.0
        else:
            components[k] = sig[k][:, 0]
        spreads[k] = sd if k in (*DERIVED, "correct") else sig[k][:, 1]
        if k == "classification" and spec.scale == "raw":
            spreads[k] = 2.0 * spreads[k]
    total = sum(spec.weights.values())
    value = F.weighted_sum(components, spec.weights, bounded=spec.scale != "raw")
    # Σ w̃_k · std_k: an upper bound on the spread of the weighted total across raters (Minkowski).
    disagreement = sum((w / total * spreads[k] for k, w in spec.weights.items()), np.zeros_like(q))
    return value, components, disagreement


__all__ = ["DERIVED", "CompileResult", "DecisionLike", "FeedbackLike", "compile_feedback", "feedback_signals"]
