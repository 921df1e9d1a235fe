"""Metrics of set decisions: per-action precision / recall / F1, micro and macro F1, subset accuracy,
Hamming loss and per-action calibration; the set policy's golden report, which the gate reads like
any other (:func:`set_golden_report`), and the gate of a set policy (:func:`set_gate`: the common checks
plus ``micro_f1`` and ``hamming_loss``); the per-label off-policy value of a set policy on logged set
decisions (:func:`per_label_logs`, :func:`set_ope`).

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
from typing import Any

import numpy as np
import numpy.typing as npt

from rewardloop.config.sections import DEFAULT_N_BINS, GateConfig
from rewardloop.evaluation.gate import GateReport, OPEComparison, run_gate, threshold_check
from rewardloop.evaluation.golden import GoldenSet
from rewardloop.evaluation.metrics import (
    ClassMetrics,
    GoldenReport,
    expected_calibration_error,
)
from rewardloop.evaluation.ope.sets import PerLabelDoublyRobust
from rewardloop.learners.base import DataSpec
from rewardloop.learners.multilabel import set_data_from_batch
from rewardloop.policies.multilabel import MultiLabelPolicy
from rewardloop.rewards.sets import Penalties
from rewardloop.types import DecisionBatch

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


@dataclass(frozen=True)
class SetEvaluation:
    """A set policy on a golden set of sets: every metric, and the report the gate reads."""

    metrics: SetMetrics
    report: GoldenReport

    def figures(self) -> dict[str, float]:
        """The figures a training run and a registered version record."""
        m = self.metrics
        return {
            "golden/micro_f1": m.micro_f1,
            "golden/macro_f1": m.macro_f1,
            "golden/subset_accuracy": m.subset_accuracy,
            "golden/hamming_loss": m.hamming_loss,
            "golden/mean_ece": m.mean_ece,
        }


def evaluate_set_policy(
    policy: MultiLabelPolicy, golden: GoldenSet, name: str, n_bins: int = DEFAULT_N_BINS
) -> SetEvaluation:
    """``policy``'s thresholded sets and probabilities on a golden set of sets (``labels`` per item)."""
    if not golden.is_sets:
        raise ValueError(
            f"golden: {golden.source} expects single labels; a set policy needs 'labels' per item"
        )
    Y = golden.matrix(policy.labels)  # (n, L)
    P = policy.predict_proba(golden.texts)  # (n, L)
    chosen = np.greater_equal(P, policy.thresholds)  # (n, L)
    metrics = set_metrics(Y, chosen, policy.labels, P, n_bins)
    return SetEvaluation(metrics, set_golden_report(name, metrics, P, Y))


def set_gate(
    candidate: SetEvaluation,
    champion: SetEvaluation | None,
    thresholds: GateConfig,
    ope: OPEComparison | None = None,
) -> GateReport:
    """The gate of a set policy: :func:`~rewardloop.evaluation.gate.run_gate` on its golden report
    (``accuracy`` is the subset accuracy, ``ece`` the mean per-action ECE, ``max_class_drop`` the largest
    per-action recall drop, ``ope_lower_vs_champion`` the per-label DR), then ``micro_f1`` ≥
    ``min_micro_f1`` and ``hamming_loss`` ≤ ``max_hamming_loss`` when set.

    >>> m = set_metrics([[1, 0], [1, 1]], [[1, 1], [1, 0]], ["a", "b"])
    >>> ev = SetEvaluation(m, set_golden_report("v2", m, [[0.9, 0.6], [0.8, 0.4]], [[1, 0], [1, 1]]))
    >>> [(c.name, c.passed) for c in set_gate(ev, None, GateConfig(min_micro_f1=0.6)).checks]
    [('micro_f1', True)]
    """
    report = run_gate(candidate.report, None if champion is None else champion.report, thresholds, ope)
    m, checks = candidate.metrics, list(report.checks)
    cells = f"{m.n} items × {len(m.labels)} actions"
    if thresholds.min_micro_f1 is not None:
        checks.append(threshold_check("micro_f1", m.micro_f1, thresholds.min_micro_f1, True, cells))
    if thresholds.max_hamming_loss is not None:
        checks.append(
            threshold_check("hamming_loss", m.hamming_loss, thresholds.max_hamming_loss, False, cells)
        )
    return GateReport(report.candidate, report.champion, checks)


