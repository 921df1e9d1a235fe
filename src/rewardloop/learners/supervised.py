"""Supervised cross-entropy on cached sentence embeddings: the classifier head of backend (a).

Labels come from label corrections and confirmed decisions (``learners.data``), weighted by the
raters' authority; or straight from a labelled set such as the Home Assistant intents seed.

Read top to bottom: the config, the loss, then ``fit()``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
import torch

from rewardloop.learners._common import MinibatchSGD, policy_like, seeded, start_head
from rewardloop.learners.base import (
    AT_LEAST_ONE,
    NON_NEGATIVE,
    POSITIVE,
    UNIT_BELOW_ONE,
    LearnerConfig,
    hyperparameter,
)
from rewardloop.learners.data import LabelConfig, LabelLearner, checked_weights
from rewardloop.policies.classifier import ClassifierPolicy

# ---------------------------------------------------------------------------------------------- config


@dataclass
class SupervisedConfig(LabelConfig):
    """Supervised training of a head over frozen MiniLM embeddings."""

    # A linear head on L2-normalised embeddings has small logits at first: a larger step than the
    # usual 1e-3 reaches a good fit in tens of epochs on a few hundred examples.
    lr: float = hyperparameter(1e-2, "Adam learning rate", POSITIVE)
    epochs: int = hyperparameter(40, "passes over the training data", AT_LEAST_ONE)
    dropout: float = hyperparameter(0.0, "dropout before the output layer (MLP head)", UNIT_BELOW_ONE)
    weight_decay: float = hyperparameter(1e-4, "L2 penalty (AdamW decoupled decay)", NON_NEGATIVE)
    label_smoothing: float = hyperparameter(0.0, "cross-entropy label smoothing in [0, 1)", UNIT_BELOW_ONE)
    calibration_fraction: float = hyperparameter(
        0.0, "hold out this share of the data (seeded) to fit the temperature on; 0: none", UNIT_BELOW_ONE
    )


# ------------------------------------------------------------------------------------------------ loss


def weighted_cross_entropy(
    logits: torch.Tensor, y: torch.Tensor, weight: torch.Tensor, label_smoothing: float = 0.0
) -> torch.Tensor:
    """Sample-weighted mean cross-entropy.

    ``L = Σ_i w_i · (−log softmax(z_i)[y_i]) / Σ_i w_i`` for logits ``z`` (B, K), labels ``y`` (B,) and
    weights ``w`` (B,). With label smoothing ε the target is ``(1 − ε)·onehot(y) + ε/K``.
    """
    per_sample = torch.nn.functional.cross_entropy(
        logits, y, reduction="none", label_smoothing=label_smoothing
    )  # (B,)
    return (weight * per_sample).sum() / weight.sum().clamp(min=1e-12)


def balanced_weights(y: npt.NDArray[np.int64], n_labels: int) -> npt.NDArray[np.float64]:
    """scikit-learn's ``class_weight="balanced"``: n / (K_present · count[y_i]) per sample, shape (n,)."""
    counts = np.bincount(y, minlength=n_labels).astype(np.float64)
    present = int((counts > 0).sum())
    result: npt.NDArray[np.float64] = len(y) / (present * counts[y])
    return result


def _calibration_split(
    cfg: SupervisedConfig, emb: Any, yi: Any, w: Any
) -> tuple[Any, Any, Any, tuple[Any, Any] | None]:
    """(train embeddings, labels, weights, held-out (embeddings, labels) or None)."""
    if not cfg.calibration_fraction > 0:
        return emb, yi, w, None
    # A seeded random share for temperature scaling, never trained on (Guo et al. 2017).
    perm = np.random.default_rng(cfg.seed).permutation(len(yi))
    n_cal = round(cfg.calibration_fraction * len(yi))
    if n_cal < 1 or n_cal >= len(yi):
        raise ValueError(
            f"calibration_fraction: {cfg.calibration_fraction} of {len(yi)} samples leaves "
            "no calibration or no training data"
        )
    cal, keep = np.sort(perm[:n_cal]), np.sort(perm[n_cal:])
    return emb[keep], yi[keep], w[keep], (emb[cal], yi[cal])


# ------------------------------------------------------------------------------------------------- fit


class SupervisedLearner(LabelLearner[SupervisedConfig]):
    """Fit a classifier head with weighted cross-entropy over cached MiniLM embeddings.

    Parameters
    ----------
    config : SupervisedConfig, optional
        Defaults when omitted.
    progress : callable, optional
        ``progress(step, total_steps, metrics)`` after each optimisation step.

    Attributes
    ----------
    policy_ : ClassifierPolicy
        The fitted policy (also what ``fit`` returns).
    history_ : list of dict
        Per-step metrics (``train/loss``, ``time/epoch``, ``time/step``).
    loss_history_ : list of float
        Mean training loss per epoch.
    n_samples_ : int
        Examples trained on.

    Examples
    --------
    >>> learner = SupervisedLearner(SupervisedConfig(epochs=30, seed=0))
    >>> X = np.eye(4, 384, dtype=np.float32)
    >>> policy = learner.fit(X, ["on", "off", "on", "off"])
    >>> policy.labels, policy.predict_proba_embeddings(X[:1]).argmax()
    (['off', 'on'], np.int64(1))
    """

    name: ClassVar[str] = "supervised"
    config_class: ClassVar[type[LearnerConfig]] = SupervisedConfig
    reads_texts: ClassVar[bool] = False

    def _fit(
        self, X: Any, y: list[Any], sample_weight: Any, policy: ClassifierPolicy | None, labels: Any
    ) -> ClassifierPolicy:
        """Embeddings, or texts embedded with the policy's encoder."""
        cfg = self.config
        if len(y) == 0:
            raise ValueError("X: no training examples")
        policy, warm = self._start(policy, y, labels)
        texts = isinstance(X, list | tuple)
        emb = policy.embed(list(X)) if texts else np.asarray(X, dtype=np.float32)  # (n, d)
        if len(emb) != len(y):
            raise ValueError(f"y: {len(y)} labels for {len(emb)} samples")
        yi = policy.label_indices(y)  # (n,)
        w = checked_weights(sample_weight, len(yi))
        emb, yi, w, held_out = _calibration_split(cfg, emb, yi, w)
        if cfg.class_weight == "balanced":
            w = w * balanced_weights(yi, policy.n_labels)

        n = len(yi)
        X_t, y_t, w_t = torch.from_numpy(emb), torch.from_numpy(yi), torch.from_numpy(w).float()
        # The seed fixes init, shuffling and dropout without touching the caller's global RNG.
        with seeded(cfg.seed):
            head, hidden = start_head(policy, warm, cfg.hidden, cfg.dropout)
            # Temperature 1: it is refitted on held-out data after training.
            trained = policy_like(policy, head, hidden)

            def batch_loss(idx: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
                logits = head(X_t[idx])  # (B, K)
                loss = weighted_cross_entropy(logits, y_t[idx], w_t[idx], cfg.label_smoothing)
                return loss, {"loss": float(loss.detach())}

            opt = torch.optim.AdamW(head.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
            sgd = MinibatchSGD(cfg, n, opt, list(head.parameters()), None, self.progress, trained.save)
            self.loss_history_ = sgd.run(batch_loss, [head])
        if held_out is not None:
            trained.fit_temperature(*held_out)
        self.policy_ = trained
        self.history_ = sgd.history
        self.n_samples_ = n
        return trained


__all__ = ["SupervisedConfig", "SupervisedLearner", "balanced_weights", "weighted_cross_entropy"]
