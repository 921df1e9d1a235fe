"""Classification metrics for golden-set runs: accuracy, per-class P/R/F1, calibration, latency, breakdowns.

Pure numpy. (Precision/recall/F1 and the confusion matrix agree with scikit-learn's
``precision_recall_fscore_support(..., zero_division=0)`` and ``confusion_matrix``; computing them here
keeps scikit-learn's multi-second import out of every ``rewardloop`` command.) The entry points:

- :func:`evaluate_predictions` — golden set + precomputed probabilities → :class:`GoldenReport`;
- :func:`evaluate_golden` — golden set + any object with ``labels`` and ``predict_proba(texts)``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from rewardloop.config.sections import DEFAULT_N_BINS
from rewardloop.evaluation.golden import GoldenError, GoldenSet
from rewardloop.rewards.functions import class_counts, f1_from_counts, f1_macro, f1_weighted

FloatArray = npt.NDArray[np.float64]


# ----------------------------------------------------------------------------------------------- policy


@runtime_checkable
class ProbabilisticPolicy(Protocol):
    """What a golden-set run needs from a policy: its labels and class probabilities.

    ``predict_proba(texts)`` returns an array of shape (n_texts, len(labels)) whose rows sum to 1.
    A policy may also define ``predict_proba_with_latency(texts) -> (proba, latency_ms)`` to report
    its own per-item latency (shape (n_texts,)); otherwise the run times each call.
    """

    @property
    def labels(self) -> Sequence[str]: ...

    def predict_proba(self, texts: Sequence[str]) -> Any: ...


# ----------------------------------------------------------------------------------------------- metrics


def accuracy(y_true: Sequence[Any], y_pred: Sequence[Any]) -> float:
    """Share of exact matches."""
    t, p = np.asarray(y_true), np.asarray(y_pred)
    if t.shape != p.shape:
        raise ValueError(f"y_pred: {p.shape[0]} predictions for {t.shape[0]} items")
    return float(np.mean(t == p)) if t.size else float("nan")


def confusion_matrix(y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str]) -> npt.NDArray[Any]:
    """Counts, shape (n_labels, n_labels): row = expected, column = predicted, in ``labels`` order.

    Items whose expected or predicted label is not in ``labels`` are not counted (as scikit-learn).
    """
    index = {lab: i for i, lab in enumerate(labels)}
    cm = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for t, p in zip(y_true, y_pred, strict=True):
        if t in index and p in index:
            cm[index[t], index[p]] += 1
    return cm


@dataclass(frozen=True)
class ClassMetrics:
    """Precision, recall (= the class's accuracy), F1 and support of one class."""

    precision: float
    recall: float
    f1: float
    support: int


def per_class_metrics(
    y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str]
) -> dict[str, ClassMetrics]:
    """Per-class precision/recall/F1 over ``labels``; a class never predicted has precision 0 (not NaN).

    Counted as scikit-learn counts (:func:`rewardloop.rewards.functions.class_counts`).
    """
    _, tp, fp, fn = class_counts(y_true, y_pred, labels)
    predicted, support = tp + fp, tp + fn
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    f1 = f1_from_counts(tp, fp, fn)
    return {
        lab: ClassMetrics(float(precision[i]), float(recall[i]), float(f1[i]), int(support[i]))
        for i, lab in enumerate(labels)
    }


def _bin_index(confidence: FloatArray, n_bins: int) -> npt.NDArray[np.int64]:
    # Bins (0, 1/B], (1/B, 2/B], ..., as Guo et al. 2017; a confidence of exactly 0 goes to the first bin.
    # The 1e-9 keeps a confidence of exactly k/B in bin k despite rounding (0.7 * 10 = 7.000000000000001).
    return np.clip(np.ceil(confidence * n_bins - 1e-9).astype(np.int64) - 1, 0, n_bins - 1)


def expected_calibration_error(
    confidence: npt.ArrayLike, correct: npt.ArrayLike, n_bins: int = DEFAULT_N_BINS
) -> float:
    r"""Expected calibration error with ``n_bins`` equal-width bins.

    .. math:: \mathrm{ECE} = \sum_b \frac{|B_b|}{n} \, |\mathrm{acc}(B_b) - \mathrm{conf}(B_b)|

    Naeini, Cooper & Hauskrecht (2015); Guo, Pleiss, Sun & Weinberger (2017) "On Calibration of Modern
    Neural Networks", eq. 3. Bins are right-closed: (0, 1/B], ..., ((B-1)/B, 1].

    Examples
    --------
    >>> round(expected_calibration_error([0.9, 0.9, 0.6, 0.6], [1, 0, 1, 1], n_bins=10), 12)
    0.4
    """
    conf = np.asarray(confidence, dtype=np.float64)
    ok = np.asarray(correct, dtype=np.float64)
    if conf.shape != ok.shape or conf.ndim != 1:
        raise ValueError(f"confidence and correct: need equal 1-D shapes, got {conf.shape} and {ok.shape}")
    if conf.size == 0:
        return float("nan")
    if np.any((conf < 0) | (conf > 1)):
        raise ValueError("confidence: values must lie in [0, 1]")
    idx = _bin_index(conf, n_bins)
    n = conf.size
    ece = 0.0
    for b in np.unique(idx):
        m = idx == b
        ece += m.sum() / n * abs(ok[m].mean() - conf[m].mean())
    return float(ece)


