"""Learners of the set policy (:class:`~rewardloop.policies.multilabel.MultiLabelPolicy`).

- :class:`SetSupervisedLearner` (``set_supervised``): per-label binary cross-entropy with the raters'
  authority as weights, then one threshold per label fitted on a held-out share (best F1).
- :class:`SetBanditLearner` (``set_bandit``): improves a trained set policy from the logged sets alone,
  label by label: each label's logged state ``z ∈ {0, 1}`` was drawn with propensity ``μ(z|x)`` (the
  decision's ``label_probs``), earned the per-label reward ``r = −missed·(1−z)·y − unnecessary·z·(1−y)``
  (the spec's penalties, ``y`` the raters' target), and the head is moved along the importance-weighted
  policy gradient ``∇ Σ_ij w_ij (r_ij − b_j) log π_θ(z_ij|x_i)`` with ``w = min(π_θ/μ, M)``
  (Swaminathan & Joachims 2015, counterfactual risk minimisation, per label).

Both read their data from the store's set feedback with :func:`set_data_from_batch` (the raters'
judgements of :func:`rewardloop.rewards.sets.judgements`): a label's target is the authority-weighted
share of raters who hold it right. Read top to bottom: data, configs, losses, then ``fit()``.
"""

from __future__ import annotations

import copy
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar, cast

import numpy as np
import numpy.typing as npt
import torch
from torch.nn import functional as F

from rewardloop.learners.base import (
    ConfiguredLearner,
    DataSpec,
    LearnerConfig,
    LearnerConfigError,
    ProgressCallback,
    checked_config,
)
from rewardloop.policies.multilabel import MultiLabelPolicy, logit
from rewardloop.rewards.sets import judgements
from rewardloop.types import DecisionBatch
from rewardloop.types.history import MetricsRecorder

C = TypeVar("C", bound=LearnerConfig)

# ------------------------------------------------------------------------------------------------ data


@dataclass(frozen=True)
class SetData:
    """Logged sets with the raters' targets, aligned by row.

    Attributes
    ----------
    X : list of n texts, or ndarray of shape (n, d)
        Texts (embedded by the policy), or embeddings.
    Y : ndarray of shape (n, L)
        Targets in [0, 1]: the authority-weighted share of raters holding the label right.
    weight : ndarray of shape (n,)
        The raters' total authority per row.
    labels : list of str, length L
    logged : ndarray of shape (n, L)
        The logged state of each label (1: in the chosen set).
    mu : ndarray of shape (n, L)
        The logged inclusion probability of each label (``label_probs``).
    mask : ndarray of shape (n, L)
        1 where the decision's label space held the label (its target is known).
    """

    X: Any
    Y: npt.NDArray[np.float64]
    weight: npt.NDArray[np.float64]
    labels: list[str]
    logged: npt.NDArray[np.float64]
    mu: npt.NDArray[np.float64]
    mask: npt.NDArray[np.float64]
    decision_ids: list[str] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.Y)

    def concat(self, other: SetData) -> SetData:
        """These rows, then ``other``'s: e.g. a labelled seed set and the store's feedback. Both hold
        texts, or both embeddings, over the same labels."""
        if other.labels != self.labels:
            raise ValueError(f"labels: {other.labels} are not {self.labels}")
        texts = isinstance(self.X, list | tuple), isinstance(other.X, list | tuple)
        if texts[0] != texts[1]:
            raise ValueError("X: one part holds texts and the other embeddings")
        X = [*self.X, *other.X] if texts[0] else np.vstack([self.X, other.X])

        def cat(name: str) -> npt.NDArray[np.float64]:
            return np.concatenate([getattr(self, name), getattr(other, name)])

        skipped = {
            k: self.skipped.get(k, 0) + other.skipped.get(k, 0) for k in {*self.skipped, *other.skipped}
        }
        return SetData(X, cat("Y"), cat("weight"), self.labels, cat("logged"), cat("mu"), cat("mask"),
                       [*self._ids(), *other._ids()], skipped)  # fmt: skip

    def _ids(self) -> list[str]:
        """The rows' decision ids ("" for rows that are no logged decision)."""
        return list(self.decision_ids) if len(self.decision_ids) == len(self) else [""] * len(self)

    @classmethod
    def from_sets(
        cls,
        X: Any,
        truth: Sequence[Sequence[str]],
        labels: Sequence[str],
        weight: Sequence[float] | None = None,
    ) -> SetData:
        """Fully labelled data (no logging): the target sets ``truth`` of ``X``."""
        index = {label: j for j, label in enumerate(labels)}
        Y = np.zeros((len(truth), len(labels)))
        for i, row in enumerate(truth):
            Y[i, [index[label] for label in row]] = 1.0
        w = np.ones(len(truth)) if weight is None else np.asarray(weight, dtype=np.float64)
        ones = np.ones_like(Y)
        return cls(X, Y, w, list(labels), Y.copy(), ones, ones)


