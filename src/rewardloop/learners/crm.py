"""Counterfactual risk minimisation (CRM) from logged bandit feedback: POEM and BanditNet.

Swaminathan & Joachims (2015), "Batch learning from logged bandit feedback through counterfactual risk
minimization" (POEM), and Joachims, Swaminathan & de Rijke (2018), "Deep learning with logged bandit
feedback" (BanditNet). Each logged decision i has a context x_i, the logged action a_i drawn by the
logging policy μ with propensity p_i = μ(a_i|x_i) (``pscore``) and a reward r_i — a thumbs up (1) as
much as a thumbs down (0). The self-normalised IPS estimate of a policy π's value,

    V̂_SN(π) = Σ_i r_i · w_i / Σ_i w_i,        w_i = π(a_i|x_i) / p_i,

is not a sum over rows, so it cannot be optimised by minibatches. BanditNet rewrites it with a
Lagrange multiplier: its maximiser is, for some baseline λ, the maximiser of

    L_λ(π) = (1/n) Σ_i (r_i − λ) · w_i                                    (BanditNet, eq. 9, as a reward)

a plain mean over rows. λ is a baseline: with λ = 0 only thumbs-up rows pull (and π may gain value by
putting mass on every logged action, "propensity overfitting"); with λ > 0 a thumbs-down row pushes
its action's probability down by λ · w_i. BanditNet chooses λ by a sweep, scoring each fit by V̂_SN on
held-out logs (``learners.selection``). Two POEM options: the weights clipped at M (``max_weight``,
w_i = min(π/p_i, M)), and a variance penalty ``variance_penalty`` · sqrt(Var(u)/n) on u_i = (r_i − λ)·w_i
(the empirical-Bernstein bound POEM minimises).

**Corrections are full information.** A correction names the right label c_i: the reward is 1 for c_i
and 0 for every other action, the logged one included, so π's expected reward on that row is known
exactly, Σ_a π(a|x_i) · r_i(a) = π(c_i|x_i), with weight Σ_a π(a|x_i) = 1. Its row enters L_λ in
place of its bandit term (counting both would count the logged action twice), as
``correction_weight`` · (π(c_i|x_i) − λ) with ``correction_loss="expected"``, or by default as
``correction_weight`` · log π(c_i|x_i), the same target through cross-entropy: corrections come
mostly where π was wrong, π(c_i|x_i) is small there, and the exact term's gradient π(c)(1 − π(c))
vanishes with it, where the log's, 1 − π(c), does not. On a single-label decision a thumbs up is full
information as well (reward 1 for the logged action, 0 for the others); ``confirmations="full"`` takes
such a row (reward 1) like a correction naming the logged action, the default ``"bandit"`` keeps its
importance-weighted term.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from rewardloop.learners._common import (
    BanditMinibatchLearner,
    BatchLoss,
    LearnerDataError,
    as_tensors,
)
from rewardloop.learners._math import log_probs
from rewardloop.learners.base import (
    AT_LEAST_ONE,
    NON_NEGATIVE,
    POSITIVE,
    BanditData,
    DataSpec,
    GradientClipConfig,
    LearnerConfig,
    LearnerConfigError,
    ProgressCallback,
    bandit_data_from_batch,
    checked_config,
    hyperparameter,
)
from rewardloop.policies.classifier import ClassifierPolicy
from rewardloop.types import DecisionBatch


@dataclass
class CRMConfig(GradientClipConfig):
    """CRM / BanditNet hyperparameters (and the shared ones of :class:`GradientClipConfig`)."""

    lr: float = hyperparameter(1e-2, "AdamW learning rate", POSITIVE)
    epochs: int = hyperparameter(20, "passes over the logged decisions", AT_LEAST_ONE)
    baseline: float | None = hyperparameter(
        None,
        "BanditNet's λ, subtracted from each reward (None: the mean logged reward, the "
        "logging policy's value); choose it by a sweep on held-out logs",
    )
    max_weight: float = hyperparameter(0.0, "clip the importance weights π/μ at this value (0: no clipping)")
    variance_penalty: float = hyperparameter(
        0.0, "POEM's weight of sqrt(Var(u)/n) on the per-row terms u (0: off)", NON_NEGATIVE
    )
    correction_weight: float = hyperparameter(
        1.0, "weight of a corrected row's full-information term π(c|x) − λ", NON_NEGATIVE
    )
    # log by default: a correction mostly comes where π was wrong, π(c|x) is small there, and the
    # gradient of the exact value π(c|x) vanishes with it (measured in benchmarks/learning.py).
    correction_loss: str = hyperparameter(
        "log",
        "a corrected row's term: log, log π(c|x) (cross-entropy, whose gradient does not "
        "vanish where π(c|x) is small); or expected, π(c|x) − λ (its exact expected reward)",
    )
    confirmations: str = hyperparameter(
        "bandit",
        "a row with the top reward 1 (a thumbs up on a single-label decision): bandit, (1 − λ) · w; or "
        "full, full information like a correction, the logged action as its label",
    )
    weight_decay: float = hyperparameter(1e-4, "L2 penalty (AdamW decoupled decay)", NON_NEGATIVE)

    def validate(self) -> None:
        super().validate()
        if self.baseline is not None and not np.isfinite(self.baseline):
            raise LearnerConfigError(f"baseline: must be a finite number or None, got {self.baseline}")
        if self.max_weight != 0 and not self.max_weight >= 1.0:
            raise LearnerConfigError(f"max_weight: must be >= 1 (0: no clipping), got {self.max_weight}")
        if self.correction_loss not in ("expected", "log"):
            raise LearnerConfigError(
                f"correction_loss: must be expected or log, got {self.correction_loss!r}"
            )
        if self.confirmations not in ("bandit", "full"):
            raise LearnerConfigError(f"confirmations: must be bandit or full, got {self.confirmations!r}")


@dataclass(frozen=True)
class CorrectedBanditData(BanditData):
    """:class:`BanditData` with the label a correction named for each row.

    Attributes
    ----------
    correction : ndarray of shape (n_rounds,)
        Index in ``labels`` of the corrected label, −1 where the row has no correction.
    """

    correction: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))


def corrections_of(data: BanditData) -> npt.NDArray[np.int64]:
    """The correction array of ``data`` (all −1 for plain BanditData), checked against its labels."""
    n = len(data)
    correction = getattr(data, "correction", None)
    if correction is None or (len(correction) == 0 and n > 0):  # plain BanditData, or none given
        return np.full(n, -1, np.int64)
    correction = np.asarray(correction, dtype=np.int64)
    if correction.shape != (n,):
        raise LearnerDataError(f"correction: expected shape ({n},), got {correction.shape}")
    bad = np.flatnonzero((correction < -1) | (correction >= len(data.labels)))
    if bad.size:
        raise LearnerDataError(
            f"correction: row {bad[0]} is {correction[bad[0]]}, outside [-1, {len(data.labels)})"
        )
    return correction


def crm_data_from_batch(batch: DecisionBatch, spec: DataSpec) -> CorrectedBanditData:
    """Decisions with a compiled reward, embedded with ``spec.embed``, with their corrections.

    The last correction of a decision (store order) is its corrected label; one naming a label the
    policy does not have is left out and counted in ``skipped`` (one bad row must not stop training).
    """
    base = bandit_data_from_batch(batch, spec)
    index = {label: i for i, label in enumerate(base.labels)}
    kept = [d for d in batch.with_rewards() if d.action in index]  # the rows of ``base``, in order
    correction = np.full(len(base), -1, np.int64)
    unknown = 0
    for row, d in enumerate(kept):
        for f in batch.feedback.get(d.id, []):
            if f.kind != "correction" or f.label is None:
                continue
            if f.label not in index:
                unknown += 1
                continue
            correction[row] = index[f.label]
    skipped = dict(base.skipped)
    if unknown:
        skipped["correction label not a label of the policy"] = unknown
    return CorrectedBanditData(
        base.X, base.action, base.reward, base.pscore, base.labels, skipped, correction=correction
    )


def crm_loss(
    logits: torch.Tensor,
    actions: torch.Tensor,
    reward: torch.Tensor,
    pscore: torch.Tensor,
    correction: torch.Tensor,
    baseline: float,
    max_weight: float = 0.0,
    variance_penalty: float = 0.0,
    correction_weight: float = 1.0,
    correction_loss: str = "log",
    confirmations: str = "bandit",
) -> tuple[torch.Tensor, dict[str, float]]:
    """−L_λ on one minibatch (+ POEM's variance penalty), and its metrics.

    u_i = (r_i − λ) · min(π(a_i|x_i)/p_i, M) for bandit rows, correction_weight · (π(c_i|x_i) − λ) for
    corrected rows (``correction_loss="log"``: correction_weight · log π(c_i|x_i)), and with
    ``confirmations="full"`` the same for rows with r_i = 1, c_i = a_i;
    loss = −mean(u) + variance_penalty · sqrt(Var(u) / B).

    Parameters
    ----------
    logits : tensor of shape (B, K)
    actions : tensor of shape (B,)
        Logged action indices.
    reward, pscore : tensors of shape (B,)
        Reward and the logging policy's propensity of the logged action.
    correction : tensor of shape (B,)
        Corrected label index, −1 where none.
    baseline : float
        BanditNet's λ.
    """
    logp = log_probs(logits, actions)  # (B,)
    ratio = torch.exp(logp - torch.log(pscore))  # (B,) π(a|x) / μ(a|x), with gradient
    w = ratio.clamp(max=max_weight) if max_weight > 0 else ratio  # clipped rows carry no gradient
    corrected = correction >= 0  # (B,)
    known = corrected | (reward >= 1) if confirmations == "full" else corrected  # full-information rows
    target = torch.where(corrected, correction, actions)  # (B,) the label a known row names
    logp_correct = log_probs(logits, target)  # (B,) log π(c|x), used where known
    full = logp_correct if correction_loss == "log" else logp_correct.exp() - baseline
    u = torch.where(known, correction_weight * full, (reward - baseline) * w)  # (B,)
    objective = u.mean()
    loss = -objective
    if variance_penalty > 0 and len(u) > 1:
        loss = loss + variance_penalty * torch.sqrt(u.var() / len(u) + 1e-12)
    with torch.no_grad():
        bandit = ~known
        wb = w[bandit]
        snips = float((wb * reward[bandit]).sum() / wb.sum()) if bandit.any() else float("nan")
        clip_frac = (
            float((ratio[bandit] > max_weight).float().mean()) if max_weight > 0 and bandit.any() else 0.0
        )
    metrics = {
        "train/loss": float(loss.detach()),
        "train/objective": float(objective.detach()),
        "train/snips": snips,
        "train/mean_weight": float(wb.mean()) if bandit.any() else float("nan"),
        "train/clip_frac": clip_frac,
        "train/corrected_frac": float(corrected.float().mean()),
    }
    return loss, metrics


class CRM(BanditMinibatchLearner[CRMConfig]):
    """Counterfactual risk minimisation (BanditNet's λ-translated SNIPS, POEM's options) for a classifier.

    Attributes
    ----------
    baseline_ : float
        The λ used (the config's, or the mean logged reward).
    history_ : list of dict
        Metrics of each optimisation step, namespaced (``train/loss``, ``train/snips``...).

    Examples
    --------
    >>> data = BanditData.simulated(32, n_features=4, labels=["a", "b"])
    >>> fitted = CRM(CRMConfig(epochs=2)).fit(data, policy=ClassifierPolicy(["a", "b"], in_dim=4))
    >>> fitted.labels
    ['a', 'b']
    """

    name: ClassVar[str] = "crm"
    config_class: ClassVar[type[LearnerConfig]] = CRMConfig
    grad_norm_key: ClassVar[str] = "train/grad_norm"

    @staticmethod
    def data_from_batch(batch: DecisionBatch, spec: DataSpec, /) -> CorrectedBanditData:
        """Reads the corrections too (see :func:`crm_data_from_batch`)."""
        return crm_data_from_batch(batch, spec)

    def __init__(self, config: CRMConfig | None = None, progress: ProgressCallback | None = None) -> None:
        self.config = checked_config(config, CRMConfig)
        self.progress = progress

    def _objective(self, data: BanditData, fitted: ClassifierPolicy) -> tuple[BatchLoss, list[nn.Module]]:
        """The loss on logged decisions and their corrections (:func:`crm_loss`)."""
        cfg = self.config
        correction = torch.as_tensor(corrections_of(data))  # (n,)
        head = fitted.head
        X, actions, reward, pscore = as_tensors(data)  # (n, d), (n,), (n,), (n,)
        baseline = float(reward.mean()) if cfg.baseline is None else cfg.baseline
        self.baseline_ = baseline

        def batch_loss(idx: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
            return crm_loss(
                head(X[idx]) / fitted.temperature,  # (B, K)
                actions[idx],
                reward[idx],
                pscore[idx],
                correction[idx],
                baseline,
                cfg.max_weight,
                cfg.variance_penalty,
                cfg.correction_weight,
                cfg.correction_loss,
                cfg.confirmations,
            )

        return batch_loss, [head]

    def _optimizer(self, params: list[nn.Parameter]) -> torch.optim.Optimizer:
        return torch.optim.AdamW(params, lr=self.config.lr, weight_decay=self.config.weight_decay)


__all__ = ["CRM", "CRMConfig", "CorrectedBanditData", "corrections_of", "crm_data_from_batch", "crm_loss"]
