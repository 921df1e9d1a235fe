"""Direct Preference Optimization for a classifier, from "label A is better than label B for this text".

Rafailov et al. (2023), "Direct Preference Optimization: Your Language Model is Secretly a Reward
Model". For a pair (x, y_w preferred, y_l rejected), with π_ref a frozen copy of the starting policy:

    L = −log σ(β · [(log π(y_w|x) − log π_ref(y_w|x)) − (log π(y_l|x) − log π_ref(y_l|x))])   (eq. 7)

minimised over the pairs (weighted by each pair's ``weight``, e.g. the rater's authority). β sets
how far π may move from π_ref: small β, weak pull towards the reference. The implicit reward of a
label is β · (log π(y|x) − log π_ref(y|x)); the metrics report the mean margin of those rewards and
the share of pairs where the preferred label's implicit reward is the larger (``pref_acc``).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Literal

import numpy as np
import numpy.typing as npt
import torch
from torch.nn import functional as F

from rewardloop.learners._common import (
    BatchLoss,
    LearnerDataError,
    MinibatchLearner,
    as_metrics,
)
from rewardloop.learners._math import log_probs
from rewardloop.learners.base import (
    AT_LEAST_ONE,
    POSITIVE,
    DataSpec,
    GradientClipConfig,
    LearnerConfig,
    hyperparameter,
)
from rewardloop.policies.classifier import ClassifierPolicy
from rewardloop.types import DecisionBatch


@dataclass
class DPOConfig(GradientClipConfig):
    """DPO hyperparameters (and the shared ones of :class:`GradientClipConfig`)."""

    lr: float = hyperparameter(5e-3, "Adam learning rate", POSITIVE)
    epochs: int = hyperparameter(10, "passes over the preference pairs", AT_LEAST_ONE)
    beta: float = hyperparameter(
        0.1, "DPO β: strength of the implicit KL pull towards the reference", POSITIVE
    )


@dataclass(frozen=True)
class PreferencePairs:
    """Preference pairs over a classifier's labels: for text i, ``chosen[i]`` beats ``rejected[i]``.

    Attributes
    ----------
    X : ndarray of shape (n_pairs, n_features)
        Embeddings of the texts.
    chosen, rejected : ndarray of shape (n_pairs,)
        Indices in ``labels`` of the preferred and the rejected label.
    labels : list of str
    weight : ndarray of shape (n_pairs,)
        Non-negative pair weights (e.g. rater authority); ones when not given.
    texts : list of str, optional
        The texts, kept for reports.
    skipped : dict of str to int
        Feedback rows that gave no pair, by reason.
    """

    X: npt.NDArray[np.float32]
    chosen: npt.NDArray[np.int64]
    rejected: npt.NDArray[np.int64]
    labels: list[str]
    weight: npt.NDArray[np.float64] = field(default_factory=lambda: np.ones(0))
    texts: list[str] | None = None
    skipped: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.chosen)
        if self.weight.size == 0 and n:
            object.__setattr__(self, "weight", np.ones(n))
        if self.X.ndim != 2 or self.X.shape[0] != n:
            raise LearnerDataError(f"X: expected shape ({n}, n_features), got {self.X.shape}")
        for name in ("rejected", "weight"):
            if getattr(self, name).shape != (n,):
                raise LearnerDataError(f"{name}: expected shape ({n},), got {getattr(self, name).shape}")
        k = len(self.labels)
        for name in ("chosen", "rejected"):
            bad = np.flatnonzero((getattr(self, name) < 0) | (getattr(self, name) >= k))
            if bad.size:
                raise LearnerDataError(
                    f"{name}: row {bad[0]} is {getattr(self, name)[bad[0]]}, not in [0, {k})"
                )
        same = np.flatnonzero(self.chosen == self.rejected)
        if same.size:
            raise LearnerDataError(f"rejected: row {same[0]} rejects the label it prefers")
        bad = np.flatnonzero(~(np.isfinite(self.weight) & (self.weight >= 0)))
        if bad.size:
            raise LearnerDataError(f"weight: row {bad[0]} is {self.weight[bad[0]]}, must be finite and >= 0")

    def __len__(self) -> int:
        return len(self.chosen)

    @classmethod
    def from_texts(
        cls,
        texts: Sequence[str],
        chosen: Sequence[str],
        rejected: Sequence[str],
        labels: Sequence[str],
        embed: Callable[[list[str]], npt.NDArray[np.float32]],
        weight: Sequence[float] | None = None,
    ) -> PreferencePairs:
        """Pairs from texts and label names; an unknown label is refused with its row."""
        index = {label: i for i, label in enumerate(labels)}
        idx: dict[str, list[int]] = {"chosen": [], "rejected": []}
        for name, values in (("chosen", chosen), ("rejected", rejected)):
            if len(values) != len(texts):
                raise LearnerDataError(f"{name}: {len(values)} labels for {len(texts)} texts")
            for row, label in enumerate(values):
                if label not in index:
                    raise LearnerDataError(f"{name}: row {row} label {label!r} is not a label of this policy")
                idx[name].append(index[label])
        return cls(
            X=embed(list(texts)),
            chosen=np.asarray(idx["chosen"], dtype=np.int64),
            rejected=np.asarray(idx["rejected"], dtype=np.int64),
            labels=list(labels),
            weight=np.asarray(weight if weight is not None else np.ones(len(texts)), dtype=np.float64),
            texts=list(texts),
        )


def pairs_from_batch(
    batch: DecisionBatch,
    labels: Sequence[str],
    embed: Callable[[list[str]], npt.NDArray[np.float32]],
    unknown_labels: Literal["raise", "skip"] = "raise",
) -> PreferencePairs:
    """Preference pairs from stored feedback; each pair is weighted by its rater's authority.

    - ``preference`` feedback: ``preferred`` over ``rejected`` (both must be labels);
    - ``correction`` feedback: the corrected ``label`` over the decision's own action (when they differ).

    Other feedback gives no pair. A label that is not one of ``labels`` is refused with the decision id,
    or with ``unknown_labels="skip"`` (what training does) skipped and counted in ``skipped``.
    """
    index = {label: i for i, label in enumerate(labels)}
    texts: list[str] = []
    chosen: list[int] = []
    rejected: list[int] = []
    weight: list[float] = []
    skipped: dict[str, int] = {}
    for d in batch.decisions:
        for fb in batch.feedback.get(d.id, []):
            if fb.kind == "preference":
                pair = (fb.preferred, fb.rejected)
            elif fb.kind == "correction" and fb.label != d.action:
                pair = (fb.label, d.action)
            else:
                continue
            bad = [
                (n, lab) for n, lab in zip(("preferred", "rejected"), pair, strict=True) if lab not in index
            ]
            if bad and unknown_labels == "skip":
                skipped["label not a label of the policy"] = (
                    skipped.get("label not a label of the policy", 0) + 1
                )
                continue
            if bad:
                name, label = bad[0]
                raise LearnerDataError(
                    f"decision {d.id}: {name} label {label!r} is not a label of this policy"
                )
            texts.append(d.text or "")
            chosen.append(index[str(pair[0])])
            rejected.append(index[str(pair[1])])
            weight.append(fb.authority)
    return PreferencePairs(
        X=embed(texts) if texts else np.zeros((0, 0), np.float32),
        chosen=np.asarray(chosen, dtype=np.int64),
        rejected=np.asarray(rejected, dtype=np.int64),
        labels=list(labels),
        weight=np.asarray(weight, dtype=np.float64),
        texts=texts,
        skipped=skipped,
    )


def dpo_loss(
    logits: torch.Tensor,
    ref_logits: torch.Tensor,
    chosen: torch.Tensor,
    rejected: torch.Tensor,
    beta: float,
    weight: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The weighted mean DPO loss over a minibatch of pairs, and its metrics.

    Parameters
    ----------
    logits, ref_logits : tensors of shape (B, K)
        The trained policy's and the frozen reference's logits for the pairs' texts.
    chosen, rejected : tensors of shape (B,)
    beta : float
    weight : tensor of shape (B,), optional
    """
    chosen_reward = log_probs(logits, chosen) - log_probs(ref_logits, chosen)  # (B,)
    rejected_reward = log_probs(logits, rejected) - log_probs(ref_logits, rejected)  # (B,)
    margin = beta * (chosen_reward - rejected_reward)  # (B,)
    per_pair = -F.logsigmoid(margin)  # eq. 7
    w = torch.ones_like(per_pair) if weight is None else weight
    loss = (w * per_pair).sum() / w.sum().clamp(min=1e-12)
    metrics = as_metrics(loss=loss, reward_margin=margin.mean(), pref_acc=(margin > 0).float().mean())
    return loss, metrics


