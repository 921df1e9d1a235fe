"""The reranker policy: order candidate answers for a prompt by a learned reward model.

It serves either reward model of :mod:`rewardloop.rewards` (embeddings + logistic regression, or the
pairwise Bradley–Terry transformer). Without a trained model it keeps the given order and warns once,
so a new deployment works (as a pass-through) before its first model exists.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

from rewardloop.policies.contract import DecisionContext, Exploration, PolicyInputError, draw
from rewardloop.rewards.embedding_model import ARTIFACT_KIND as LR_KIND
from rewardloop.rewards.embedding_model import EmbeddingRewardModel, read_meta
from rewardloop.rewards.functions import RewardError
from rewardloop.rewards.pairwise_model import ARTIFACT_KIND as BT_KIND
from rewardloop.rewards.pairwise_model import PairwiseRewardModel
from rewardloop.types import Decision


class ScoringModel(Protocol):
    def score(self, prompt: str, candidates: Sequence[str]) -> npt.NDArray[np.float64]: ...

    def save(self, path: str | Path) -> Path: ...


class UntrainedRerankerWarning(UserWarning):
    """The reranker has no model: it keeps the given order."""


@dataclass(frozen=True, slots=True)
class Ranked:
    """One candidate in a ranking: its position in the input, its text and its score."""

    index: int
    text: str
    score: float


class Reranker:
    """Score, rerank and pick the top candidates for a prompt.

    Parameters
    ----------
    model : object with ``score(prompt, candidates) -> (n,)``, optional
        A fitted :class:`~rewardloop.rewards.EmbeddingRewardModel` or
        :class:`~rewardloop.rewards.PairwiseRewardModel`. None: keep the given order (warns once).
    exploration : Exploration, optional
        How :meth:`decide` picks the top answer from the softmax of the scores; default: sample from
        it at temperature 1 (``policies[].options``: ``explore``, ``temperature``, ``epsilon``).

    Examples
    --------
    >>> rr = Reranker()                       # no model yet
    >>> import warnings
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     [r.text for r in rr.rerank("q", ["a", "b", "c"])]
    ['a', 'b', 'c']
    """

    kind = "reranker"

    def __init__(self, model: ScoringModel | None = None, exploration: Exploration | None = None) -> None:
        self.model = model
        self.exploration = exploration if exploration is not None else Exploration("sample")
        self._warned = False

    @classmethod
    def load(cls, path: str | Path, exploration: Exploration | None = None) -> Reranker:
        """A reranker serving the reward model saved in the folder ``path`` (either kind)."""
        folder = Path(path)
        kind = read_meta(folder).get("kind")
        if kind == LR_KIND:
            return cls(EmbeddingRewardModel.load(folder), exploration)
        if kind == BT_KIND:
            return cls(PairwiseRewardModel.load(folder), exploration)
        raise RewardError(f"{folder}: unknown reward-model kind {kind!r} (known: {LR_KIND}, {BT_KIND})")

    def save(self, path: str | Path) -> Path:
        """Save the reward model into the folder ``path`` (what :meth:`load` reads back)."""
        if self.model is None:
            raise RewardError("model: an untrained reranker has no reward model to save")
        return Path(self.model.save(path))

    @property
    def trained(self) -> bool:
        return self.model is not None

    def score(self, prompt: str, candidates: Sequence[str]) -> npt.NDArray[np.float64]:
        """Score of each candidate, shape (n_candidates,); higher is better.

        Without a model: ``n - i`` for the i-th candidate (the given order), with a warning the first time.
        """
        if isinstance(candidates, str):
            raise RewardError("candidates: a sequence of answers, not one string")
        n = len(candidates)
        if self.model is None:
            if not self._warned:
                warnings.warn(
                    "the reranker has no trained reward model: keeping the given order "
                    "(train one with `rewardloop rm train`)",
                    UntrainedRerankerWarning,
                    stacklevel=2,
                )
                self._warned = True
            return np.arange(n, 0, -1, dtype=np.float64)
        if n == 0:
            return np.zeros(0)
        return np.asarray(self.model.score(prompt, list(candidates)), dtype=np.float64)

    def rerank(self, prompt: str, candidates: Sequence[str]) -> list[Ranked]:
        """All candidates, best first (ties keep the given order)."""
        scores = self.score(prompt, candidates)
        order = np.argsort(-scores, kind="stable")
        return [Ranked(int(i), candidates[int(i)], float(scores[i])) for i in order]

    def top_k(self, prompt: str, candidates: Sequence[str], k: int = 1) -> list[Ranked]:
        """The ``k`` best candidates, best first."""
        if k < 1:
            raise RewardError(f"k: must be >= 1, got {k}")
        return self.rerank(prompt, candidates)[:k]

    def action_dist(
        self, prompt: str, candidates: Sequence[str], temperature: float = 1.0
    ) -> npt.NDArray[np.float64]:
        """A softmax over the scores, shape (n_candidates,): the distribution to log as ``action_dist``
        when the reranker samples (``temperature`` > 0; lower is greedier)."""
        if not temperature > 0:
            raise RewardError(f"temperature: must be > 0, got {temperature}")
        z = self.score(prompt, candidates) / temperature
        z = np.exp(z - z.max())
        dist: npt.NDArray[np.float64] = z / z.sum()
        return dist

    def decide(self, context: DecisionContext, rng: np.random.Generator) -> Decision:
        """Rank ``context.candidates`` for the prompt ``context.text`` (the policy contract).

        The top answer is drawn from :attr:`exploration` applied to the softmax of the scores; the rest
        follow by score. ``action_dist`` is that distribution over the top answer and ``pscore`` the
        chosen entry.
        """
        actions = context.candidate_actions()
        candidates = list(context.candidates or ())
        start = time.perf_counter()
        try:
            proba = self.action_dist(context.text or "", candidates)  # (n,) softmax of the scores
        except RewardError as err:
            raise PolicyInputError("candidates", str(err)) from None
        dist = self.exploration.action_dist(proba[None])[0]  # (n,)
        top = int(draw(dist[None], rng)[0])
        latency = (time.perf_counter() - start) * 1000.0
        order = [top, *(int(i) for i in np.argsort(-proba, kind="stable") if i != top)]
        return Decision(
            policy="reranker",
            policy_version="0",
            kind="reranker",
            actions=actions,
            action=actions[top],
            action_dist=tuple(float(p) for p in dist),
            pscore=float(dist[top]),
            confidence=float(proba[top]),
            latency_ms=latency,
            text=context.text,
            candidates=tuple(candidates),
            ranking=tuple(actions[i] for i in order),
            metadata=dict(context.metadata),
        )

    def warm(self) -> None:
        """Load the reward model's encoder and score once, so that the first request does not pay for it."""
        if self.model is not None:
            self.score("warm-up", ["warm-up"])


__all__ = ["Ranked", "Reranker", "UntrainedRerankerWarning"]
