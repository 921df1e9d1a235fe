"""The store adapter: logged decisions with compiled rewards as OPE arrays."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from rewardloop.evaluation.ope._common import FloatArray, IntArray, OPEInputError


@dataclass(frozen=True)
class LoggedFeedback:
    """Logged decisions as OPE arrays, aligned with ``actions`` (the shared candidate set).

    ``behavior_action_dist`` is the logging policy's full distribution, which rewardloop logs on every
    decision, so the support diagnostics are exact.
    """

    actions: tuple[str, ...]
    action: IntArray  # (n,)
    pscore: FloatArray  # (n,)
    reward: FloatArray  # (n,)
    behavior_action_dist: FloatArray  # (n, K)
    decision_ids: list[str]

    @property
    def n_rounds(self) -> int:
        return int(self.action.shape[0])


def logged_feedback_from_decisions(batch: Any) -> LoggedFeedback:
    """Turn a store ``DecisionBatch`` (with compiled rewards) into OPE arrays.

    Decisions without a reward are left out. Every decision must offer the same ``actions`` in the same
    order (a router's experts, a classifier's labels); otherwise an :class:`OPEInputError` names the first
    one that differs.
    """
    kept = [d for d in batch.decisions if d.id in batch.rewards]
    if not kept:
        raise OPEInputError("decisions: none has a compiled reward (compile rewards before OPE)")
    actions = kept[0].actions
    for d in kept:
        if d.actions != actions:
            raise OPEInputError(
                f"decisions: {d.id} offers actions {list(d.actions)[:5]}, not the same as {list(actions)[:5]}"
            )
    return LoggedFeedback(
        actions=actions,
        action=np.fromiter((d.action_index for d in kept), np.int64, len(kept)),
        pscore=np.fromiter((d.pscore for d in kept), np.float64, len(kept)),
        reward=np.fromiter((batch.rewards[d.id].value for d in kept), np.float64, len(kept)),
        behavior_action_dist=np.asarray([d.action_dist for d in kept], dtype=np.float64),
        decision_ids=[d.id for d in kept],
    )
