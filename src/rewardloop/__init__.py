"""rewardloop: decisions, feedback, rewards, learning, evaluation, gating, deployment, monitoring."""

__version__ = "0.1.0"