def _set_row(d: Any, rows: Any, index: dict[str, int], golden_weight: float) -> tuple[Any, ...] | None:
    """(targets, weight, logged, mu, mask) of one decision, or None when no rater judged its set."""
    chosen = d.chosen_set
    judged = [
        (t, a * (golden_weight if _golden(rows, ids) else 1.0)) for t, a, ids in judgements(chosen, rows)
    ]
    judged = [(t, a) for t, a in judged if a > 0]
    if not judged:
        return None
    L = len(index)
    y, logged, mu, mask = np.zeros(L), np.zeros(L), np.full(L, 0.5), np.zeros(L)
    total = sum(a for _, a in judged)
    for label, p in zip(d.label_space, d.label_probs, strict=True):
        j = index.get(label)
        if j is None:
            continue
        mask[j], mu[j] = 1.0, p
        logged[j] = float(label in chosen)
        y[j] = sum(a for t, a in judged if label in t) / total
    return y, total, logged, mu, mask


def _golden(rows: Any, ids: Sequence[str]) -> bool:
    return any(f.source == "golden" for f in rows if f.id in ids)


def set_data_from_batch(batch: DecisionBatch, spec: DataSpec) -> SetData:
    """The set learners' data: decisions carrying a set, with the raters' set feedback.

    ``spec.labels`` is the policy's label space (default: every label seen); ``spec.embed`` embeds the
    texts (else the policy does); ``spec.config.golden_weight`` scales golden-set raters.
    """
    seen = [d for d in batch if d.label_space is not None]
    labels = (
        list(spec.labels)
        if spec.labels is not None
        else sorted({lb for d in seen for lb in d.label_space or ()})
    )
    index = {label: j for j, label in enumerate(labels)}
    golden = spec.config.golden_weight if spec.config is not None else 1.0
    skipped: dict[str, int] = defaultdict(int)
    skipped["decision without a set"] = len(batch) - len(seen)
    texts, ids, parts = [], [], []
    for d in seen:
        if any(label not in index for label in d.label_space or ()):  # used, on the labels it shares
            skipped["set label not in the policy's labels (left out)"] += 1
        row = _set_row(d, batch.feedback.get(d.id, []), index, golden)
        if row is None:
            skipped["set without set feedback"] += 1
        elif not d.text:
            skipped["decision without text"] += 1
        else:
            texts.append(d.text)
            ids.append(d.id)
            parts.append(row)
    L = len(labels)
    cols = [
        np.array([p[k] for p in parts]).reshape(len(parts), -1) if parts else np.zeros((0, L))
        for k in range(5)
    ]
    X: Any = spec.embed(texts) if spec.embed is not None and texts else texts
    return SetData(X, cols[0], cols[1].reshape(-1), labels, cols[2], cols[3], cols[4], ids,
                   {k: v for k, v in skipped.items() if v})  # fmt: skip


# ---------------------------------------------------------------------------------------------- config


