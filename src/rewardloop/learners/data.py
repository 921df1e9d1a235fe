"""Supervised examples from the store: label corrections and confirmations → (texts, labels, weights).

Which feedback says what the label of a logged decision is:

- a **correction** names the label outright (``feedback.label``);
- a **rating** or **implicit** signal at the top of its scale (e.g. thumbs up, 5 of 5) confirms that
  the chosen action was right, so the chosen action is the label (``use_confirmations``);
- anything else (a thumbs down, a middling rating, a preference) does not say which label is right
  and gives no example.

The rater's ``authority`` is the example's weight. Several raters naming the same label for one decision
add up; raters naming different labels give one example per label, each with its raters' total weight
(a soft, authority-weighted target for the cross-entropy). Golden-set feedback (``source="golden"``) is
scaled by ``golden_weight``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, Literal, TypeVar, cast

import numpy as np
import numpy.typing as npt

from rewardloop.learners.base import (
    NON_NEGATIVE,
    DataSpec,
    LearnerConfig,
    LearnerConfigError,
    ProgressCallback,
    checked_config,
    hyperparameter,
)
from rewardloop.policies.classifier import ClassifierPolicy
from rewardloop.types import DecisionBatch, Feedback

#: The skip reason of feedback naming a label the policy does not have.
UNKNOWN_LABEL = "label not a label of the policy"


@dataclass(frozen=True)
class LabelledData:
    """Texts with labels and sample weights, aligned (what the supervised learners read).

    Attributes
    ----------
    texts : list of str, length n
    labels : list of str, length n
    sample_weight : ndarray of shape (n,)
    decision_ids : list of str, length n
        Where each example came from (empty for data not from the store).
    skipped : dict of str to int
        Feedback rows that gave no example, by reason (for the dry run and the run record).
    """

    texts: list[str]
    labels: list[str]
    sample_weight: npt.NDArray[np.float64]
    decision_ids: list[str] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.texts)

    def label_counts(self) -> dict[str, int]:
        counts: dict[str, int] = defaultdict(int)
        for label in self.labels:
            counts[label] += 1
        return dict(sorted(counts.items()))


def _confirms(f: Feedback) -> bool:
    """A rating or implicit signal at the top of its scale: the chosen action was right."""
    if f.kind not in ("rating", "implicit") or f.value is None or f.scale is None:
        return False
    return bool(f.value >= f.scale[1])


def labelled_from_batch(
    batch: DecisionBatch,
    labels: Sequence[str] | None = None,
    use_confirmations: bool = True,
    golden_weight: float = 1.0,
    unknown_labels: Literal["raise", "skip"] = "raise",
) -> LabelledData:
    """Supervised examples from the feedback loaded in ``batch`` (``read_decisions(include_feedback=True)``).

    Parameters
    ----------
    batch : DecisionBatch
        Classifier decisions with their feedback.
    labels : sequence of str, optional
        The policy's labels. A correction naming another label raises ValueError with the feedback id,
        or with ``unknown_labels="skip"`` (what training does) is skipped and counted in ``skipped``.
    use_confirmations : bool
        Whether top-of-scale ratings make the chosen action a label.
    golden_weight : float
        Multiplies the authority of golden-set feedback.

    Examples
    --------
    >>> data = labelled_from_batch(read_decisions(store, include_feedback=True))  # doctest: +SKIP
    >>> data.texts[0], data.labels[0], data.sample_weight[0]                      # doctest: +SKIP
    ('turn on the lights', 'HassTurnOn', 1.0)
    """
    known = set(labels) if labels is not None else None
    texts: list[str] = []
    out_labels: list[str] = []
    weights: list[float] = []
    ids: list[str] = []
    skipped: dict[str, int] = defaultdict(int)
    for d in batch:
        per_label: dict[str, float] = {}
        for f in batch.feedback.get(d.id, []):
            if f.kind == "correction" and f.label is not None:
                label = f.label
            elif use_confirmations and _confirms(f):
                label = d.action
            else:
                skipped[f"{f.kind} without a label"] += 1
                continue
            if known is not None and label not in known:
                if unknown_labels == "raise":
                    raise ValueError(f"feedback {f.id}: label {label!r} is not a label of the policy")
                skipped[UNKNOWN_LABEL] += 1
                continue
            w = f.authority * (golden_weight if f.source == "golden" else 1.0)
            if w <= 0:
                skipped["zero authority"] += 1
                continue
            per_label[label] = per_label.get(label, 0.0) + w
        if per_label and not d.text:
            skipped["decision without text"] += len(per_label)
            continue
        for label, w in per_label.items():
            texts.append(d.text or "")
            out_labels.append(label)
            weights.append(w)
            ids.append(d.id)
    return LabelledData(texts, out_labels, np.asarray(weights, dtype=np.float64), ids, dict(skipped))


def labelled_for_learner(batch: DecisionBatch, spec: DataSpec) -> LabelledData:
    """``data_from_batch`` of the learners that train on labels (supervised, LoRA).

    ``spec.config`` carries ``use_confirmations`` and ``golden_weight``; ``spec.labels`` (or None) the
    label order. Feedback naming a label the policy does not have is skipped and counted.
    """
    return labelled_from_batch(
        batch,
        labels=spec.labels,
        use_confirmations=spec.config.use_confirmations if spec.config is not None else True,
        golden_weight=spec.config.golden_weight if spec.config is not None else 1.0,
        unknown_labels="skip",
    )


def unpack_labelled(X: Any, y: Any, sample_weight: Any) -> tuple[Any, Any, Any]:
    """``(X, y, sample_weight)`` of a label learner's ``fit``: a LabelledData as ``X`` carries all three."""
    if isinstance(X, LabelledData):
        y, sample_weight, X = X.labels, X.sample_weight, X.texts
    if y is None:
        raise ValueError("y: labels are required (or pass a LabelledData as X)")
    return X, y, sample_weight