class DPO(MinibatchLearner[DPOConfig, PreferencePairs]):
    """DPO on label preference pairs, against a frozen copy of the starting policy.

    ``fit(pairs, policy)`` returns a new fitted policy; ``policy`` is not changed and serves as π_ref.

    Attributes
    ----------
    history_ : list of dict
        Metrics of each step (``loss``, ``reward_margin``, ``pref_acc``).

    Examples
    --------
    >>> import numpy as np
    >>> pairs = PreferencePairs(np.eye(2, dtype="float32"), np.array([0, 1]), np.array([1, 0]), ["a", "b"])
    >>> _ = torch.manual_seed(0)
    >>> policy = ClassifierPolicy(["a", "b"], in_dim=2)
    >>> fitted = DPO(DPOConfig(epochs=200, beta=1.0)).fit(pairs, policy)
    >>> fitted.predict_proba_embeddings(np.eye(2, dtype="float32")).argmax(axis=1).tolist()
    [0, 1]
    """

    name: ClassVar[str] = "dpo"
    config_class: ClassVar[type[LearnerConfig]] = DPOConfig
    needs_rewards: ClassVar[bool] = False  # learns from preference and correction feedback

    @staticmethod
    def data_from_batch(batch: DecisionBatch, spec: DataSpec, /) -> PreferencePairs:
        """The pairs ``fit`` takes, from a batch read with its feedback (see :func:`pairs_from_batch`)."""
        if spec.labels is None or spec.embed is None:
            raise ValueError("data: DPO needs the policy's labels and encoder (training.init_from)")
        return pairs_from_batch(batch, spec.labels, spec.embed, unknown_labels="skip")

    def _check_data(self, data: PreferencePairs, policy: ClassifierPolicy) -> None:
        if len(data) == 0:
            raise LearnerDataError("pairs: no preference pairs to learn from")
        if list(data.labels) != list(policy.labels):
            raise LearnerDataError("labels: the pairs' labels differ from the policy's (same order needed)")
        if data.X.shape[1] != policy.in_dim:
            raise LearnerDataError(
                f"X: {data.X.shape[1]} features, but the policy's head takes {policy.in_dim}"
            )

    def _objective(
        self, pairs: PreferencePairs, fitted: ClassifierPolicy
    ) -> tuple[BatchLoss, list[torch.nn.Module]]:
        cfg = self.config
        head = fitted.head
        reference = copy.deepcopy(head).eval()  # π_ref: frozen, the starting policy
        X = torch.as_tensor(np.asarray(pairs.X, dtype=np.float32))  # (n, d)
        chosen = torch.as_tensor(pairs.chosen, dtype=torch.int64)
        rejected = torch.as_tensor(pairs.rejected, dtype=torch.int64)
        weight = torch.as_tensor(pairs.weight, dtype=torch.float32)
        with torch.no_grad():
            ref_logits = reference(X) / fitted.temperature  # (n, K), computed once

        def batch_loss(idx: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
            logits = head(X[idx]) / fitted.temperature  # (B, K)
            return dpo_loss(logits, ref_logits[idx], chosen[idx], rejected[idx], cfg.beta, weight[idx])

        return batch_loss, [head]
