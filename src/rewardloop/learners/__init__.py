"""Training algorithms: each takes logged data and returns a fitted policy (DESIGN.md, STYLE.md).

``LEARNERS`` is the one explicit name map the CLI reads; each entry follows the contract of
:class:`rewardloop.learners.base.Learner`. Add a learner with one line here.
"""

from rewardloop.learners.base import (
    BanditData,
    Checkpointer,
    Learner,
    LearnerConfig,
    LearnerConfigError,
    ProgressCallback,
    bandit_data_from_batch,
    resolve_config,
)
from rewardloop.learners.data import LabelledData, labelled_from_batch
from rewardloop.learners.lora import LoRAConfig, LoRALearner
from rewardloop.learners.supervised import SupervisedConfig, SupervisedLearner

LEARNERS: dict[str, type[Learner]] = {
    "supervised": SupervisedLearner,
    "lora": LoRALearner,
}

__all__ = [
    "LEARNERS",
    "BanditData",
    "Checkpointer",
    "LabelledData",
    "Learner",
    "LearnerConfig",
    "LearnerConfigError",
    "LoRAConfig",
    "LoRALearner",
    "ProgressCallback",
    "SupervisedConfig",
    "SupervisedLearner",
    "bandit_data_from_batch",
    "labelled_from_batch",
    "resolve_config",
]
