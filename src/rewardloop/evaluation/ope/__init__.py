"""Off-policy evaluation: the value of a candidate policy, estimated from logs of another.

The estimators follow the definitions (and the vocabulary) of Open Bandit Pipeline (Saito et al. 2021,
"Open Bandit Dataset and Pipeline", NeurIPS Datasets & Benchmarks), so that on identical inputs they
return identical numbers:

=================================================== =========  ==========================================
estimator                                           ``name``   per-round term, averaged over the rounds
=================================================== =========  ==========================================
:class:`InverseProbabilityWeighting`                ipw        ``w r``
:class:`SelfNormalizedInverseProbabilityWeighting`  snipw      ``w r / mean(w)``
:class:`DirectMethod`                               dm         ``Σ_a π_e(a|x) q̂(x, a)``
:class:`DoublyRobust`                               dr         ``Σ_a π_e(a|x) q̂(x, a) + w (r − q̂(x, a_t))``
:class:`SwitchDoublyRobust`                         switch-dr  as dr, correction only where ``w ≤ τ``
:class:`DoublyRobustWithShrinkage`                  dr-os      as dr, with ``w`` → ``λ w / (w² + λ)``
=================================================== =========  ==========================================

with the importance weight ``w = π_e(a_t|x_t) / π_b(a_t|x_t) = action_dist[t, a_t, k_t] / pscore[t]``.

Inputs (OBP names and shapes):

- ``reward``: array of shape (n_rounds,), the observed reward ``r_t``;
- ``action``: int array of shape (n_rounds,), the logged action ``a_t`` in ``[0, n_actions)``;
- ``pscore``: array of shape (n_rounds,), the logging policy's probability ``π_b(a_t|x_t)`` in (0, 1];
- ``action_dist``: array of shape (n_rounds, n_actions) or (n_rounds, n_actions, len_list), the evaluation
  policy's distribution ``π_e(·|x_t)`` (per slot ``k`` for recommendation lists);
- ``position``: int array of shape (n_rounds,), the slot ``k_t`` each round was logged at (default 0);
- ``estimated_rewards_by_reg_model``: same shape as ``action_dist``, a reward model ``q̂(x_t, a, k)``.

Every estimator also gives a bootstrap confidence interval (:meth:`estimate_interval`), computed as OBP
does (percentiles of the means of ``n_bootstrap_samples`` resamples drawn with a legacy
``numpy.random.RandomState``; the same ``random_state`` gives the same interval), and
:func:`ope_diagnostics` says whether the logs can support the estimate at all.
"""

from __future__ import annotations

from rewardloop.evaluation.ope._common import DETERMINISTIC_PSCORE, OPEInputError
from rewardloop.evaluation.ope.bootstrap import (
    PolicyValueInterval,
    Resampler,
    bootstrap_interval,
    bootstrap_means,
    bootstrap_partitions,
)
from rewardloop.evaluation.ope.diagnostics import OPEDiagnostics, effective_sample_size, ope_diagnostics
from rewardloop.evaluation.ope.estimators import (
    SNIPS,
    BaseOffPolicyEstimator,
    DirectMethod,
    DoublyRobust,
    DoublyRobustWithShrinkage,
    InverseProbabilityWeighting,
    SelfNormalizedInverseProbabilityWeighting,
    SwitchDoublyRobust,
)
from rewardloop.evaluation.ope.inputs import BanditFeedback, check_bandit_feedback
from rewardloop.evaluation.ope.report import (
    DEFAULT_RANDOM_STATE,
    OPEOptions,
    OPEReport,
    default_estimators,
    estimate_policy_values,
    evaluate_off_policy,
    tabular_reward_model,
)
from rewardloop.evaluation.ope.store_logs import LoggedFeedback, logged_feedback_from_decisions

__all__ = [
    "DEFAULT_RANDOM_STATE",
    "DETERMINISTIC_PSCORE",
    "SNIPS",
    "BanditFeedback",
    "BaseOffPolicyEstimator",
    "DirectMethod",
    "DoublyRobust",
    "DoublyRobustWithShrinkage",
    "InverseProbabilityWeighting",
    "LoggedFeedback",
    "OPEDiagnostics",
    "OPEInputError",
    "OPEOptions",
    "OPEReport",
    "PolicyValueInterval",
    "Resampler",
    "SelfNormalizedInverseProbabilityWeighting",
    "SwitchDoublyRobust",
    "bootstrap_interval",
    "bootstrap_means",
    "bootstrap_partitions",
    "check_bandit_feedback",
    "default_estimators",
    "effective_sample_size",
    "estimate_policy_values",
    "evaluate_off_policy",
    "logged_feedback_from_decisions",
    "ope_diagnostics",
    "tabular_reward_model",
]
