"""Reward model: MiniLM embeddings of (prompt, answer) + logistic regression → P(good answer).

Features of one (prompt, answer) pair are ``[e_p, e_a, e_p ⊙ e_a]`` (shape (3·384,)), the sentence
embeddings of the prompt and the answer and their element-wise product, so the classifier can learn
both what a good answer looks like and how well it fits its prompt (the product term is the usual
interaction feature of SBERT-style pair classifiers; Reimers & Gurevych, 2019, §3).

A rating above ``threshold`` is "good" (1), else "poor" (0). Training refuses fewer than
``min_samples`` ratings, splits train/test stratified by class, balances classes, and reports
accuracy, ROC AUC and a classification report on the held-out part. The artifact is a folder with
``coef.npz`` (coefficients, intercept) and ``meta.json``: no pickle, loading runs no code.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from rewardloop.rewards.functions import RewardError
from rewardloop.rewards.logged_data import RatedData, rated_from_batch
from rewardloop.types import DecisionBatch
from rewardloop.types.history import MetricsRecorder

ARTIFACT_KIND = "embedding_lr"
FORMAT_VERSION = 1


class Encoder(Protocol):
    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]: ...


class NotEnoughDataError(RewardError):
    """Fewer training samples (or classes) than the model needs; the message says how many."""


def _default_encoder() -> Encoder:
    from rewardloop.encoders import default_encoder

    return default_encoder()


def pair_features(
    encoder: Encoder, prompts: Sequence[str], answers: Sequence[str]
) -> npt.NDArray[np.float32]:
    """``[e_p, e_a, e_p ⊙ e_a]`` for each pair, shape (n_pairs, 3·dim).

    Prompts are often repeated (one prompt, many answers): each distinct prompt is encoded once.
    """
    if len(prompts) != len(answers):
        raise RewardError(f"answers: {len(answers)} answers for {len(prompts)} prompts")
    unique = list(dict.fromkeys(prompts))
    ep_unique = encoder.encode(unique)  # (n_unique, dim)
    index = {p: i for i, p in enumerate(unique)}
    ep = ep_unique[[index[p] for p in prompts]]  # (n, dim)
    ea = encoder.encode(list(answers))  # (n, dim)
    return np.hstack([ep, ea, ep * ea]).astype(np.float32, copy=False)


def _history(metrics: dict[str, float]) -> list[dict[str, float]]:
    """One history row: sizes under ``train/``, held-out figures under ``eval/``."""
    recorder = MetricsRecorder()
    for key, value in metrics.items():
        recorder.record(key if key.startswith("n_") or key == "pos_rate" else f"eval/{key}", value)
    recorder.dump(1)
    return recorder.history


class EmbeddingRewardModel:
    """P(good | prompt, answer) from MiniLM embeddings and a class-balanced logistic regression.

    Parameters
    ----------
    threshold : float, default 0.0
        A rating strictly above it is "good". State it on the rating's own scale (VADER: [-4, 4]).
    min_samples : int, default 50
        ``fit`` refuses fewer ratings than this.
    test_size : float, default 0.2
        Held-out share for the reported metrics (stratified by class); 0 trains on everything.
    C : float, default 1.0
        Inverse L2 regularisation strength of the logistic regression.
    class_weight : {"balanced", None}, default "balanced"
        "balanced" weighs classes inversely to their frequency.
    random_state : int, default 0
        Seed of the split and the solver.
    encoder : object with ``encode(texts) -> (n, dim)``, optional
        Defaults to the shared MiniLM encoder (loaded on first use).

    Attributes
    ----------
    coef_ : ndarray of shape (3·dim,)
    intercept_ : float
    metrics_ : dict
        ``accuracy``, ``roc_auc`` (held-out), ``n_train``, ``n_test``, ``pos_rate``, ``fit_seconds``.
    history_ : list of dict
        One row: ``train/n_train``, ``train/pos_rate``, ``eval/accuracy``, ``eval/roc_auc``, ...
    report_ : str
        scikit-learn's classification report on the held-out part.
    test_index_ : ndarray of shape (n_test,)
        Indices of the held-out samples (for per-group metrics).

    Examples
    --------
    >>> rm = EmbeddingRewardModel(threshold=0.0, min_samples=4, test_size=0)   # doctest: +SKIP
    >>> rm.fit(["q"] * 4, ["great", "awful", "lovely", "terrible"], [2, -2, 3, -3])  # doctest: +SKIP
    >>> rm.score("q", ["wonderful", "dreadful"])   # doctest: +SKIP
    array([0.7..., 0.2...])
    """

    kind = ARTIFACT_KIND
    #: The learner contract (``rewardloop.learners.base.Learner``): rated answers, no starting policy.
    name = "embedding"
    needs_rewards = True
    needs_policy = False
    reads_texts = True

    @staticmethod
    def data_from_batch(batch: DecisionBatch, spec: Any = None) -> RatedData:
        """Rated (prompt, answer) pairs from reranker decisions with a compiled reward."""
        return rated_from_batch(batch)

    def __init__(
        self,
        threshold: float = 0.0,
        min_samples: int = 50,
        test_size: float = 0.2,
        C: float = 1.0,
        class_weight: str | None = "balanced",
        random_state: int = 0,
        encoder: Encoder | None = None,
    ) -> None:
        self.threshold = threshold
        self.min_samples = min_samples
        self.test_size = test_size
        self.C = C
        self.class_weight = class_weight
        self.random_state = random_state
        self.encoder = encoder

    # ------------------------------------------------------------------------------------ training

    def _encoder(self) -> Encoder:
        if self.encoder is None:
            self.encoder = _default_encoder()
        return self.encoder

    def fit(
        self,
        prompts: Sequence[str] | RatedData,
        answers: Sequence[str] | None = None,
        ratings: npt.ArrayLike | None = None,
        sample_weight: npt.ArrayLike | None = None,
        *,
        policy: Any = None,
    ) -> EmbeddingRewardModel:
        """Learn P(rating > threshold) from rated (prompt, answer) pairs.

        Parameters
        ----------
        prompts, answers : sequence of str, length n_samples (or a RatedData as ``prompts``)
        ratings : array of shape (n_samples,)
        sample_weight : array of shape (n_samples,), optional
            E.g. rater authority; multiplies the class-balancing weight.
        policy : ignored
            The learner contract's starting policy; a reward model always fits from scratch.
        """
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import train_test_split

        if isinstance(prompts, RatedData):
            prompts, answers, ratings, sample_weight = prompts.as_arrays(sample_weight)
        if answers is None or ratings is None:
            raise RewardError("ratings: give prompts, answers and ratings (or a RatedData)")
        y_raw = np.asarray(ratings, dtype=np.float64)
        n = y_raw.size
        if len(prompts) != n or len(answers) != n:
            raise RewardError(f"ratings: {n} ratings for {len(prompts)} prompts and {len(answers)} answers")
        if n < self.min_samples:
            raise NotEnoughDataError(
                f"the reward model needs at least {self.min_samples} rated samples (min_samples); it has {n}"
            )
        if not np.all(np.isfinite(y_raw)):
            bad = int(np.flatnonzero(~np.isfinite(y_raw))[0])
            raise RewardError(f"ratings: non-finite value at index {bad}")
        w = np.ones(n) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
        if w.shape != (n,) or not np.all(np.isfinite(w)) or np.any(w < 0):
            raise RewardError("sample_weight: must be n_samples finite numbers >= 0")
        y = (y_raw > self.threshold).astype(np.int64)  # (n,)
        counts = np.bincount(y, minlength=2)
        if counts.min() < 2:
            raise NotEnoughDataError(
                f"the reward model needs at least 2 good and 2 poor samples at threshold {self.threshold:g}; "
                f"it has {counts[1]} good and {counts[0]} poor"
            )
        start = time.perf_counter()
        X = pair_features(self._encoder(), prompts, answers)  # (n, 3·dim)
        idx = np.arange(n)
        if self.test_size > 0:
            tr, te = train_test_split(
                idx, test_size=self.test_size, stratify=y, random_state=self.random_state
            )
        else:
            tr, te = idx, idx[:0]
        clf = LogisticRegression(
            C=self.C, class_weight=self.class_weight, max_iter=1000, random_state=self.random_state
        )
        clf.fit(X[tr], y[tr], sample_weight=w[tr])
        self.coef_ = clf.coef_[0].astype(np.float64)  # (3·dim,)
        self.intercept_ = float(clf.intercept_[0])
        self.n_features_in_ = X.shape[1]
        self.test_index_ = te  # (n_test,): which samples the metrics were computed on
        self.metrics_: dict[str, float] = {
            "n_train": float(tr.size),
            "n_test": float(te.size),
            "pos_rate": float(y.mean()),
            "threshold": float(self.threshold),
        }
        self.report_ = self._evaluate_held_out(X[te], y[te]) if te.size else ""
        self.metrics_["fit_seconds"] = time.perf_counter() - start
        self.history_ = _history(self.metrics_)
        return self

    def _evaluate_held_out(self, X: npt.NDArray[np.float32], y: npt.NDArray[np.int64]) -> str:
        """Held-out accuracy and ROC AUC into ``metrics_``; returns the classification report."""
        from sklearn.metrics import accuracy_score, classification_report, roc_auc_score

        proba = self._proba(X)
        pred = (proba > 0.5).astype(np.int64)
        self.metrics_["accuracy"] = float(accuracy_score(y, pred))
        if len(np.unique(y)) == 2:
            self.metrics_["roc_auc"] = float(roc_auc_score(y, proba))
        report = classification_report(y, pred, labels=[0, 1], target_names=["poor", "good"], zero_division=0)
        return str(report)

    # ----------------------------------------------------------------------------------- inference

    def _check_fitted(self) -> None:
        if not hasattr(self, "coef_"):
            raise RewardError("this reward model is not fitted: call fit() or load() first")

    def _proba(self, X: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
        z = X.astype(np.float64) @ self.coef_ + self.intercept_  # (n,)
        proba: npt.NDArray[np.float64] = 1.0 / (1.0 + np.exp(-z))
        return proba

    def predict_proba(self, prompts: Sequence[str], answers: Sequence[str]) -> npt.NDArray[np.float64]:
        """P(good) for each pair, shape (n_pairs,)."""
        self._check_fitted()
        return self._proba(pair_features(self._encoder(), prompts, answers))

    def score(self, prompt: str, candidates: Sequence[str]) -> npt.NDArray[np.float64]:
        """P(good) of each candidate answer to one prompt, shape (n_candidates,)."""
        return score_candidates(self.predict_proba, prompt, candidates)

    # ---------------------------------------------------------------------------------- save/load

    def save(self, path: str | Path) -> Path:
        """Write ``coef.npz`` and ``meta.json`` into the folder ``path``; returns it."""
        self._check_fitted()
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        np.savez(folder / "coef.npz", coef=self.coef_, intercept=np.array([self.intercept_]))
        meta: dict[str, Any] = {
            "kind": ARTIFACT_KIND,
            "format_version": FORMAT_VERSION,
            "encoder": "all-MiniLM-L6-v2",
            "features": "[e_prompt, e_answer, e_prompt * e_answer]",
            "threshold": self.threshold,
            "params": {
                "min_samples": self.min_samples,
                "test_size": self.test_size,
                "C": self.C,
                "class_weight": self.class_weight,
                "random_state": self.random_state,
            },
            "metrics": self.metrics_,
        }
        (folder / "meta.json").write_text(json.dumps(meta, indent=2))
        return folder

    @classmethod
    def load(cls, path: str | Path, encoder: Encoder | None = None) -> EmbeddingRewardModel:
        """Read a model saved by :meth:`save` (``allow_pickle=False``: a file cannot run code)."""
        folder = Path(path)
        meta = read_meta(folder, ARTIFACT_KIND)
        with np.load(folder / "coef.npz", allow_pickle=False) as data:
            coef, intercept = data["coef"].astype(np.float64), float(data["intercept"][0])
        params = meta.get("params", {})
        model = cls(threshold=float(meta["threshold"]), encoder=encoder, **params)
        model.coef_, model.intercept_ = coef, intercept
        model.n_features_in_ = coef.size
        model.metrics_ = dict(meta.get("metrics", {}))
        model.report_ = ""
        return model


def score_candidates(
    reward: Callable[[list[str], list[str]], npt.NDArray[np.float64]], prompt: str, candidates: Sequence[str]
) -> npt.NDArray[np.float64]:
    """``reward(prompts, answers)`` of each candidate answer to one prompt, shape (n_candidates,)."""
    if isinstance(candidates, str):
        raise RewardError("candidates: a sequence of answers, not one string")
    if not candidates:
        return np.zeros(0)
    return reward([prompt] * len(candidates), list(candidates))


def read_meta(folder: Path, kind: str | None = None) -> dict[str, Any]:
    """The ``meta.json`` of a reward-model folder, checked to be of ``kind`` when given."""
    file = folder / "meta.json"
    if not file.exists():
        raise RewardError(f"{folder}: not a reward-model folder (no meta.json)")
    try:
        meta: dict[str, Any] = json.loads(file.read_text())
    except json.JSONDecodeError as err:
        raise RewardError(f"{file}: not valid JSON ({err})") from None
    if kind is not None and meta.get("kind") != kind:
        raise RewardError(f"{folder}: holds a {meta.get('kind')!r} model, expected {kind!r}")
    return meta


__all__ = [
    "ARTIFACT_KIND",
    "EmbeddingRewardModel",
    "NotEnoughDataError",
    "pair_features",
    "read_meta",
    "score_candidates",
]
