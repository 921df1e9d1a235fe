"""Simulated people for the demo and for tests of the loop: users who give feedback, raters of
different authority and reliability, a reviewer who resolves the queue, and agents of a router whose
quality depends on the request's category.

Everything is seeded: the same seed gives the same feedback.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from rewardloop.types import Decision, Feedback


@dataclass(frozen=True)
class Rater:
    """A person who gives feedback.

    ``reliability`` is the probability that their thumbs say the truth (a flip otherwise);
    ``authority`` is what the platform trusts them with, in [0, 1]; ``correct_rate`` is how often they
    also type the right label when the model was wrong (a correction).
    """

    rater_id: str
    authority: float
    reliability: float
    correct_rate: float = 0.0


DEFAULT_RATERS = (
    Rater("power_user", authority=0.9, reliability=0.97, correct_rate=0.6),
    Rater("casual_user", authority=0.5, reliability=0.85, correct_rate=0.2),
    Rater("careless_user", authority=0.2, reliability=0.6, correct_rate=0.0),
)


@dataclass
class FeedbackSimulator:
    """Users react to classifier decisions whose true labels are known.

    Parameters
    ----------
    raters : sequence of Rater
    rate : float
        Probability that a decision gets any feedback at all.
    seed : int
    """

    raters: Sequence[Rater] = DEFAULT_RATERS
    rate: float = 0.7
    seed: int = 0
    rng: np.random.Generator = field(init=False)

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)

    def feedback(self, decisions: Sequence[Decision], truth: Mapping[str, str]) -> list[Feedback]:
        """Thumbs (a rating on [-1, 1]) and some corrections for ``decisions`` (id → true label)."""
        out: list[Feedback] = []
        for d in decisions:
            if self.rng.random() >= self.rate:
                continue
            rater = self.raters[int(self.rng.integers(len(self.raters)))]
            correct = d.action == truth[d.id]
            says_correct = correct if self.rng.random() < rater.reliability else not correct
            out.append(
                Feedback(
                    decision_id=d.id,
                    kind="rating",
                    value=1.0 if says_correct else -1.0,
                    scale=(-1.0, 1.0),
                    rater_id=rater.rater_id,
                    authority=rater.authority,
                )
            )
            if not correct and self.rng.random() < rater.correct_rate:
                out.append(
                    Feedback(
                        decision_id=d.id,
                        kind="correction",
                        label=truth[d.id],
                        rater_id=rater.rater_id,
                        authority=rater.authority,
                    )
                )
        return out


def reviewer_feedback(decision: Decision, true_label: str, reviewer: str = "reviewer") -> Feedback:
    """A trusted reviewer's answer to a queued decision: the right label, full authority."""
    return Feedback(
        decision_id=decision.id,
        kind="correction",
        label=true_label,
        rater_id=reviewer,
        authority=1.0,
        source="human",
    )


@dataclass(frozen=True)
class Agent:
    """An answering agent behind a router: its success probability per request category."""

    name: str
    quality: Mapping[str, float]
    default: float = 0.5

    def success_probability(self, category: str) -> float:
        return self.quality.get(category, self.default)


DEFAULT_AGENTS = (
    Agent("naive_rag", {"lights": 0.8, "climate": 0.7, "media": 0.4, "timers": 0.3}, default=0.5),
    Agent("agentic_rag", {"lights": 0.5, "climate": 0.6, "media": 0.9, "timers": 0.5}, default=0.55),
    Agent("hybrid", {"lights": 0.6, "climate": 0.5, "media": 0.6, "timers": 0.9}, default=0.6),
)


def agent_reward(agent: Agent, category: str, rng: np.random.Generator) -> float:
    """1 if the agent's answer satisfied the user (a Bernoulli draw at its quality), else 0."""
    return float(rng.random() < agent.success_probability(category))
