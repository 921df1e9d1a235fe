"""The serving path's counterfactual flag: would the experiment's other variant serve a request otherwise?"""

from __future__ import annotations

import numpy as np

from rewardloop.loop.experiments import Experiments
from rewardloop.loop.serving import ServingPath
from rewardloop.policies.contract import DecisionContext, Exploration
from rewardloop.store import Store
from rewardloop.store.experiments import TRIGGER_KEY
from rewardloop.types import Decision


class Keyword:
    """A two-label policy served ε-greedy: 'on' for texts with ``word``, else 'off'."""

    def __init__(self, word: str) -> None:
        self.word = word
        self.exploration = Exploration("epsilon", 0.2)

    def decide(self, context: DecisionContext, rng: np.random.Generator) -> Decision:
        best = 0 if self.word in (context.text or "") else 1
        dist = self.exploration.action_dist(np.eye(2)[[best]])[0]  # (K,)
        action = int(rng.choice(2, p=dist))
        return Decision(policy="p", policy_version="?", kind="classifier", actions=("on", "off"),
                        action=("on", "off")[action], action_dist=tuple(dist.tolist()),
                        pscore=float(dist[action]), text=context.text)  # fmt: skip


def test_a_request_is_triggered_when_the_other_variant_would_serve_it_otherwise():
    store = Store.open("sqlite://")
    ex = Experiments(store)
    exp = ex.start("e", "p", challenger="2", champion="1", salt="s", ramp=[0.5, 1.0])
    versions = {"1": Keyword("light"), "2": Keyword("lamp")}
    texts = ["light on", "lamp on", "light and lamp", "music"]
    flags, draws = {}, {}
    for counterfactual in (False, True):
        path = ServingPath("p", ex, running=lambda: exp, champion=lambda: "1", load=versions.__getitem__,
                           counterfactual=counterfactual)  # fmt: skip
        rng = np.random.default_rng(0)
        served = [path.serve(DecisionContext(text=t), f"user-{i}", rng).decision for i, t in enumerate(texts)]
        flags[counterfactual] = [d.metadata.get(TRIGGER_KEY) for d in served]
        draws[counterfactual] = [(d.variant, d.action) for d in served]
    # the two keyword models disagree on "light on" and "lamp on" only
    assert flags[True] == [True, True, False, False]
    assert flags[False] == [None] * 4
    assert draws[True] == draws[False]  # the counterfactual does not move the request's draws
