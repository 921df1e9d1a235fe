"""Metrics of set decisions: per-action precision / recall / F1, micro and macro F1, subset accuracy,
Hamming loss and per-action calibration; and the set policy's golden report, which the gate reads
like any other (:func:`set_golden_report`).

Inputs are boolean or 0/1 matrices of shape (n, L): ``Y_true`` the right sets, ``Y_pred`` the chosen
sets, ``P`` the model's per-label probabilities, for L actions (labels).

============================ =========================================================================
metric                       definition
============================ =========================================================================
precision_j, recall_j, F1_j  ``tp_j / (tp_j + fp_j)``, ``tp_j / (tp_j + fn_j)``, their harmonic mean
                             (0 where undefined, as scikit-learn's ``zero_division=0``)
micro F1                     ``2 Σ tp / (2 Σ tp + Σ fp + Σ fn)`` over every (item, action) cell
macro F1                     the mean of F1_j over the actions
subset accuracy              the share of items whose chosen set is exactly right
Hamming loss                 the share of (item, action) cells that are wrong
ECE_j                        expected calibration error of ``P[:, j]`` against ``Y_true[:, j]``
                             (:func:`~rewardloop.evaluation.metrics.expected_calibration_error`)
============================ =========================================================================
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from rewardloop.config.sections import DEFAULT_N_BINS
from rewardloop.evaluation.metrics import (
    ClassMetrics,
    GoldenReport,
    expected_calibration_error,
)

BoolArray = npt.NDArray[np.bool_]


def _cells(Y_true: npt.ArrayLike, Y_pred: npt.ArrayLike) -> tuple[BoolArray, BoolArray]:
    t, p = np.asarray(Y_true) > 0.5, np.asarray(Y_pred) > 0.5
    if t.shape != p.shape or t.ndim != 2:
        raise ValueError(f"Y_pred: shape {p.shape}, expected the shape of Y_true {t.shape} (n, L)")
    if t.shape[0] == 0:
        raise ValueError("Y_true: no items to score")
    return t, p


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den > 0 else 0.0


@dataclass(frozen=True)
class SetMetrics:
    """What :func:`set_metrics` measured (see the module's table)."""

    n: int
    labels: list[str]
    micro_f1: float
    macro_f1: float
    subset_accuracy: float
    hamming_loss: float
    per_action: dict[str, ClassMetrics]
    ece_per_action: dict[str, float]

    @property
    def mean_ece(self) -> float:
        """The mean of the per-action ECEs (NaN without probabilities)."""
        return float(np.mean(list(self.ece_per_action.values()))) if self.ece_per_action else float("nan")


def set_metrics(
    Y_true: npt.ArrayLike,
    Y_pred: npt.ArrayLike,
    labels: Sequence[str],
    P: npt.ArrayLike | None = None,
    n_bins: int = DEFAULT_N_BINS,
) -> SetMetrics:
    """Every set metric of the module's table for sets ``Y_pred`` against ``Y_true`` (n, L).

    >>> m = set_metrics([[1, 0], [1, 1]], [[1, 1], [1, 0]], ["a", "b"])
    >>> m.micro_f1, m.subset_accuracy, m.hamming_loss
    (0.6666666666666666, 0.0, 0.5)
    """
    t, p = _cells(Y_true, Y_pred)
    if len(labels) != t.shape[1]:
        raise ValueError(f"labels: {len(labels)} names for {t.shape[1]} actions")
    tp, fp, fn = (t & p).sum(0), (~t & p).sum(0), (t & ~p).sum(0)  # (L,)
    per_action = {}
    for j, label in enumerate(labels):
        prec, rec = _ratio(tp[j], tp[j] + fp[j]), _ratio(tp[j], tp[j] + fn[j])
        per_action[label] = ClassMetrics(prec, rec, _ratio(2 * prec * rec, prec + rec), int(t[:, j].sum()))
    ece = {}
    if P is not None:
        probs = np.asarray(P, dtype=np.float64)
        if probs.shape != t.shape:
            raise ValueError(f"P: shape {probs.shape}, expected {t.shape}")
        ece = {
            label: expected_calibration_error(probs[:, j], t[:, j], n_bins) for j, label in enumerate(labels)
        }
    return SetMetrics(
        n=int(t.shape[0]),
        labels=list(labels),
        micro_f1=_ratio(2 * tp.sum(), 2 * tp.sum() + fp.sum() + fn.sum()),
        macro_f1=float(np.mean([m.f1 for m in per_action.values()])),
        subset_accuracy=float((t == p).all(axis=1).mean()),
        hamming_loss=float((t != p).mean()),
        per_action=per_action,
        ece_per_action=ece,
    )


def set_golden_report(
    policy: str, metrics: SetMetrics, P: npt.ArrayLike, Y_true: npt.ArrayLike
) -> GoldenReport:
    """A set policy's golden report in the gate's terms: ``accuracy`` is the subset accuracy,
    ``per_class`` the per-action metrics (so ``max_class_drop`` compares per-action recall), ``ece`` the
    mean per-action ECE, ``brier`` the mean per-cell squared error, ``macro_f1`` the per-action macro F1
    and ``weighted_f1`` the micro F1."""
    probs, truth = np.asarray(P, dtype=np.float64), np.asarray(Y_true, dtype=np.float64)
    return GoldenReport(
        policy=policy,
        n=metrics.n,
        labels=metrics.labels,
        accuracy=metrics.subset_accuracy,
        critical_accuracy=float("nan"),
        n_critical=0,
        macro_f1=metrics.macro_f1,
        weighted_f1=metrics.micro_f1,
        ece=metrics.mean_ece,
        brier=float(np.mean((probs - truth) ** 2)),
        latency_ms={},
        per_class=metrics.per_action,
        confusion=[],
        by_category={},
        by_priority={},
        by_tag={},
        misclassified=[],
    )


__all__ = ["SetMetrics", "set_golden_report", "set_metrics"]
