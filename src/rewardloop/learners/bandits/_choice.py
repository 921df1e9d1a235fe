"""From scores to a choice and its action distribution: the pieces the algorithms' ``_decide`` share."""

from __future__ import annotations

import numpy as np

from rewardloop.learners.bandits._base import IntArray
from rewardloop.policies.router import FloatArray


def argmax_ties(scores: FloatArray, rng: np.random.Generator, i: int | None = None) -> tuple[int, FloatArray]:
    """The index of the highest score (ties broken uniformly at random) and the distribution of that
    choice: uniform over the tied arms, shape (n_actions,). ``i`` is ``scores.argmax()`` if known."""
    if i is None:
        i = int(scores.argmax())
    dist = np.zeros(len(scores))
    is_top = scores == scores[i]
    n_top = np.count_nonzero(is_top)
    if n_top > 1:
        dist[is_top] = 1.0 / n_top
        i = draw_tie(scores, rng, i)
    else:
        dist[i] = 1.0
    return i, dist


def draw_tie(scores: FloatArray, rng: np.random.Generator, i: int) -> int:
    """One of the arms whose score equals ``scores[i]``, drawn uniformly with one ``rng.integers``."""
    ties = np.flatnonzero(scores == scores[i])
    return int(ties[rng.integers(len(ties))])


def one_hot(i: int, k: int) -> FloatArray:
    """The distribution that puts all its mass on arm ``i`` of ``k``: a choice logged without a
    propensity estimate (``n_draws=0``), shape (k,)."""
    dist = np.zeros(k)
    dist[i] = 1.0
    return dist


def monte_carlo_dist(winners: IntArray, chosen: int, k: int) -> FloatArray:
    """Action distribution estimated from ``n_draws`` independent re-draws of the randomised choice
    (their argmax ``winners``), with the draw actually used (``chosen``) counted as one more draw:
    ``p̂_k = (#{winners == k} + [chosen == k]) / (n_draws + 1)``.

    Each term is an unbiased estimate of the true probability, and the chosen arm's estimate is never
    zero (at least ``1 / (n_draws + 1)``), so importance weights stay finite.
    """
    counts = np.bincount(winners, minlength=k).astype(np.float64)
    counts[chosen] += 1.0
    return counts / (len(winners) + 1)
