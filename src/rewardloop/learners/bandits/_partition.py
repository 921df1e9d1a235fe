"""Replay over partitions of the log: each part's additive statistics, computed apart, then summed.

A bandit router's offline replay (:func:`rewardloop.learners.bandits.replay.replay`) is a function of
per-arm sums over the logged rows, so it splits exactly by rows:

==================  =====================================================  ==========================
router              statistics of a part (summed over its rows, per arm)   exact by partition
==================  =====================================================  ==========================
``linucb``          ``Σ w x xᵀ`` (A) and ``Σ w r x`` (b)                    yes
``lin_thompson``    the same ridge sums (its posterior is ``N(A⁻¹b, v²A⁻¹)``)  yes
``epsilon_greedy``  the same ridge sums                                    yes
``softmax``         the same ridge sums                                    yes
``beta_thompson``   ``Σ w u`` and ``Σ w (1 − u)`` (α and β)                 yes
gating network      — (``learners.gating``: minibatch SGD, order-dependent)  no
==================  =====================================================  ==========================

The replay weights (``(1/K)/pscore``, per row) and the row checks are computed on the whole log
first, so a bad row is refused with its index in the log and the router is unchanged. What is *not*
order-free, and so is not partitioned: simulating the router on the log (a Thompson router's draws,
and the rejection-sampling replay of Li et al. 2011, depend on every earlier update), and the
gating network's SGD. The sums of the parts equal the sum of the whole up to floating-point rounding
(about 1e-15 relative; the tests check the router's state to 1e-9).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from rewardloop.policies.router import FloatArray, RouterInputError

if TYPE_CHECKING:
    from rewardloop.learners.bandits._base import BanditRouter

#: ``map_parts(fn, shared, parts) -> [fn(shared, part) for part in parts]``, in order: where the parts'
#: statistics are computed (in turn, or as Ray tasks: ``loop.compute.ComputeBackend.map_parts``).
MapParts = Callable[[Callable[[Any, Any], Any], Any, Sequence[Any]], list[Any]]
#: Checked rows: contexts (n, dim) or None, arm indices (n,), rewards (n,), weights (n,).
Rows = tuple[Any, Any, FloatArray, FloatArray]


def in_turn(fn: Callable[[Any, Any], Any], shared: Any, parts: Sequence[Any]) -> list[Any]:
    """The local :data:`MapParts`: each part in turn, in this process."""
    return [fn(shared, part) for part in parts]


def split_rows(rows: Rows, partitions: int) -> list[Rows]:
    """``partitions`` contiguous parts of the rows (in log order), as even as the count allows."""
    if partitions < 1:
        raise RouterInputError("partitions", f"must be at least 1, got {partitions}")
    X, idx, r, w = rows
    bounds = np.linspace(0, len(r), partitions + 1).astype(int)
    return [
        (None if X is None else X[lo:hi], idx[lo:hi], r[lo:hi], w[lo:hi])
        for lo, hi in itertools.pairwise(bounds)
    ]


def part_statistics(router: BanditRouter, part: Rows) -> dict[str, FloatArray]:
    """One part's additive statistics (the router's ``_batch_statistics``); a Ray task runs this."""
    return router._batch_statistics(*part)


def partitioned_statistics(
    router: BanditRouter, rows: Rows, partitions: int, map_parts: MapParts | None = None
) -> dict[str, FloatArray]:
    """The statistics of all checked ``rows``: the sum of their ``partitions`` parts' statistics."""
    parts = split_rows(rows, partitions)
    stats = (map_parts or in_turn)(part_statistics, router, parts)
    total = {k: np.array(v, dtype=np.float64) for k, v in stats[0].items()}
    for more in stats[1:]:
        for k, v in more.items():
            total[k] += v
    return total


__all__ = ["MapParts", "in_turn", "part_statistics", "partitioned_statistics", "split_rows"]