@dataclass
class SetSupervisedConfig(LearnerConfig):
    """Per-label BCE of a set policy's head over frozen embeddings."""

    lr: float = field(default=1e-2, metadata={"help": "Adam learning rate"})
    epochs: int = field(default=60, metadata={"help": "passes over the training data"})
    weight_decay: float = field(default=1e-4, metadata={"help": "L2 penalty (AdamW decoupled decay)"})
    warm_start: bool = field(default=True, metadata={"help": "continue from the given policy's head"})
    validation_fraction: float = field(
        default=0.2,
        metadata={"help": "held-out share (seeded) the per-label thresholds are fitted on; 0: keep"},
    )
    golden_weight: float = field(default=1.0, metadata={"help": "multiplies the authority of golden raters"})

    def validate(self) -> None:
        super().validate()
        if self.weight_decay < 0:
            raise LearnerConfigError(f"weight_decay: must be >= 0, got {self.weight_decay}")
        if not 0.0 <= self.validation_fraction < 1.0:
            raise LearnerConfigError(
                f"validation_fraction: must be in [0, 1), got {self.validation_fraction}"
            )
        if self.golden_weight < 0:
            raise LearnerConfigError(f"golden_weight: must be >= 0, got {self.golden_weight}")


@dataclass
class SetBanditConfig(LearnerConfig):
    """Per-label counterfactual risk minimisation from logged sets."""

    lr: float = field(default=5e-3, metadata={"help": "Adam learning rate"})
    epochs: int = field(default=30, metadata={"help": "passes over the logged sets"})
    missed_penalty: float = field(default=0.5, metadata={"help": "reward lost per missed label"})
    unnecessary_penalty: float = field(default=0.3, metadata={"help": "reward lost per unnecessary label"})
    max_importance_weight: float = field(
        default=10.0, metadata={"help": "clip importance weights π/μ at this value (bounds the variance)"}
    )
    golden_weight: float = field(default=1.0, metadata={"help": "multiplies the authority of golden raters"})

    def validate(self) -> None:
        super().validate()
        for key in ("missed_penalty", "unnecessary_penalty", "golden_weight"):
            if getattr(self, key) < 0:
                raise LearnerConfigError(f"{key}: must be >= 0, got {getattr(self, key)}")
        if not self.max_importance_weight >= 1.0:
            raise LearnerConfigError(f"max_importance_weight: must be >= 1, got {self.max_importance_weight}")


# ---------------------------------------------------------------------------------------------- losses


