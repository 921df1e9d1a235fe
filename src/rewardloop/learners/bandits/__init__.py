"""Bandit routers: pick which of K arms (agents, experts, models) handles a request, and learn from the
reward it gets.

=================  =========================================================  ==================
class              decision                                                   propensity
=================  =========================================================  ==================
``LinUCB``         argmax of θᵀx + α√(xᵀA⁻¹x)  (Li et al. 2010)                1 (one-hot; ties split)
``LinearThompson`` argmax of a posterior draw  (Agrawal & Goyal 2013)          Monte-Carlo estimate
``EpsilonGreedy``  greedy on θᵀx, uniform with probability ε                   exact
``Softmax``        draw from softmax(θᵀx / τ)                                  exact
``BetaThompson``   argmax of Beta draws, context-free  (Chapelle & Li 2011)    Monte-Carlo estimate
=================  =========================================================  ==================

Every router is one object with ``act(x) -> RouterDecision`` and ``learn(x, arm, reward)`` — the
sufficient statistics are the model, so deciding and updating share them (see
:mod:`rewardloop.policies.router` for the argument); ``fit``/``partial_fit`` learn a logged batch at
once, ``save``/``load_router`` persist to ``router.json`` + ``state.npz``.
"""

from pathlib import Path

from rewardloop.learners.bandits._base import BanditRouter
from rewardloop.learners.bandits._saved import read_saved
from rewardloop.learners.bandits.beta_thompson import BetaThompson
from rewardloop.learners.bandits.epsilon_greedy import EpsilonGreedy
from rewardloop.learners.bandits.lin_thompson import LinearThompson
from rewardloop.learners.bandits.linucb import LinUCB
from rewardloop.learners.bandits.softmax import Softmax
from rewardloop.policies.router import RouterInputError

#: Name → class, for the CLI, configs and :func:`load_router`.
ROUTERS: dict[str, type[BanditRouter]] = {
    "linucb": LinUCB,
    "lin_thompson": LinearThompson,
    "epsilon_greedy": EpsilonGreedy,
    "softmax": Softmax,
    "beta_thompson": BetaThompson,
}


def load_router(path: str | Path) -> BanditRouter:
    """Restore any router saved with ``save(path)``; it decides exactly as the saved one would have."""
    meta, _ = read_saved(path)
    cls = ROUTERS.get(meta["algorithm"])
    if cls is None:
        raise RouterInputError("algorithm", f"unknown router {meta['algorithm']!r}; known: {sorted(ROUTERS)}")
    return cls.load(path)


__all__ = [
    "ROUTERS",
    "BanditRouter",
    "BetaThompson",
    "EpsilonGreedy",
    "LinUCB",
    "LinearThompson",
    "Softmax",
    "load_router",
]