def checked_weights(sample_weight: Any, n: int) -> npt.NDArray[np.float64]:
    """``sample_weight`` as n finite weights >= 0, not all 0 (None: ones); else a ValueError."""
    w = np.ones(n) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    if w.shape != (n,):
        raise ValueError(f"sample_weight: shape {w.shape}, expected ({n},)")
    if not np.all(np.isfinite(w)) or (w < 0).any() or w.sum() <= 0:
        raise ValueError("sample_weight: must be finite, >= 0 and not all 0")
    return w


def label_names(y: Sequence[Any], labels: Sequence[str] | None) -> list[str]:
    """The label order of a fresh policy: ``labels``, or the sorted distinct string labels of ``y``."""
    if labels is not None:
        return list(labels)
    if not all(isinstance(v, str) for v in y):
        raise ValueError("labels: give the label names when y holds indices")
    return sorted(set(y))


@dataclass
class LabelConfig(LearnerConfig):
    """The fields of the label learners (supervised, LoRA), and the shared ones of LearnerConfig."""

    hidden: int = hyperparameter(0, "hidden width of a fresh head (0: linear head)", NON_NEGATIVE)
    class_weight: str = hyperparameter(
        "none", "none, or balanced: weight each class by n / (K * n_class), as scikit-learn"
    )
    warm_start: bool = hyperparameter(True, "continue from the given policy's head (else start afresh)")
    use_confirmations: bool = hyperparameter(
        True, "from the store: top-of-scale ratings make the chosen action a label"
    )
    golden_weight: float = hyperparameter(
        1.0, "from the store: multiplies the authority of golden-set feedback", NON_NEGATIVE
    )

    def validate(self) -> None:
        super().validate()
        if self.class_weight not in ("none", "balanced"):
            raise LearnerConfigError(f"class_weight: must be none or balanced, got {self.class_weight!r}")


LC = TypeVar("LC", bound=LabelConfig)


class LabelLearner(ABC, Generic[LC]):
    """What the label learners (supervised, LoRA) share: they learn from corrections and
    confirmations (no compiled rewards), and may start from a fresh policy.

    ``config`` is the learner's own config class (None: its defaults; another class is refused);
    ``progress(step, total_steps, metrics)`` is called after each optimisation step.
    """

    config_class: ClassVar[type[LearnerConfig]]
    needs_rewards: ClassVar[bool] = False
    needs_policy: ClassVar[bool] = False

    def __init__(self, config: LearnerConfig | None = None, progress: ProgressCallback | None = None) -> None:
        self.config = cast(LC, checked_config(config, self.config_class))
        self.progress = progress

    @staticmethod
    def data_from_batch(batch: DecisionBatch, spec: DataSpec, /) -> LabelledData:
        """The examples it trains on: corrections and confirmations of a batch with feedback."""
        return labelled_for_learner(batch, spec)

    def fit(
        self,
        X: npt.NDArray[np.float32] | Sequence[str] | LabelledData,
        y: Sequence[str] | Sequence[int] | npt.NDArray[Any] | None = None,
        sample_weight: npt.NDArray[np.float64] | Sequence[float] | None = None,
        *,
        policy: ClassifierPolicy | None = None,
        labels: Sequence[str] | None = None,
    ) -> ClassifierPolicy:
        """Train and return the fitted policy (``policy`` is not changed).

        Parameters
        ----------
        X : array of shape (n, 384), sequence of n texts, or LabelledData
            Cached embeddings (the supervised learner) or texts; a LabelledData carries ``y`` and
            ``sample_weight`` itself.
        y : sequence of n labels (strings, or indices into ``labels``)
        sample_weight : array of shape (n,), optional
            Non-negative weights (e.g. rater authority); default 1.
        policy : ClassifierPolicy, optional
            Start from it: its labels, its encoder (LoRA: if fine-tuned already) and, with
            ``warm_start``, its head. A fresh one otherwise.
        labels : sequence of str, optional
            The label order of a fresh policy; default: the sorted distinct labels of ``y``.
        """
        X, y, sample_weight = unpack_labelled(X, y, sample_weight)
        return self._fit(X, list(np.asarray(y).tolist()), sample_weight, policy, labels)

    @abstractmethod
    def _fit(
        self, X: Any, y: list[Any], sample_weight: Any, policy: ClassifierPolicy | None, labels: Any
    ) -> ClassifierPolicy:
        """Train on the unpacked examples (``y`` a list); set ``policy_`` and ``history_``."""

    def _start(
        self, policy: ClassifierPolicy | None, y: list[Any], labels: Sequence[str] | None
    ) -> tuple[ClassifierPolicy, bool]:
        """(the policy to start from — ``policy``, or a fresh one —, whether to warm-start its head)."""
        warm = policy is not None and policy.head_fitted and self.config.warm_start
        if policy is None:
            policy = ClassifierPolicy(label_names(y, labels), hidden=self.config.hidden)
        return policy, bool(warm)


__all__ = [
    "LabelConfig",
    "LabelLearner",
    "LabelledData",
    "checked_weights",
    "label_names",
    "labelled_for_learner",
    "labelled_from_batch",
    "unpack_labelled",
]