@dataclass(frozen=True)
class ReliabilityBin:
    lower: float
    upper: float
    count: int
    confidence: float
    accuracy: float


def reliability_bins(
    confidence: npt.ArrayLike, correct: npt.ArrayLike, n_bins: int = DEFAULT_N_BINS
) -> list[ReliabilityBin]:
    """The non-empty bins of the reliability diagram (same binning as the ECE)."""
    conf = np.asarray(confidence, dtype=np.float64)
    ok = np.asarray(correct, dtype=np.float64)
    idx = _bin_index(conf, n_bins)
    out = []
    for b in range(n_bins):
        m = idx == b
        if m.any():
            out.append(
                ReliabilityBin(
                    b / n_bins, (b + 1) / n_bins, int(m.sum()), float(conf[m].mean()), float(ok[m].mean())
                )
            )
    return out


def brier_score(proba: npt.ArrayLike, y_index: npt.ArrayLike) -> float:
    r"""Multi-class Brier score: mean over items of :math:`\sum_k (p_k - 1\{y = k\})^2` (Brier 1950).

    Ranges over [0, 2]; 0 is perfect. (scikit-learn's ``brier_score_loss`` is the binary form.)

    Examples
    --------
    >>> round(brier_score([[0.8, 0.2], [0.5, 0.5]], [0, 1]), 12)
    0.29
    """
    p = np.asarray(proba, dtype=np.float64)
    y = np.asarray(y_index, dtype=np.int64)
    if p.ndim != 2 or p.shape[0] != y.shape[0]:
        raise ValueError(f"proba: expected shape (n_items, n_labels) for {y.shape[0]} items, got {p.shape}")
    onehot = np.zeros_like(p)
    onehot[np.arange(y.shape[0]), y] = 1.0
    return float(np.mean(np.sum((p - onehot) ** 2, axis=1)))


def latency_percentiles(latency_ms: npt.ArrayLike) -> dict[str, float]:
    """p50/p95/p99 (linear interpolation, numpy's default) and the mean, in milliseconds."""
    x = np.asarray(latency_ms, dtype=np.float64)
    if x.size == 0:
        return {}
    p50, p95, p99 = np.percentile(x, [50, 95, 99])
    return {"p50": float(p50), "p95": float(p95), "p99": float(p99), "mean": float(x.mean())}


# ----------------------------------------------------------------------------------------------- report


@dataclass(frozen=True)
class GroupAccuracy:
    n: int
    correct: int

    @property
    def accuracy(self) -> float:
        return self.correct / self.n if self.n else float("nan")


@dataclass(frozen=True)
class Misclassified:
    id: str
    text: str
    expected: str
    predicted: str
    confidence: float
    critical: bool
    line: int


