"""The evaluation layer: golden-set runs, metrics and calibration, off-policy estimators, the release gate.

The names most callers need are re-exported here. Figures (``rewardloop.evaluation.plots``, matplotlib)
and the regression monitor (``rewardloop.evaluation.monitor``, reads the store) are imported from their
modules, so that importing this package stays light.
"""

from rewardloop.evaluation.gate import GateCheck, GateReport, OPEComparison, run_gate
from rewardloop.evaluation.golden import GoldenError, GoldenItem, GoldenSet, load_golden, write_golden
from rewardloop.evaluation.metrics import (
    GoldenReport,
    ProbabilisticPolicy,
    brier_score,
    evaluate_golden,
    evaluate_predictions,
    expected_calibration_error,
    latency_percentiles,
)
from rewardloop.evaluation.offline import OfflineEvaluation, evaluate_candidate_on_logs
from rewardloop.evaluation.ope import (
    SNIPS,
    DirectMethod,
    DoublyRobust,
    DoublyRobustWithShrinkage,
    InverseProbabilityWeighting,
    OPEInputError,
    OPEReport,
    PolicyValueInterval,
    SelfNormalizedInverseProbabilityWeighting,
    SwitchDoublyRobust,
    estimate_policy_values,
    evaluate_off_policy,
    logged_feedback_from_decisions,
    ope_diagnostics,
    tabular_reward_model,
)

__all__ = [
    "SNIPS",
    "DirectMethod",
    "DoublyRobust",
    "DoublyRobustWithShrinkage",
    "GateCheck",
    "GateReport",
    "GoldenError",
    "GoldenItem",
    "GoldenReport",
    "GoldenSet",
    "InverseProbabilityWeighting",
    "OPEComparison",
    "OPEInputError",
    "OPEReport",
    "OfflineEvaluation",
    "PolicyValueInterval",
    "ProbabilisticPolicy",
    "SelfNormalizedInverseProbabilityWeighting",
    "SwitchDoublyRobust",
    "brier_score",
    "estimate_policy_values",
    "evaluate_candidate_on_logs",
    "evaluate_golden",
    "evaluate_off_policy",
    "evaluate_predictions",
    "expected_calibration_error",
    "latency_percentiles",
    "load_golden",
    "logged_feedback_from_decisions",
    "ope_diagnostics",
    "run_gate",
    "tabular_reward_model",
    "write_golden",
]
