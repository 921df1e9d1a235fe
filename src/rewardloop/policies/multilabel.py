"""The set policy: text → a subset of a label space, decided label by label.

A linear head on the shared MiniLM encoder gives each label ``j`` a probability ``p_j = σ(z_j)`` (B, L);
a threshold ``t_j`` per label, fitted on validation data (:meth:`MultiLabelPolicy.fit_thresholds`),
decides it. The served per-label inclusion probability ``q_j`` comes from the one
:class:`~rewardloop.policies.contract.Exploration` of every policy, applied to each label as a two-action
choice (out, in) with the threshold-shifted score ``s_j = σ(z_j − logit t_j)`` (so ``p_j = t_j`` is the
even split): greedy takes ``s_j > 0.5`` (``q_j ∈ {0, 1}``, propensity 1), ε-greedy
``q_j = (1 − ε)·1[s_j > 0.5] + ε/2``, sample ``q_j = s_j`` (tempered). Each label is then drawn
independently, so the logged set's propensity is ``Π q_j · Π (1 − q_j)`` (:mod:`rewardloop.types.sets`).

:class:`CategoryAndActions` composes a classifier (the category) and a set policy (the actions) into one
decision: the classifier's decision carrying the set beside its label.

Saved as ``head.safetensors`` + ``multilabel.json``; a composition as ``category/`` + ``actions/`` +
``composite.json``. Loading runs no code.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
from torch import nn

from rewardloop.encoders import EMBEDDING_DIM, MiniLMEncoder
from rewardloop.policies.classifier import ClassifierPolicy
from rewardloop.policies.contract import DecisionContext, Exploration, PolicyInputError
from rewardloop.policies.encoder_head import EncoderHeadPolicy
from rewardloop.types import Decision, set_decision_fields

FloatArray = npt.NDArray[np.float64]


def sigmoid(z: FloatArray) -> FloatArray:
    out: FloatArray = 1.0 / (1.0 + np.exp(-z))
    return out


def logit(p: FloatArray) -> FloatArray:
    p = np.clip(p, 1e-12, 1 - 1e-12)
    out: FloatArray = np.log(p) - np.log1p(-p)
    return out


def best_threshold(p: FloatArray, y: FloatArray, grid: FloatArray) -> float:
    """The threshold of ``grid`` with the highest F1 of ``p >= t`` against ``y`` (ties: the lowest);
    0.5 when ``y`` has no positive (F1 is undefined there)."""
    if not (y > 0.5).any():
        return 0.5
    pos = y > 0.5
    pred = p[None, :] >= grid[:, None]  # (G, n)
    tp = (pred & pos).sum(axis=1)
    f1 = 2 * tp / (pred.sum(axis=1) + pos.sum())
    return float(grid[int(np.argmax(f1))])


class MultiLabelPolicy(EncoderHeadPolicy):
    """Decide a set of labels for a text (per-label sigmoid head, one threshold per label).

    Parameters
    ----------
    labels : sequence of str
        The label space, in the order of the head's outputs.
    head : torch.nn.Module, optional
        Maps embeddings (B, in_dim) to logits (B, L); default a fresh linear head.
    thresholds : sequence of float, optional
        One per label, in (0, 1); default 0.5.
    encoder, name, version, in_dim
        As :class:`~rewardloop.policies.classifier.ClassifierPolicy`.
    exploration : Exploration, optional
        How each label is drawn (default ε-greedy, ε = 0.1), a serving setting, not saved.

    Examples
    --------
    >>> policy = MultiLabelPolicy(["area", "name"], in_dim=4)
    >>> proba = policy.predict_proba_embeddings(np.eye(2, 4, dtype=np.float32))
    >>> proba.shape
    (2, 2)
    """

    kind = "set"
    meta_name = "multilabel.json"
    folder_what = "a set policy"

    def __init__(
        self,
        labels: Sequence[str],
        head: nn.Module | None = None,
        thresholds: Sequence[float] | None = None,
        encoder: MiniLMEncoder | None = None,
        name: str = "set",
        version: str = "0",
        in_dim: int = EMBEDDING_DIM,
        exploration: Exploration | None = None,
    ) -> None:
        if not labels or len(set(labels)) != len(labels):
            raise ValueError("labels: a set policy needs at least one label, none repeated")
        t = np.full(len(labels), 0.5) if thresholds is None else np.asarray(thresholds, dtype=np.float64)
        if t.shape != (len(labels),) or not ((t > 0) & (t < 1)).all():
            raise ValueError(f"thresholds: need one per label, each in (0, 1); got {t.tolist()}")
        super().__init__(
            labels,
            head,
            lambda: nn.Linear(in_dim, len(labels)),
            encoder,
            name,
            version,
            in_dim,
            exploration,
        )
        self.thresholds = t

    def predict_proba_embeddings(self, X: npt.NDArray[np.float32]) -> FloatArray:
        """``p_j = σ(z_j)`` per label, shape (n, L)."""
        return sigmoid(self.raw_logits_embeddings(X))

    def predict_proba(self, texts: Sequence[str]) -> FloatArray:
        return self.predict_proba_embeddings(self.embed(texts))

    def predict_embeddings(self, X: npt.NDArray[np.float32]) -> npt.NDArray[np.bool_]:
        """The thresholded sets as a boolean matrix (n, L)."""
        out: npt.NDArray[np.bool_] = self.predict_proba_embeddings(X) >= self.thresholds
        return out

    def predict(self, texts: Sequence[str]) -> list[tuple[str, ...]]:
        return [
            tuple(np.asarray(self.labels)[row].tolist()) for row in self.predict_embeddings(self.embed(texts))
        ]

    def fit_thresholds(
        self, X_val: npt.NDArray[np.float32], Y_val: npt.NDArray[np.float64], grid: int = 19
    ) -> MultiLabelPolicy:
        """Per label, the threshold in ``{0.05, 0.10, ..., 0.95}`` (``grid`` points) with the best F1 on
        held-out embeddings ``X_val`` (n, in_dim) and 0/1 targets ``Y_val`` (n, L); returns self."""
        Y = np.asarray(Y_val, dtype=np.float64)
        if Y.shape != (len(X_val), self.n_labels):
            raise ValueError(f"Y_val: shape {Y.shape}, expected ({len(X_val)}, {self.n_labels})")
        p = self.predict_proba_embeddings(X_val)
        points = np.linspace(0.05, 0.95, grid)
        self.thresholds = np.array([best_threshold(p[:, j], Y[:, j], points) for j in range(self.n_labels)])
        return self

    def inclusion_probs(self, proba: FloatArray) -> FloatArray:
        """The served per-label inclusion probabilities ``q`` (n, L) for model probabilities (n, L)."""
        s = sigmoid(logit(proba) - logit(self.thresholds))  # (n, L): 0.5 at the threshold
        two = np.stack([1.0 - s, s], axis=-1).reshape(-1, 2)  # (n·L, 2): (out, in)
        q: FloatArray = self.exploration.action_dist(two)[:, 1].reshape(proba.shape)
        return q

    def decide(self, context: DecisionContext, rng: np.random.Generator) -> Decision:
        """Decide a set for ``context.text`` (kind ``"set"``), each label drawn from ``q_j`` with ``rng``."""
        text = context.require_text()
        start = time.perf_counter()
        proba = self.predict_proba([text])  # (1, L)
        q = self.inclusion_probs(proba)[0]
        chosen = [
            label for label, qj, u in zip(self.labels, q, rng.random(self.n_labels), strict=True) if u < qj
        ]
        latency = (time.perf_counter() - start) * 1000.0
        inside = np.isin(self.labels, chosen)
        confidence = float(np.mean(np.where(inside, proba[0], 1.0 - proba[0])))
        return Decision(
            policy=self.name,
            policy_version=self.version,
            kind="set",
            confidence=confidence,
            latency_ms=latency,
            text=text,
            metadata=dict(context.metadata),
            **set_decision_fields(self.labels, chosen, q.tolist()),
        )

    def save(self, path: str | Path) -> Path:
        """Write ``head.safetensors`` and ``multilabel.json`` into the folder ``path``."""
        return self.save_head(path, {"thresholds": self.thresholds.tolist()})

    @classmethod
    def load(
        cls, path: str | Path, encoder: MiniLMEncoder | None = None, exploration: Exploration | None = None
    ) -> MultiLabelPolicy:
        folder = Path(path)
        meta, saved = cls.read_head(folder, lambda meta: nn.Linear(meta["in_dim"], len(meta["labels"])))
        return cls(**saved, thresholds=meta["thresholds"], encoder=encoder, exploration=exploration)


class CategoryAndActions:
    """A category and a set of actions in one decision: the classifier's decision, carrying the set
    policy's set (``label_space``, ``chosen_set``, ``label_probs``) beside its label.

    The joint propensity is ``pscore · set_pscore``; both are logged, so each part is evaluated offline
    on its own.
    """

    kind = "category_actions"

    def __init__(self, category: ClassifierPolicy, actions: MultiLabelPolicy) -> None:
        self.category = category
        self.actions = actions

    def warm(self) -> None:
        self.category.warm()
        self.actions.warm()

    def decide(self, context: DecisionContext, rng: np.random.Generator) -> Decision:
        label = self.category.decide(context, rng)
        chosen = self.actions.decide(context, rng)
        return dataclasses.replace(
            label,
            latency_ms=(label.latency_ms or 0.0) + (chosen.latency_ms or 0.0),
            label_space=chosen.label_space,
            chosen_set=chosen.chosen_set,
            label_probs=chosen.label_probs,
        )

    def save(self, path: str | Path) -> Path:
        folder = Path(path)
        self.category.save(folder / "category")
        self.actions.save(folder / "actions")
        (folder / "composite.json").write_text(
            json.dumps({"kind": self.kind, "parts": ["category", "actions"]})
        )
        return folder

    @classmethod
    def load(cls, path: str | Path, exploration: Exploration | None = None) -> CategoryAndActions:
        folder = Path(path)
        if not (folder / "composite.json").is_file():
            raise PolicyInputError("path", f"{folder}: not a category + actions folder (no composite.json)")
        category = ClassifierPolicy.load(folder / "category", exploration=exploration)
        actions = MultiLabelPolicy.load(
            folder / "actions", encoder=category._encoder, exploration=exploration
        )
        return cls(category, actions)


__all__ = ["CategoryAndActions", "MultiLabelPolicy", "best_threshold", "logit", "sigmoid"]
