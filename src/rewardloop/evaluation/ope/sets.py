"""Off-policy evaluation of set policies under independent per-label exploration.

A set policy includes label ``j`` with probability ``μ_j(x)`` (logging) or ``π_j(x)`` (evaluated), each
label drawn independently, and a set's reward is the sum of per-label rewards ``r_j`` (a per-label hit,
or the negative penalty of a missed / unnecessary action). The value then splits over the labels, and
each label is a two-action bandit with its own importance weight (the additive-reward decomposition of
Swaminathan et al. 2017, "Off-policy evaluation for slate recommendation", applied to independent
per-label draws): with the logged state ``z_tj ∈ {0, 1}``,

    w_tj = π(z_tj | x_t) / μ(z_tj | x_t),    π(1|x) = π_j(x),  π(0|x) = 1 − π_j(x)

============================= ======= ==============================================================
estimator                     name    per-round term, averaged over the rounds
============================= ======= ==============================================================
:class:`PerLabelIPS`          set-ipw ``Σ_j m_tj · w_tj · r_tj``
:class:`PerLabelDoublyRobust` set-dr  ``Σ_j m_tj · [Σ_z π(z|x) q̂_j(x, z) + w_tj (r_tj − q̂_j(x, z_tj))]``
============================= ======= ==============================================================

``m`` masks the cells whose reward was observed (default all). Inputs, shape (n_rounds, n_labels):
``reward`` r, ``logged`` z, ``pscore`` μ_j (the logged *inclusion* probabilities, the decision's
``label_probs``), ``action_dist`` π_j; ``estimated_rewards_by_reg_model`` q̂ of shape (n_rounds, n_labels, 2)
(index 0: left out, 1: included). Intervals bootstrap the per-round terms as every estimator does.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import numpy.typing as npt

from rewardloop.evaluation.ope._common import FloatArray, OPEInputError
from rewardloop.evaluation.ope.bootstrap import PolicyValueInterval, bootstrap_interval


def _matrix(name: str, value: npt.ArrayLike, shape: tuple[int, ...] | None = None) -> FloatArray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim != (2 if shape is None else len(shape)) or (shape is not None and arr.shape != shape):
        want = "(n_rounds, n_labels)" if shape is None else str(shape)
        raise OPEInputError(f"{name}: shape {arr.shape}, expected {want}")
    if not np.isfinite(arr).all():
        raise OPEInputError(f"{name}: must be finite")
    return arr


class _PerLabel:
    name: ClassVar[str]

    def weights(self, logged: npt.ArrayLike, pscore: npt.ArrayLike, action_dist: npt.ArrayLike) -> FloatArray:
        """``w_tj = π(z_tj|x_t) / μ(z_tj|x_t)``, shape (n_rounds, n_labels)."""
        z = _matrix("logged", logged)
        mu, pi = _matrix("pscore", pscore, z.shape), _matrix("action_dist", action_dist, z.shape)
        if not np.isin(z, (0.0, 1.0)).all():
            raise OPEInputError("logged: must hold 0 (left out) or 1 (included)")
        for name, p in (("pscore", mu), ("action_dist", pi)):
            if ((p < 0) | (p > 1)).any():
                raise OPEInputError(f"{name}: inclusion probabilities must be in [0, 1]")
        mu_z = np.where(z > 0.5, mu, 1.0 - mu)
        if (mu_z <= 0).any():
            t, j = np.argwhere(mu_z <= 0)[0]
            raise OPEInputError(f"pscore: round {t}, label {j}: the logged state had probability 0")
        out: FloatArray = np.where(z > 0.5, pi, 1.0 - pi) / mu_z
        return out

    def _terms(self, **logs: npt.ArrayLike) -> FloatArray:  # pragma: no cover - abstract
        raise NotImplementedError

    def estimate_round_rewards(self, **logs: npt.ArrayLike) -> FloatArray:
        """The per-round terms whose mean is the estimate, shape (n_rounds,)."""
        return self._terms(**logs)

    def estimate_policy_value(self, **logs: npt.ArrayLike) -> float:
        return float(self._terms(**logs).mean())

    def estimate_interval(
        self, *, alpha: float = 0.05, n_bootstrap_samples: int = 10000, random_state: int | None = None,
        **logs: npt.ArrayLike,
    ) -> PolicyValueInterval:  # fmt: skip
        """Estimate and its ``1 − alpha`` bootstrap interval over the rounds."""
        terms = self._terms(**logs)
        mean, lower, upper = bootstrap_interval(
            terms, alpha=alpha, n_bootstrap_samples=n_bootstrap_samples, random_state=random_state
        )
        return PolicyValueInterval(
            self.name, float(terms.mean()), mean, lower, upper, alpha, n_bootstrap_samples
        )


def _mask(mask: npt.ArrayLike | None, shape: tuple[int, ...]) -> FloatArray:
    return np.ones(shape) if mask is None else _matrix("mask", mask, shape)


class PerLabelIPS(_PerLabel):
    """Per-label inverse probability weighting: ``V̂ = mean_t Σ_j m_tj w_tj r_tj``.

    >>> PerLabelIPS().estimate_policy_value(reward=[[1.0, 0.0]], logged=[[1, 0]],
    ...     pscore=[[0.5, 0.5]], action_dist=[[0.8, 0.1]])
    1.6
    """

    name: ClassVar[str] = "set-ipw"

    def _terms(self, **logs: npt.ArrayLike) -> FloatArray:
        w = self.weights(logs["logged"], logs["pscore"], logs["action_dist"])
        r = _matrix("reward", logs["reward"], w.shape)
        out: FloatArray = (_mask(logs.get("mask"), w.shape) * w * r).sum(axis=1)
        return out


class PerLabelDoublyRobust(_PerLabel):
    """Per-label doubly robust: the reward model's value under π plus the weighted residual, per label
    (Dudík et al. 2011, per label)."""

    name: ClassVar[str] = "set-dr"

    def _terms(self, **logs: npt.ArrayLike) -> FloatArray:
        if "estimated_rewards_by_reg_model" not in logs:
            raise OPEInputError("estimated_rewards_by_reg_model: required by set-dr")
        w = self.weights(logs["logged"], logs["pscore"], logs["action_dist"])
        r = _matrix("reward", logs["reward"], w.shape)
        q = _matrix("estimated_rewards_by_reg_model", logs["estimated_rewards_by_reg_model"], (*w.shape, 2))
        pi = np.asarray(logs["action_dist"], dtype=np.float64)
        z = np.asarray(logs["logged"], dtype=np.int64)
        direct = (1.0 - pi) * q[..., 0] + pi * q[..., 1]  # Σ_z π(z|x) q̂(x, z), (n, L)
        q_logged = np.take_along_axis(q, z[..., None], axis=2)[..., 0]  # q̂(x, z_t), (n, L)
        out: FloatArray = (_mask(logs.get("mask"), w.shape) * (direct + w * (r - q_logged))).sum(axis=1)
        return out


__all__ = ["PerLabelDoublyRobust", "PerLabelIPS"]
