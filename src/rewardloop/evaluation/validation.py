"""The validation score of a fitted classifier on held-out logged feedback (what a sweep ranks by).

One number per trial, higher is better, on data of the same kind the learner trained on:

=================  =========================================  ===========================================
training data      ``val/score`` is                           formula
=================  =========================================  ===========================================
``LabelledData``   weighted accuracy on the held-out labels   Σ w·[ŷ = y] / Σ w
``BanditData``     SNIPW value of the policy *as served*      Σ w_t r_t / Σ w_t, w_t = π(a_t|x_t) / pscore_t
``PreferencePairs`` weighted pairwise accuracy                Σ w·[π(chosen|x) > π(rejected|x)] / Σ w
=================  =========================================  ===========================================

The SNIPW value (Swaminathan & Joachims 2015, "The Self-Normalized Estimator for Counterfactual
Learning", NeurIPS) reads the policy's served distribution (its exploration included,
:func:`rewardloop.evaluation.offline.serving_exploration`), as it would be evaluated offline before
a deployment. Validation data comes from the logs, never from the golden set: the golden set stays
the release gate's.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rewardloop.evaluation.offline import serving_exploration
from rewardloop.evaluation.ope import SelfNormalizedInverseProbabilityWeighting
from rewardloop.learners import BanditData, LabelledData, PreferencePairs
from rewardloop.policies.classifier import ClassifierPolicy

SCORE = "val/score"


class ValidationError(ValueError):
    """No validation score can be computed for this learner's data or fitted model."""


def validation_scores(fitted: Any, data: Any) -> dict[str, float]:
    """``{"val/score": s, "val/n_samples": n, ...}`` of ``fitted`` on held-out ``data`` (see the table).

    Raises ValidationError for an empty validation split, or a learner whose result is not a
    classifier scored on one of the three kinds of data.
    """
    if len(data) == 0:
        raise ValidationError(
            "validation: no examples in the validation split; log more feedback or raise the share"
        )
    if not isinstance(fitted, ClassifierPolicy):
        raise ValidationError(
            f"validation: a sweep scores classifiers; this learner returned a {type(fitted).__name__}"
        )
    n = {"val/n_samples": float(len(data))}
    if isinstance(data, LabelledData):
        pred = fitted.predict(data.texts)
        hit = np.array([p == t for p, t in zip(pred, data.labels, strict=True)], dtype=float)
        return {
            SCORE: float(np.average(hit, weights=data.sample_weight)),
            "val/accuracy": float(hit.mean()),
        } | n
    if isinstance(data, BanditData):
        proba = fitted.predict_proba_embeddings(data.X)  # (n, K)
        served = serving_exploration(fitted).action_dist(proba)  # (n, K)
        value = SelfNormalizedInverseProbabilityWeighting().estimate_policy_value(
            reward=data.reward, action=data.action, pscore=data.pscore, action_dist=served
        )
        return {SCORE: value, "val/snipw": value, "val/logged_mean_reward": float(data.reward.mean())} | n
    if isinstance(data, PreferencePairs):
        proba = fitted.predict_proba_embeddings(data.X)  # (n_pairs, K)
        rows = np.arange(len(data))
        win = (proba[rows, data.chosen] > proba[rows, data.rejected]).astype(float)
        return {
            SCORE: float(np.average(win, weights=data.weight)),
            "val/pair_accuracy": float(win.mean()),
        } | n
    raise ValidationError(f"validation: no score for {type(data).__name__} data")


__all__ = ["SCORE", "ValidationError", "validation_scores"]
