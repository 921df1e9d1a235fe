"""Small seeded tasks the learner tests share: random embeddings with a linear ground-truth label."""

from __future__ import annotations

import numpy as np

from rewardloop.learners.base import BanditData
from rewardloop.policies.classifier import ClassifierPolicy

DIM = 16
LABELS = ["a", "b", "c", "d"]


def linear_task(n: int, seed: int, dim: int = DIM, k: int = len(LABELS)) -> tuple[np.ndarray, np.ndarray]:
    """X of shape (n, dim), unit rows; y = argmax(X @ W) for a W fixed by the task (not by ``seed``)."""
    w = np.random.default_rng(12345).normal(size=(dim, k))
    X = np.random.default_rng(seed).normal(size=(n, dim))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    return X.astype(np.float32), (X @ w).argmax(axis=1)


def uniform_bandit_data(n: int = 512, seed: int = 0) -> tuple[BanditData, np.ndarray]:
    """Decisions logged by a uniform random policy (pscore 1/K), reward 1 when the action is right."""
    X, y = linear_task(n, seed)
    k = len(LABELS)
    action = np.random.default_rng(seed + 1).integers(0, k, n)
    data = BanditData(
        X=X,
        action=action.astype(np.int64),
        reward=(action == y).astype(np.float64),
        pscore=np.full(n, 1.0 / k),
        labels=list(LABELS),
    )
    return data, y


def accuracy(policy: ClassifierPolicy, X: np.ndarray, y: np.ndarray) -> float:
    return float((policy.predict_proba_embeddings(X).argmax(axis=1) == y).mean())


def fresh_policy(seed: int = 0) -> ClassifierPolicy:
    import torch

    from rewardloop.policies.classifier import make_head

    torch.manual_seed(seed)
    return ClassifierPolicy(LABELS, head=make_head(DIM, len(LABELS)), in_dim=DIM)
