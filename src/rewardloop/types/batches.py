"""Typed batches: what the store's readers return, ready for training and evaluation."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from rewardloop.types.records import Decision, Feedback, Reward


@dataclass(frozen=True)
class DecisionBatch:
    """Decisions, optionally with their feedback and rewards, in store order (oldest first).

    Columnar views (``pscore``, ``action_index``...) are numpy arrays of shape (n_rounds,).
    """

    decisions: Sequence[Decision]
    feedback: dict[str, list[Feedback]] = field(default_factory=dict)
    rewards: dict[str, Reward] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.decisions)

    def __iter__(self) -> Iterator[Decision]:
        return iter(self.decisions)

    @property
    def n_rounds(self) -> int:
        return len(self.decisions)

    @property
    def ids(self) -> list[str]:
        return [d.id for d in self.decisions]

    @property
    def texts(self) -> list[str | None]:
        return [d.text for d in self.decisions]

    @property
    def pscore(self) -> npt.NDArray[np.float64]:
        """Logged propensities, shape (n_rounds,)."""
        return np.fromiter((d.pscore for d in self.decisions), np.float64, len(self.decisions))

    @property
    def action_index(self) -> npt.NDArray[np.int64]:
        """Index of the chosen action within each decision's ``actions``, shape (n_rounds,)."""
        return np.fromiter((d.action_index for d in self.decisions), np.int64, len(self.decisions))

    def reward_array(self) -> npt.NDArray[np.float64]:
        """Compiled rewards aligned with the decisions, NaN where a decision has no reward."""
        return np.array(
            [self.rewards[d.id].value if d.id in self.rewards else np.nan for d in self.decisions],
            dtype=np.float64,
        )

    def with_rewards(self) -> DecisionBatch:
        """Only the decisions that have a compiled reward."""
        kept = [d for d in self.decisions if d.id in self.rewards]
        return DecisionBatch(kept, {d.id: self.feedback.get(d.id, []) for d in kept}, self.rewards)