@dataclass(frozen=True)
class GoldenReport:
    """Everything a golden-set run measured. JSON round-trips with :meth:`to_dict` / :meth:`from_dict`.

    ``critical_accuracy`` is NaN when the set has no critical items. ``items`` keeps per-item results
    (id, expected, predicted, confidence, correct, critical) for plots and audits.

    Examples
    --------
    >>> from rewardloop.evaluation.golden import GoldenItem, GoldenSet
    >>> g = GoldenSet([GoldenItem("a", "x", "spam"), GoldenItem("b", "y", "ham", critical=True)])
    >>> r = evaluate_predictions(g, ["ham", "spam"], [[0.2, 0.8], [0.9, 0.1]])
    >>> r.accuracy, r.critical_accuracy
    (1.0, 1.0)
    """

    policy: str
    n: int
    labels: list[str]
    accuracy: float
    critical_accuracy: float
    n_critical: int
    macro_f1: float
    weighted_f1: float
    ece: float
    brier: float
    latency_ms: dict[str, float]
    per_class: dict[str, ClassMetrics]
    confusion: list[list[int]]
    by_category: dict[str, GroupAccuracy]
    by_priority: dict[str, GroupAccuracy]
    by_tag: dict[str, GroupAccuracy]
    misclassified: list[Misclassified]
    items: list[dict[str, Any]] = field(default_factory=list)
    n_bins: int = DEFAULT_N_BINS

    def class_accuracy(self, label: str) -> float:
        """The recall of ``label``: the share of its golden items answered right."""
        return self.per_class[label].recall

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for key in ("by_category", "by_priority", "by_tag"):
            d[key] = {
                k: {"n": g.n, "correct": g.correct, "accuracy": g.accuracy}
                for k, g in getattr(self, key).items()
            }
        return d

    def to_json(self, path: str | Path) -> Path:
        file = Path(path)
        file.write_text(json.dumps(self.to_dict(), indent=2, allow_nan=True))
        return file

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GoldenReport:
        def groups(x: dict[str, Any]) -> dict[str, GroupAccuracy]:
            return {k: GroupAccuracy(int(v["n"]), int(v["correct"])) for k, v in x.items()}

        try:
            return cls(
                policy=d["policy"],
                n=int(d["n"]),
                labels=list(d["labels"]),
                accuracy=float(d["accuracy"]),
                critical_accuracy=float(d["critical_accuracy"]),
                n_critical=int(d["n_critical"]),
                macro_f1=float(d["macro_f1"]),
                weighted_f1=float(d["weighted_f1"]),
                ece=float(d["ece"]),
                brier=float(d["brier"]),
                latency_ms={k: float(v) for k, v in d.get("latency_ms", {}).items()},
                per_class={k: ClassMetrics(**v) for k, v in d["per_class"].items()},
                confusion=[list(map(int, row)) for row in d["confusion"]],
                by_category=groups(d["by_category"]),
                by_priority=groups(d["by_priority"]),
                by_tag=groups(d["by_tag"]),
                misclassified=[Misclassified(**m) for m in d["misclassified"]],
                items=list(d.get("items", [])),
                n_bins=int(d.get("n_bins", DEFAULT_N_BINS)),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"not a golden report: {type(err).__name__}: {err}") from None

    @classmethod
    def from_json(cls, path: str | Path) -> GoldenReport:
        file = Path(path)
        try:
            data = json.loads(file.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise ValueError(f"{file}: cannot read a golden report ({err})") from None
        if not isinstance(data, dict):
            raise ValueError(f"{file}: not a golden report (expected a JSON object)")
        return cls.from_dict(data)

    def summary(self) -> str:
        crit = "n/a" if np.isnan(self.critical_accuracy) else f"{self.critical_accuracy:.1%}"
        lat = f", p95 {self.latency_ms['p95']:.1f} ms" if "p95" in self.latency_ms else ""
        return (
            f"{self.policy}: accuracy {self.accuracy:.1%} on {self.n} items, critical {crit} "
            f"({self.n_critical}), macro-F1 {self.macro_f1:.3f}, ECE {self.ece:.3f}, "
            f"Brier {self.brier:.3f}{lat}"
        )


def _groups(keys: list[list[str]], correct: npt.NDArray[np.bool_]) -> dict[str, GroupAccuracy]:
    n: dict[str, int] = {}
    c: dict[str, int] = {}
    for ks, ok in zip(keys, correct, strict=True):
        for k in ks:
            n[k] = n.get(k, 0) + 1
            c[k] = c.get(k, 0) + int(ok)
    return {k: GroupAccuracy(n[k], c[k]) for k in sorted(n)}


def evaluate_predictions(
    golden: GoldenSet,
    labels: Sequence[str],
    proba: npt.ArrayLike,
    latency_ms: npt.ArrayLike | None = None,
    *,
    policy: str = "policy",
    n_bins: int = DEFAULT_N_BINS,
) -> GoldenReport:
    """Score precomputed probabilities on a golden set.

    Parameters
    ----------
    labels : sequence of str
        The policy's labels, in the column order of ``proba``.
    proba : array of shape (n_items, n_labels)
        The policy's probabilities; the prediction is the argmax, the confidence its probability.
    latency_ms : array of shape (n_items,), optional
    """
    labels = list(labels)
    golden.check_labels(labels)
    p = np.asarray(proba, dtype=np.float64)
    if p.shape != (len(golden), len(labels)):
        raise ValueError(f"proba: expected shape ({len(golden)}, {len(labels)}), got {p.shape}")
    if not np.all(np.isfinite(p)) or p.min() < 0 or not np.allclose(p.sum(axis=1), 1.0, atol=1e-4):
        raise ValueError("proba: each row must be finite probabilities summing to 1")
    index = {lab: i for i, lab in enumerate(labels)}
    y_idx = np.array([index[i.label] for i in golden.items], dtype=np.int64)
    pred_idx = p.argmax(axis=1)
    confidence = p[np.arange(len(golden)), pred_idx]
    y_true = [i.label for i in golden.items]
    y_pred = [labels[j] for j in pred_idx]
    correct = pred_idx == y_idx
    critical = np.array([i.critical for i in golden.items], dtype=bool)
    per_class = per_class_metrics(y_true, y_pred, labels)
    lat: dict[str, float] = {}
    if latency_ms is not None:
        lat_arr = np.asarray(latency_ms, dtype=np.float64)
        if lat_arr.shape != (len(golden),):
            raise ValueError(f"latency_ms: expected shape ({len(golden)},), got {lat_arr.shape}")
        lat = latency_percentiles(lat_arr)
    misses = [
        Misclassified(it.id, it.text, it.label, y_pred[k], float(confidence[k]), it.critical, it.line)
        for k, it in enumerate(golden.items)
        if not correct[k]
    ]
    items = [
        {
            "id": it.id,
            "expected": it.label,
            "predicted": y_pred[k],
            "confidence": float(confidence[k]),
            "correct": bool(correct[k]),
            "critical": it.critical,
        }
        for k, it in enumerate(golden.items)
    ]
    return GoldenReport(
        policy=policy,
        n=len(golden),
        labels=labels,
        accuracy=float(correct.mean()),
        critical_accuracy=float(correct[critical].mean()) if critical.any() else float("nan"),
        n_critical=int(critical.sum()),
        macro_f1=f1_macro(y_true, y_pred, labels),
        weighted_f1=f1_weighted(y_true, y_pred, labels),
        ece=expected_calibration_error(confidence, correct, n_bins),
        brier=brier_score(p, y_idx),
        latency_ms=lat,
        per_class=per_class,
        confusion=confusion_matrix(y_true, y_pred, labels).tolist(),
        by_category=_groups([[i.group] for i in golden.items], correct),
        by_priority=_groups(
            [[i.priority or ("critical" if i.critical else "none")] for i in golden.items], correct
        ),
        by_tag=_groups([list(i.tags) for i in golden.items], correct),
        misclassified=misses,
        items=items,
        n_bins=n_bins,
    )


def evaluate_golden(
    policy: ProbabilisticPolicy,
    golden: GoldenSet,
    *,
    batch_size: int | None = None,
    name: str | None = None,
    n_bins: int = DEFAULT_N_BINS,
    progress: Any = None,
) -> GoldenReport:
    """Run ``policy`` on every golden item and score it.

    Parameters
    ----------
    batch_size : int, optional
        None (default) calls the policy one item at a time, so that latency is a single request's;
        with a batch size each item is charged its batch's time divided by the batch's length. Batches
        are made of texts of similar length (the texts sorted by length, stably), so that an encoder
        pads each batch little; the results are in the golden set's order all the same.
    progress : callable, optional
        Called with the number of items done after each call (for a progress bar).
    """
    labels = list(policy.labels)
    golden.check_labels(labels)
    texts = golden.texts
    step = 1 if batch_size is None else max(1, int(batch_size))
    # Short intents padded to the longest text of an unsorted batch of 64 cost about twice the FLOPs.
    lengths = np.array([len(t) for t in texts], dtype=np.int64)
    order = np.argsort(lengths, kind="stable") if step > 1 else np.arange(len(texts))
    proba = np.empty((len(texts), len(labels)), dtype=np.float64)
    lat = np.empty(len(texts), dtype=np.float64)
    own = getattr(policy, "predict_proba_with_latency", None)
    for start in range(0, len(texts), step):
        rows = order[start : start + step]
        chunk = [texts[i] for i in rows]
        t0 = time.perf_counter()
        if own is not None:
            out, chunk_lat = own(chunk)
            lat[rows] = np.asarray(chunk_lat, dtype=np.float64)
        else:
            out = policy.predict_proba(chunk)
            lat[rows] = (time.perf_counter() - t0) * 1000.0 / len(chunk)
        arr = np.asarray(out, dtype=np.float64)
        if arr.shape != (len(chunk), len(labels)):
            raise GoldenError(
                f"predict_proba returned shape {arr.shape} for {len(chunk)} texts and {len(labels)} labels"
            )
        proba[rows] = arr
        if progress is not None:
            progress(start + len(chunk))
    return evaluate_predictions(
        golden,
        labels,
        proba,
        lat if np.all(np.isfinite(lat)) else None,  # a policy may not know its latency (NaN)
        policy=str(name or getattr(policy, "name", None) or type(policy).__name__),
        n_bins=n_bins,
    )


__all__ = [
    "ClassMetrics",
    "GoldenReport",
    "GroupAccuracy",
    "Misclassified",
    "ProbabilisticPolicy",
    "ReliabilityBin",
    "accuracy",
    "brier_score",
    "confusion_matrix",
    "evaluate_golden",
    "evaluate_predictions",
    "expected_calibration_error",
    "latency_percentiles",
    "per_class_metrics",
    "reliability_bins",
]
