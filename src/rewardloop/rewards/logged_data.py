"""The training data of the reward models, read from a batch of logged reranker decisions (pure).

- :class:`RatedData` — (prompt, answer, rating) triples: prompt = the decision's ``text``, answer = the
  chosen candidate's text, rating = the compiled reward (:func:`rated_from_batch`);
- preference pairs — preference feedback between two candidates of one decision, weighted by rater
  authority (:func:`preference_pairs_from_batch`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from rewardloop.types import DecisionBatch

if TYPE_CHECKING:  # pairwise_model imports embedding_model, which imports this module
    from rewardloop.rewards.pairwise_model import PreferencePair


@dataclass
class RatedData:
    """Rated (prompt, answer) pairs, aligned lists of length n_samples.

    ``skipped`` counts rewarded decisions that gave no row, by reason.
    """

    prompts: list[str]
    answers: list[str]
    ratings: npt.NDArray[np.float64]
    weights: npt.NDArray[np.float64] | None = None
    skipped: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.prompts)

    def as_arrays(self, sample_weight: Any = None) -> tuple[list[str], list[str], Any, Any]:
        """(prompts, answers, ratings, weights); ``sample_weight`` given wins over ``weights``."""
        return (
            self.prompts,
            self.answers,
            self.ratings,
            self.weights if sample_weight is None else sample_weight,
        )


def rated_from_batch(batch: DecisionBatch) -> RatedData:
    """Reranker decisions with a compiled reward: (decision text, chosen candidate's text, reward)."""
    prompts, answers, ratings = [], [], []
    without_text = 0
    for d in batch.decisions:
        reward = batch.rewards.get(d.id)
        if reward is None:
            continue
        if d.text is None:
            without_text += 1
            continue
        prompts.append(d.text)
        answers.append(d.candidates[d.action_index] if d.candidates else d.action)
        ratings.append(reward.value)
    skipped = {"decision without text": without_text} if without_text else {}
    return RatedData(prompts, answers, np.array(ratings, dtype=np.float64), skipped=skipped)


def preference_pairs_from_batch(batch: DecisionBatch) -> list[PreferencePair]:
    """Preference feedback between two candidates of a reranker decision, weighted by rater authority."""
    from rewardloop.rewards.pairwise_model import PreferencePair

    pairs = []
    for d in batch.decisions:
        if d.text is None:
            continue
        texts = dict(zip(d.actions, d.candidates or d.actions, strict=True))
        for f in batch.feedback.get(d.id, []):
            if f.kind == "preference" and f.preferred in texts and f.rejected in texts:
                pairs.append(PreferencePair(d.text, texts[f.preferred], texts[f.rejected], f.authority))
    return pairs


__all__ = ["RatedData", "preference_pairs_from_batch", "rated_from_batch"]
