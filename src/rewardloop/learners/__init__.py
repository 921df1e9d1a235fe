"""Training algorithms: each takes logged data and returns a fitted policy (DESIGN.md, STYLE.md).

``LEARNERS`` maps the CLI's learner names to the classes; one entry per line.
"""

from rewardloop.learners.a2c import A2C, A2CConfig
from rewardloop.learners.dpo import DPO, DPOConfig, PreferencePairs
from rewardloop.learners.dqn import DQN, DQNConfig
from rewardloop.learners.ppo import PPO, PPOConfig
from rewardloop.learners.reinforce import Reinforce, ReinforceConfig

LEARNERS: dict[str, type] = {
    "reinforce": Reinforce,
    "ppo": PPO,
    "a2c": A2C,
    "dqn": DQN,
    "dpo": DPO,
}

__all__ = [
    "A2C",
    "DPO",
    "DQN",
    "LEARNERS",
    "PPO",
    "A2CConfig",
    "DPOConfig",
    "DQNConfig",
    "PPOConfig",
    "PreferencePairs",
    "Reinforce",
    "ReinforceConfig",
]
