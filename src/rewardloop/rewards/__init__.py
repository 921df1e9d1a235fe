"""The rewards layer: reward functions, versioned specs, the feedback → reward compiler, reward models.

Pure: nothing here opens a database session (``rewardloop.loop.compile`` reads and writes the store).
Importing this package does not import torch; the models load their backends on first use.
"""

from rewardloop.rewards.compiler import CompileResult, compile_feedback
from rewardloop.rewards.embedding_model import EmbeddingRewardModel, NotEnoughDataError
from rewardloop.rewards.functions import (
    RewardError,
    accuracy,
    calibration,
    confidence_weighted,
    f1_macro,
    f1_weighted,
    latency_aware,
    multilevel_rollup,
    normalise,
    to_signed,
    to_unit,
    weighted_mean_std,
    weighted_sum,
)
from rewardloop.rewards.pairwise_model import (
    PairwiseConfig,
    PairwiseRewardModel,
    PreferencePair,
    bradley_terry_loss,
)
from rewardloop.rewards.scores import (
    decision_score,
    feedback_score,
    feedback_signals,
    level_rollup,
)
from rewardloop.rewards.spec import FUNCTIONS, RewardSpec, UnknownSpecError, find_spec

__all__ = [
    "FUNCTIONS",
    "CompileResult",
    "EmbeddingRewardModel",
    "NotEnoughDataError",
    "PairwiseConfig",
    "PairwiseRewardModel",
    "PreferencePair",
    "RewardError",
    "RewardSpec",
    "UnknownSpecError",
    "accuracy",
    "bradley_terry_loss",
    "calibration",
    "compile_feedback",
    "confidence_weighted",
    "decision_score",
    "f1_macro",
    "f1_weighted",
    "feedback_score",
    "feedback_signals",
    "find_spec",
    "latency_aware",
    "level_rollup",
    "multilevel_rollup",
    "normalise",
    "to_signed",
    "to_unit",
    "weighted_mean_std",
    "weighted_sum",
]
