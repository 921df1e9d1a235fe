"""Training algorithms: each takes logged data and returns a fitted policy (DESIGN.md, STYLE.md).

``LEARNERS`` is the one explicit name map the CLI reads; each entry follows the contract of
:class:`rewardloop.learners.base.Learner`. Add a learner with one line here.
"""

from rewardloop.learners.a2c import A2C, A2CConfig
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
from rewardloop.learners.crm import CRM, CRMConfig
from rewardloop.learners.data import LabelledData, labelled_from_batch
from rewardloop.learners.dpo import DPO, DPOConfig, PreferencePairs
from rewardloop.learners.dqn import DQN, DQNConfig
from rewardloop.learners.lora import LoRAConfig, LoRALearner
from rewardloop.learners.ppo import PPO, PPOConfig
from rewardloop.learners.reinforce import Reinforce, ReinforceConfig
from rewardloop.learners.supervised import SupervisedConfig, SupervisedLearner

LEARNERS: dict[str, type[Learner]] = {
    "supervised": SupervisedLearner,
    "lora": LoRALearner,
    "reinforce": Reinforce,
    "ppo": PPO,
    "a2c": A2C,
    "dqn": DQN,
    "dpo": DPO,
    "crm": CRM,
}

__all__ = [
    "A2C",
    "CRM",
    "DPO",
    "DQN",
    "LEARNERS",
    "PPO",
    "A2CConfig",
    "BanditData",
    "CRMConfig",
    "Checkpointer",
    "DPOConfig",
    "DQNConfig",
    "LabelledData",
    "Learner",
    "LearnerConfig",
    "LearnerConfigError",
    "LoRAConfig",
    "LoRALearner",
    "PPOConfig",
    "PreferencePairs",
    "ProgressCallback",
    "Reinforce",
    "ReinforceConfig",
    "SupervisedConfig",
    "SupervisedLearner",
    "bandit_data_from_batch",
    "labelled_from_batch",
    "resolve_config",
]