@dataclass(frozen=True)
class PerLabelLogs:
    """Logged set decisions with set feedback as per-label arrays (n_rounds, n_labels), for OPE.

    ``reward`` is each label's share of the additive set penalty,
    ``r_tj = −missed_j·(1 − z_tj)·y_tj − unnecessary_j·z_tj·(1 − y_tj)`` (``y`` the authority-weighted
    share of raters holding the label right), so ``Σ_j r_tj`` is the decision's expected
    ``set_penalty``; ``logged`` z, ``pscore`` the logged inclusion probabilities, ``mask`` 1 where the
    decision's label space held the label; ``penalty`` of shape (2, L) each label's (missed,
    unnecessary) penalty.
    """

    texts: list[str]
    reward: npt.NDArray[np.float64]
    logged: npt.NDArray[np.float64]
    pscore: npt.NDArray[np.float64]
    mask: npt.NDArray[np.float64]
    penalty: npt.NDArray[np.float64]

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def logged_value(self) -> float:
        """The logging policy's value: the mean over rounds of ``Σ_j m_tj r_tj``."""
        return float((self.mask * self.reward).sum(axis=1).mean()) if len(self) else float("nan")


def per_label_logs(batch: DecisionBatch, labels: Sequence[str], penalties: Penalties) -> PerLabelLogs:
    """:class:`PerLabelLogs` of the decisions of ``batch`` that carry a set judged by set feedback.

    >>> from rewardloop.types import Decision, Feedback, set_decision_fields
    >>> d = Decision(id="d", policy="p", policy_version="1", kind="set", text="t",
    ...              **set_decision_fields(["a", "b"], ["a"], [0.8, 0.4]))
    >>> fb = Feedback(decision_id="d", kind="missed_actions", labels=("b",), rater_id="u")
    >>> per_label_logs(DecisionBatch([d], {"d": [fb]}, {}), ["a", "b"], Penalties()).reward.tolist()
    [[-0.0, -0.5]]
    """
    data = set_data_from_batch(batch, DataSpec(labels=labels))
    penalty = np.array([[penalties.missed(a) for a in labels], [penalties.unnecessary(a) for a in labels]])
    z, y = data.logged, data.Y
    reward = -penalty[0] * (1.0 - z) * y - penalty[1] * z * (1.0 - y)  # (n, L)
    return PerLabelLogs(list(data.X), reward, z, data.mu, data.mask, penalty)


def set_ope(
    candidate: MultiLabelPolicy,
    logs: PerLabelLogs,
    reward_model: MultiLabelPolicy | None = None,
    *,
    n_bootstrap_samples: int = 300,
    random_state: int | None = 0,
) -> OPEComparison | None:
    """Per-label doubly robust value of ``candidate``, served as it explores, on ``logs`` against the
    logging policy's own value (None without logs).

    The reward model of DR is ``q̂_j(x, 1) = −unnecessary_j·(1 − ŷ_j)``, ``q̂_j(x, 0) = −missed_j·ŷ_j``
    with ``ŷ_j`` the label's probability under ``reward_model`` (default the candidate): any ŷ keeps DR
    unbiased with the logged propensities; a good one lowers its variance.
    """
    if not len(logs):
        return None
    pi = candidate.inclusion_probs(candidate.predict_proba(logs.texts))  # (n, L): as served
    y_hat = (reward_model or candidate).predict_proba(logs.texts)
    q = np.stack([-logs.penalty[0] * y_hat, -logs.penalty[1] * (1.0 - y_hat)], axis=-1)  # (n, L, 2)
    inputs: dict[str, Any] = {
        "reward": logs.reward,
        "logged": logs.logged,
        "pscore": logs.pscore,
        "mask": logs.mask,
    }
    interval = PerLabelDoublyRobust().estimate_interval(
        **inputs, action_dist=pi, estimated_rewards_by_reg_model=q,
        n_bootstrap_samples=n_bootstrap_samples, random_state=random_state,
    )  # fmt: skip
    served = f"{candidate.exploration.mode} per label"
    return OPEComparison(interval, logs.logged_value, served)


__all__ = [
    "PerLabelLogs",
    "SetEvaluation",
    "SetMetrics",
    "evaluate_set_policy",
    "per_label_logs",
    "set_gate",
    "set_golden_report",
    "set_metrics",
    "set_ope",
]