def weighted_bce(logits: torch.Tensor, y: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``Σ_ij w_ij · BCE(σ(z_ij), y_ij) / Σ_ij w_ij`` for logits, targets and weights of shape (B, L)."""
    per = F.binary_cross_entropy_with_logits(logits, y, reduction="none")  # (B, L)
    return (w * per).sum() / w.sum().clamp(min=1e-12)


def per_label_reward(
    logged: torch.Tensor, y: torch.Tensor, missed: float, unnecessary: float
) -> torch.Tensor:
    """``r = −missed·(1−z)·y − unnecessary·z·(1−y)`` of each logged state z, shape (B, L)."""
    return -missed * (1.0 - logged) * y - unnecessary * logged * (1.0 - y)


def crm_set_loss(
    logits: torch.Tensor,
    logged: torch.Tensor,
    mu: torch.Tensor,
    reward: torch.Tensor,
    mask: torch.Tensor,
    max_weight: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-label importance-weighted policy-gradient loss and the (B, L) importance weights.

    ``log π_θ(z|x) = z·log σ(s) + (1−z)·log(1−σ(s))`` with ``s`` the served logits (B, L);
    ``w = min(π_θ(z|x)/μ(z|x), M)`` without gradient; ``b_j`` the mean reward of label j in the batch;
    ``L = −Σ mask · w · (r − b) · log π_θ / Σ mask``.
    """
    logp = -F.binary_cross_entropy_with_logits(logits, logged, reduction="none")  # (B, L)
    mu_z = torch.where(logged > 0.5, mu, 1.0 - mu).clamp(min=1e-12)  # μ(z|x), (B, L)
    w = torch.exp(logp.detach() - torch.log(mu_z)).clamp(max=max_weight)
    b = (reward * mask).sum(0) / mask.sum(0).clamp(min=1.0)  # (L,)
    loss = -(mask * w * (reward - b) * logp).sum() / mask.sum().clamp(min=1.0)
    return loss, w


# ------------------------------------------------------------------------------------------------- fit


def _embeddings(policy: MultiLabelPolicy, X: Any) -> npt.NDArray[np.float32]:
    if isinstance(X, list | tuple):
        return policy.embed(list(X)) if X else np.zeros((0, policy.in_dim), np.float32)
    emb = np.asarray(X, dtype=np.float32)
    if emb.ndim != 2 or emb.shape[1] != policy.in_dim:
        raise ValueError(f"X: expected embeddings of shape (n, {policy.in_dim}), got {emb.shape}")
    return emb


def _start(
    data: SetData, policy: MultiLabelPolicy | None, warm: bool, seed: int
) -> tuple[MultiLabelPolicy, Any]:
    """A trainable copy of ``policy`` (or a fresh one over the data's labels, its head seeded) and its
    embeddings."""
    if len(data) == 0:
        raise ValueError("data: no logged sets with set feedback")
    if policy is not None and policy.labels != data.labels:
        raise ValueError(f"labels: the data's labels {data.labels} are not the policy's {policy.labels}")
    if policy is None:  # a fresh one: the embeddings' width, or the encoder's for texts
        given = data.X if isinstance(data.X, list | tuple) else np.asarray(data.X)
        policy = (
            MultiLabelPolicy(data.labels)
            if isinstance(given, list | tuple)
            else MultiLabelPolicy(data.labels, in_dim=given.shape[1])
        )
    base = policy
    emb = _embeddings(base, data.X)
    keep = warm and base.head_fitted
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        head = copy.deepcopy(base.head) if keep else torch.nn.Linear(base.in_dim, base.n_labels)
    fresh = MultiLabelPolicy(
        base.labels,
        head=head,
        thresholds=base.thresholds.tolist() if keep else None,
        encoder=base._encoder,
        name=base.name,
        version=base.version,
        in_dim=base.in_dim,
        exploration=base.exploration,
    )
    return fresh, emb


class _SetLearner(Generic[C]):
    """What both set learners share: the contract's class attributes, the config, the recorder and
    progress. ``config`` is the learner's own config class (None: its defaults)."""

    name: ClassVar[str]
    config_class: ClassVar[type[LearnerConfig]]
    needs_rewards: ClassVar[bool] = False
    reads_texts: ClassVar[bool] = False

    def __init__(self, config: C | None = None, progress: ProgressCallback | None = None) -> None:
        self.config: C = cast(C, checked_config(config, self.config_class))
        self.progress = progress

    @staticmethod
    def data_from_batch(batch: DecisionBatch, spec: DataSpec, /) -> SetData:
        return set_data_from_batch(batch, spec)

    def _step(
        self, recorder: MetricsRecorder, step: int, total: int, epoch: int, metrics: dict[str, float]
    ) -> None:
        recorder.record_many(metrics, epoch=epoch)
        recorder.dump(step)
        if self.progress is not None:
            self.progress(step, total, metrics)

    def _loop(self, cfg: LearnerConfig, policy: MultiLabelPolicy, n: int, batch_loss: Any) -> MetricsRecorder:
        """Seeded minibatch epochs of ``batch_loss(idx) -> (loss, metrics)`` on ``policy.head``."""
        recorder = MetricsRecorder()
        decay = float(getattr(cfg, "weight_decay", 0.0))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            opt = torch.optim.AdamW(policy.head.parameters(), lr=cfg.lr, weight_decay=decay)
            gen = torch.Generator().manual_seed(cfg.seed)
            total, step = -(-n // cfg.batch_size) * cfg.epochs, 0
            ckpt = cfg.checkpointer()
            policy.head.train()
            for epoch in range(cfg.epochs):
                order = torch.randperm(n, generator=gen)
                for start in range(0, n, cfg.batch_size):
                    loss, metrics = batch_loss(order[start : start + cfg.batch_size])
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    step += 1
                    self._step(recorder, step, total, epoch, {"loss": float(loss.detach()), **metrics})
                    ckpt.maybe_save(step, policy.save)
            policy.head.eval()
        return recorder


class SetSupervisedLearner(_SetLearner[SetSupervisedConfig]):
    """Fit a set policy's head by per-label BCE with authority weights; fit its thresholds on a held-out
    share.

    Examples
    --------
    >>> X = np.eye(4, 384, dtype=np.float32)
    >>> data = SetData.from_sets(X, [["a"], ["b"], ["a", "b"], []], ["a", "b"])
    >>> policy = SetSupervisedLearner(SetSupervisedConfig(validation_fraction=0.0)).fit(data)
    >>> policy.predict_embeddings(X).tolist()
    [[True, False], [False, True], [True, True], [False, False]]
    """

    name: ClassVar[str] = "set_supervised"
    config_class: ClassVar[type[LearnerConfig]] = SetSupervisedConfig
    needs_policy: ClassVar[bool] = False

    def fit(self, data: SetData, *, policy: MultiLabelPolicy | None = None) -> MultiLabelPolicy:
        cfg = self.config
        trained, emb = _start(data, policy, cfg.warm_start, cfg.seed)
        train, held = np.arange(len(data)), np.zeros(0, dtype=np.int64)
        n_val = round(cfg.validation_fraction * len(data))
        if 0 < n_val < len(data):
            perm = np.random.default_rng(cfg.seed).permutation(len(data))
            train, held = np.sort(perm[n_val:]), np.sort(perm[:n_val])
        X = torch.from_numpy(emb[train])
        Y = torch.from_numpy(data.Y[train]).float()
        W = torch.from_numpy(data.weight[train, None] * data.mask[train]).float()  # (n, L)

        def batch_loss(idx: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
            return weighted_bce(trained.head(X[idx]), Y[idx], W[idx]), {}

        recorder = self._loop(cfg, trained, len(train), batch_loss)
        if len(held):
            trained.fit_thresholds(emb[held], (data.Y[held] >= 0.5).astype(np.float64))
        self.policy_ = trained
        self.history_ = recorder.history
        self.n_samples_ = len(train)
        return trained


class SetBanditLearner(_SetLearner[SetBanditConfig]):
    """Improve a trained set policy from its logged sets by per-label counterfactual risk minimisation."""

    name: ClassVar[str] = "set_bandit"
    config_class: ClassVar[type[LearnerConfig]] = SetBanditConfig
    needs_policy: ClassVar[bool] = True

    def fit(self, data: SetData, *, policy: MultiLabelPolicy | None = None) -> MultiLabelPolicy:
        cfg = self.config
        if policy is None:
            raise ValueError("policy: the set_bandit learner improves a trained set policy; pass policy=")
        trained, emb = _start(data, policy, True, cfg.seed)
        X = torch.from_numpy(emb)
        shift = torch.from_numpy(logit(trained.thresholds)).float()  # served logits: z − logit t
        z, mu, mask = (torch.from_numpy(a).float() for a in (data.logged, data.mu, data.mask))
        r = per_label_reward(z, torch.from_numpy(data.Y).float(), cfg.missed_penalty, cfg.unnecessary_penalty)

        def batch_loss(idx: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
            loss, w = crm_set_loss(trained.head(X[idx]) - shift, z[idx], mu[idx], r[idx], mask[idx],
                                   cfg.max_importance_weight)  # fmt: skip
            return loss, {"importance_weight": float(w.mean())}

        recorder = self._loop(cfg, trained, len(data), batch_loss)
        self.policy_ = trained
        self.history_ = recorder.history
        self.n_samples_ = len(data)
        return trained


#: The set learners by name (as ``learners.LEARNERS`` for classifiers, ``ROUTERS`` for routers).
SET_LEARNERS: dict[str, type[ConfiguredLearner]] = {
    SetSupervisedLearner.name: SetSupervisedLearner,
    SetBanditLearner.name: SetBanditLearner,
}

__all__ = [
    "SET_LEARNERS",
    "SetBanditConfig",
    "SetBanditLearner",
    "SetData",
    "SetSupervisedConfig",
    "SetSupervisedLearner",
    "crm_set_loss",
    "per_label_reward",
    "set_data_from_batch",
    "weighted_bce",
]
