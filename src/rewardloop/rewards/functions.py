"""Reward functions: pure, vectorised numpy, with the output range stated on each.

Every function takes arrays of shape (n,) (scalars broadcast), checks them (finite, in range, same
length, not empty) and raises :class:`RewardError` naming the argument otherwise. "Correct" is a number
in [0, 1]: 1 right, 0 wrong, and values between for a graded judgement (a 4 on a 1–5 rating is 0.75;
see ``docs/rewards.md`` for how each feedback kind maps onto it).

Ranges: ``unit`` means [0, 1], ``signed`` means [-1, 1]; :func:`to_signed` / :func:`to_unit` convert
(``s = 2u - 1``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

from rewardloop.rewards.scores import level_rollup

FloatArray = npt.NDArray[np.float64]


class RewardError(ValueError):
    """Bad input to a reward function or spec; the message names the argument or key."""


# ------------------------------------------------------------------------------------------- checks


def _array(
    name: str, values: npt.ArrayLike, low: float | None = None, high: float | None = None
) -> FloatArray:
    try:
        arr = np.atleast_1d(np.asarray(values, dtype=np.float64))
    except (TypeError, ValueError) as err:
        raise RewardError(f"{name}: must be numbers ({err})") from None
    if arr.ndim != 1:
        raise RewardError(f"{name}: must be one-dimensional, got shape {arr.shape}")
    if arr.size == 0:
        raise RewardError(f"{name}: empty batch (nothing to score)")
    bad = ~np.isfinite(arr)
    if bad.any():
        raise RewardError(f"{name}: non-finite value {arr[bad][0]} at index {int(np.flatnonzero(bad)[0])}")
    if low is not None and high is not None:
        out = (arr < low) | (arr > high)
        if out.any():
            i = int(np.flatnonzero(out)[0])
            raise RewardError(f"{name}: {arr[i]} at index {i} is outside [{low:g}, {high:g}]")
    return arr


def _same_length(**arrays: FloatArray) -> int:
    """The common length; the first argument sets it (unless it broadcasts from one value)."""
    sizes = {k: v.size for k, v in arrays.items()}
    first = next(iter(sizes.values()))
    n = first if first != 1 else max(sizes.values())
    for k, size in sizes.items():
        if size not in (1, n):
            raise RewardError(f"{k}: has {size} values, expected {n} (or 1 to broadcast)")
    return n


def normalise(values: npt.ArrayLike, scale: tuple[float, float], name: str = "value") -> FloatArray:
    """Map ratings on ``scale = (low, high)`` linearly onto [0, 1]; off-scale values are errors.

    >>> normalise([1, 3, 5], (1, 5)).tolist()
    [0.0, 0.5, 1.0]
    """
    low, high = float(scale[0]), float(scale[1])
    if not (np.isfinite(low) and np.isfinite(high) and low < high):
        raise RewardError(f"scale: must be (low, high) with low < high, got {scale!r}")
    arr = _array(name, values, low, high)
    return (arr - low) / (high - low)


def to_signed(unit: npt.ArrayLike) -> FloatArray:
    """[0, 1] → [-1, 1]: ``2u - 1``."""
    return 2.0 * _array("unit", unit, 0.0, 1.0) - 1.0


def to_unit(signed: npt.ArrayLike) -> FloatArray:
    """[-1, 1] → [0, 1]: ``(s + 1) / 2``."""
    return (_array("signed", signed, -1.0, 1.0) + 1.0) / 2.0


# ------------------------------------------------------------------------------------------ rewards


def accuracy(correct: npt.ArrayLike, signed: bool = False) -> FloatArray:
    """Per-decision accuracy: ``correct`` in [0, 1] (unit), or ``2·correct - 1`` in [-1, 1] (signed).

    >>> accuracy([1, 0, 1], signed=True).tolist()
    [1.0, -1.0, 1.0]
    """
    c = _array("correct", correct, 0.0, 1.0)
    return 2.0 * c - 1.0 if signed else c


def confidence_weighted(correct: npt.ArrayLike, confidence: npt.ArrayLike) -> FloatArray:
    """Confidence-weighted correctness in [-1, 1]: ``confidence · (2·correct - 1)``.

    A confident right answer earns up to +1, a confident wrong one costs up to -1, an unsure one
    (confidence near 0) earns about 0 either way.

    >>> confidence_weighted([1, 0], [0.9, 0.8]).tolist()
    [0.9, -0.8]
    """
    c = _array("correct", correct, 0.0, 1.0)
    p = _array("confidence", confidence, 0.0, 1.0)
    _same_length(correct=c, confidence=p)
    return p * (2.0 * c - 1.0)


def calibration(correct: npt.ArrayLike, confidence: npt.ArrayLike) -> FloatArray:
    """Calibration reward in [0, 1]: ``1 - |confidence - correct|`` (1 = confidence matched outcome).

    >>> calibration([1, 0], [0.75, 0.25]).tolist()
    [0.75, 0.75]
    """
    c = _array("correct", correct, 0.0, 1.0)
    p = _array("confidence", confidence, 0.0, 1.0)
    _same_length(correct=c, confidence=p)
    return 1.0 - np.abs(p - c)


def latency_factor(latency_ms: npt.ArrayLike, target_ms: float) -> FloatArray:
    """The latency penalty factor in [0, 1]: ``1 - 0.5 · max(0, (latency - target) / target)``,
    clipped at 0 (reached at three times the target).
    """
    if not (np.isfinite(target_ms) and target_ms > 0):
        raise RewardError(f"target_ms: must be a positive number of milliseconds, got {target_ms!r}")
    lat = _array("latency_ms", latency_ms, 0.0, np.inf)
    over = np.maximum(0.0, (lat - target_ms) / target_ms)
    return np.clip(1.0 - 0.5 * over, 0.0, 1.0)


def latency_aware(correct: npt.ArrayLike, latency_ms: npt.ArrayLike, target_ms: float) -> FloatArray:
    """Latency-aware accuracy in [0, 1]: ``correct · latency_factor(latency, target)``.

    Full credit at or under the target; half credit at twice the target; none from three times it.

    >>> latency_aware([1, 1, 1, 0], [50, 100, 200, 10], target_ms=100).tolist()
    [1.0, 1.0, 0.5, 0.0]
    """
    c = _array("correct", correct, 0.0, 1.0)
    f = latency_factor(latency_ms, target_ms)
    _same_length(correct=c, latency_ms=f)
    return c * f


def _check_weights(weights: Mapping[str, float]) -> float:
    """The sum of ``weights`` after checking each is a number >= 0 and not all are 0."""
    if not weights:
        raise RewardError("weights: a weighted reward needs at least one component weight")
    total = 0.0
    for k, w in weights.items():
        if not (isinstance(w, int | float) and np.isfinite(w) and w >= 0):
            raise RewardError(f"weights.{k}: must be a number >= 0, got {w!r}")
        total += float(w)
    if total <= 0:
        raise RewardError("weights: must not all be 0")
    return total


def weighted_sum(
    components: Mapping[str, npt.ArrayLike], weights: Mapping[str, float], bounded: bool = True
) -> FloatArray:
    """Multi-objective reward: ``Σ_k w_k · component_k / Σ_k w_k``, named components in [0, 1].

    Weights are normalised to sum to 1, so the result stays in [0, 1]. Every weighted component must be
    given (a missing one is an error, never a silent 0); components without a weight are ignored.
    ``bounded=False`` takes each component on its own range (finite only): a spec with ``scale: raw``.

    >>> parts = {"classification": [1.0], "actions": [0.5], "calibration": [0.8], "engagement": [0.0]}
    >>> w = {"classification": 0.4, "actions": 0.3, "calibration": 0.2, "engagement": 0.1}
    >>> weighted_sum(parts, w).round(6).tolist()
    [0.71]
    """
    total = _check_weights(weights)
    missing = [k for k in weights if k not in components]
    if missing:
        raise RewardError(f"components: missing {', '.join(missing)} (weighted in the spec)")
    low, high = (0.0, 1.0) if bounded else (None, None)
    arrays = {k: _array(f"components.{k}", components[k], low, high) for k in weights}
    n = _same_length(**arrays)
    out = np.zeros(n)
    for k, w in weights.items():
        out = out + (float(w) / total) * arrays[k]
    return out


def multilevel_rollup(
    scores: Mapping[str, npt.ArrayLike],
    weights: Mapping[str, float] | None = None,
) -> FloatArray:
    """Roll named level scores in [0, 1] up into one overall score in [0, 1].

    Keys may be dotted, ``"retrieval.precision"``: sub-scores average within their level (the part
    before the first dot), then the levels combine as a weighted mean with ``weights`` per level
    (default: equal); see :func:`rewardloop.rewards.scores.level_rollup`, which this applies per row
    after checking the arrays. A weight for a level with no score is an error.

    >>> multilevel_rollup({"retrieval.precision": [1.0], "retrieval.recall": [0.5],
    ...                    "reasoning": [0.5], "synthesis": [0.0]},
    ...                   {"retrieval": 2, "reasoning": 1, "synthesis": 1}).tolist()
    [0.5]
    """
    if not scores:
        raise RewardError("scores: a multi-level roll-up needs at least one named score")
    arrays = {key: _array(f"scores.{key}", values, 0.0, 1.0) for key, values in scores.items()}
    n = _same_length(**arrays)
    if weights:
        _check_weights(weights)
        levels = {key.split(".", 1)[0] for key in scores}
        unknown = [k for k in weights if k not in levels]
        if unknown:
            raise RewardError(
                f"weights: no scores for level(s) {', '.join(unknown)} (have {', '.join(sorted(levels))})"
            )
    full = {key: np.broadcast_to(arr, (n,)) for key, arr in arrays.items()}
    # One definition of the roll-up (rewards.scores.level_rollup), applied row by row.
    out = [level_rollup({key: float(arr[i]) for key, arr in full.items()}, weights) for i in range(n)]
    return np.array(out, dtype=np.float64)


# ----------------------------------------------------------------------------------- batch metrics


def _labels(name: str, values: Sequence[str] | npt.ArrayLike) -> npt.NDArray[np.str_]:
    arr = np.asarray(values)
    if arr.ndim != 1 or arr.size == 0:
        raise RewardError(f"{name}: must be a non-empty 1-D sequence of labels")
    return arr.astype(str)


def class_counts(
    y_true: Sequence[str] | npt.ArrayLike,
    y_pred: Sequence[str] | npt.ArrayLike,
    labels: Sequence[str] | None = None,
) -> tuple[list[str], FloatArray, FloatArray, FloatArray]:
    """``(labels, tp, fp, fn)``, each count of shape (n_labels,), counted as scikit-learn counts them.

    ``labels`` defaults to every label seen in ``y_true`` or ``y_pred`` (sorted); given (a policy's
    declared labels), every item still counts: a prediction outside them is a false negative of the
    true class.
    """
    t, p = _labels("y_true", y_true), _labels("y_pred", y_pred)
    if t.size != p.size:
        raise RewardError(f"y_pred: has {p.size} labels for {t.size} true labels")
    classes = [str(c) for c in np.unique(np.concatenate([t, p]))] if labels is None else list(labels)
    if not classes:
        raise RewardError("labels: at least one label is needed")
    c = np.asarray(classes, dtype=str)[:, None]  # (K, 1)
    is_t, is_p = t[None, :] == c, p[None, :] == c  # (K, n)
    tp = np.sum(is_t & is_p, axis=1).astype(np.float64)
    fp = np.sum(~is_t & is_p, axis=1).astype(np.float64)
    fn = np.sum(is_t & ~is_p, axis=1).astype(np.float64)
    return classes, tp, fp, fn


def f1_from_counts(tp: FloatArray, fp: FloatArray, fn: FloatArray) -> FloatArray:
    """Per-class F1 ``2 tp / (2 tp + fp + fn)``, 0 where a class has no tp, fp or fn (zero_division=0)."""
    denom = 2 * tp + fp + fn
    return np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)


def f1_macro(
    y_true: Sequence[str] | npt.ArrayLike,
    y_pred: Sequence[str] | npt.ArrayLike,
    labels: Sequence[str] | None = None,
) -> float:
    """Macro F1 in [0, 1]: the unweighted mean of per-class F1 over ``labels`` (scikit-learn's
    ``f1_score(average="macro", labels=labels, zero_division=0)``; pass the policy's declared labels).

    >>> round(f1_macro(["a", "a", "b"], ["a", "b", "b"]), 4)
    0.6667
    >>> round(f1_macro(["a", "a", "b", "b"], ["a", "e", "b", "b"], labels=["a", "b"]), 4)
    0.8333
    """
    _, tp, fp, fn = class_counts(y_true, y_pred, labels)
    return float(f1_from_counts(tp, fp, fn).mean())


def f1_weighted(
    y_true: Sequence[str] | npt.ArrayLike,
    y_pred: Sequence[str] | npt.ArrayLike,
    labels: Sequence[str] | None = None,
) -> float:
    """Support-weighted F1 in [0, 1]: per-class F1 over ``labels`` weighted by true-class counts
    (scikit-learn's ``average="weighted"``); NaN when no item's true class is among ``labels``.

    >>> round(f1_weighted(["a", "a", "b"], ["a", "b", "b"]), 4)
    0.6667
    """
    _, tp, fp, fn = class_counts(y_true, y_pred, labels)
    support = tp + fn
    total = support.sum()
    return float(np.sum(f1_from_counts(tp, fp, fn) * support) / total) if total else float("nan")


def weighted_mean_std(values: npt.ArrayLike, weights: npt.ArrayLike) -> tuple[float, float]:
    """Authority-weighted mean and standard deviation of several raters' values.

    ``mean = Σ a_i v_i / Σ a_i``, ``std = sqrt(Σ a_i (v_i - mean)² / Σ a_i)`` (population form: one rater
    gives 0).

    >>> weighted_mean_std([1.0, 0.0], [3.0, 1.0])
    (0.75, 0.4330127018922193)
    """
    v = _array("values", values)
    a = _array("weights", weights, 0.0, np.inf)
    _same_length(values=v, weights=a)
    total = a.sum()
    if total <= 0:
        raise RewardError("weights: every rater has authority 0; nothing to combine")
    mean = float(np.sum(a * v) / total)
    std = float(np.sqrt(np.sum(a * (v - mean) ** 2) / total))
    return mean, std
