"""Training algorithms: each takes logged data and returns a fitted policy (DESIGN.md, STYLE.md).

``LEARNERS`` is the one explicit name map the CLI reads; each entry follows the contract of
:class:`rewardloop.learners.base.ConfiguredLearner`. Add a learner with one line here. The bandit
routers (``learners.bandits.ROUTERS``), the gating network (``learners.gating.GatingLearner``) and
the reward models keep the same :class:`~rewardloop.learners.base.Learner` contract, and so do the
set policy's learners (``learners.multilabel.SET_LEARNERS``: ``set_supervised``, ``set_bandit``).
``GENERATOR_LEARNERS`` are the generator policy's (through TRL): a name there trains a policy of kind
``generator``, a name in ``SET_LEARNERS`` a ``set`` policy, a name in ``LEARNERS`` a classifier
(``rewardloop train`` picks the map by the kind, :func:`learners_for`).
"""

from rewardloop.learners.a2c import A2C, A2CConfig
from rewardloop.learners.base import (
    BanditData,
    Checkpointer,
    ConfiguredLearner,
    DataSpec,
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
from rewardloop.learners.kto import KTO, KTOConfig, ThumbsExamples
from rewardloop.learners.lm_dpo import GeneratorDPO, GeneratorDPOConfig, PreferenceExamples
from rewardloop.learners.lora import LoRAConfig, LoRALearner
from rewardloop.learners.multilabel import SET_LEARNERS
from rewardloop.learners.ppo import PPO, PPOConfig
from rewardloop.learners.reinforce import Reinforce, ReinforceConfig
from rewardloop.learners.sft import SFTConfig, SFTLearner
from rewardloop.learners.supervised import SupervisedConfig, SupervisedLearner

LEARNERS: dict[str, type[ConfiguredLearner]] = {
    "supervised": SupervisedLearner,
    "lora": LoRALearner,
    "reinforce": Reinforce,
    "ppo": PPO,
    "a2c": A2C,
    "dqn": DQN,
    "dpo": DPO,
    "crm": CRM,
}

#: The learners of generator policies (``policies[].kind: generator``), by ``training.learner``.
GENERATOR_LEARNERS: dict[str, type[ConfiguredLearner]] = {
    "sft": SFTLearner,
    "dpo": GeneratorDPO,
    "kto": KTO,
}


def learners_for(kind: str) -> dict[str, type[ConfiguredLearner]]:
    """The learner map of a policy kind: ``GENERATOR_LEARNERS`` for generators, ``SET_LEARNERS`` for
    set policies, else ``LEARNERS``."""
    if kind == "set":
        return SET_LEARNERS
    return GENERATOR_LEARNERS if kind == "generator" else LEARNERS


def learner_options() -> dict[str, dict[str, str]]:
    """Learner name → {config field: help text}, for ``--help`` and the YAML template; a generator
    learner whose name a classifier learner has too is listed as ``<name> (generator)``."""
    options = {name: cls.config_class.help() for name, cls in LEARNERS.items()}
    for name, cls in GENERATOR_LEARNERS.items():
        options[f"{name} (generator)" if name in LEARNERS else name] = cls.config_class.help()
    for name, cls in SET_LEARNERS.items():
        options[f"{name} (set)"] = cls.config_class.help()
    return options


__all__ = [
    "A2C",
    "CRM",
    "DPO",
    "DQN",
    "GENERATOR_LEARNERS",
    "KTO",
    "LEARNERS",
    "PPO",
    "SET_LEARNERS",
    "A2CConfig",
    "BanditData",
    "CRMConfig",
    "Checkpointer",
    "ConfiguredLearner",
    "DPOConfig",
    "DQNConfig",
    "DataSpec",
    "GeneratorDPO",
    "GeneratorDPOConfig",
    "KTOConfig",
    "LabelledData",
    "Learner",
    "LearnerConfig",
    "LearnerConfigError",
    "LoRAConfig",
    "LoRALearner",
    "PPOConfig",
    "PreferenceExamples",
    "PreferencePairs",
    "ProgressCallback",
    "Reinforce",
    "ReinforceConfig",
    "SFTConfig",
    "SFTLearner",
    "SupervisedConfig",
    "SupervisedLearner",
    "ThumbsExamples",
    "bandit_data_from_batch",
    "labelled_from_batch",
    "learner_options",
    "learners_for",
    "resolve_config",
]
