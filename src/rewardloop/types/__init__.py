"""The records of rewardloop (DESIGN.md): decisions, feedback, rewards, versions, runs, experiments."""

from rewardloop.types.batches import DecisionBatch
from rewardloop.types.errors import RecordError
from rewardloop.types.parse import decision_from_dict, feedback_from_dict, record_to_dict
from rewardloop.types.records import (
    DECISION_KINDS,
    FEEDBACK_KINDS,
    FEEDBACK_SOURCES,
    PROB_TOL,
    AliasEvent,
    Decision,
    DecisionKind,
    Experiment,
    Feedback,
    FeedbackKind,
    FeedbackSource,
    PolicyVersion,
    ReviewItem,
    Reward,
    TraceStep,
    TrainingRun,
    new_id,
    utcnow,
)
from rewardloop.types.sets import OTHER_SETS, SET_FEEDBACK_KINDS, set_decision_fields, set_key, set_pscore

__all__ = [
    "DECISION_KINDS",
    "FEEDBACK_KINDS",
    "FEEDBACK_SOURCES",
    "OTHER_SETS",
    "PROB_TOL",
    "SET_FEEDBACK_KINDS",
    "AliasEvent",
    "Decision",
    "DecisionBatch",
    "DecisionKind",
    "Experiment",
    "Feedback",
    "FeedbackKind",
    "FeedbackSource",
    "PolicyVersion",
    "RecordError",
    "ReviewItem",
    "Reward",
    "TraceStep",
    "TrainingRun",
    "decision_from_dict",
    "feedback_from_dict",
    "new_id",
    "record_to_dict",
    "set_decision_fields",
    "set_key",
    "set_pscore",
    "utcnow",
]
