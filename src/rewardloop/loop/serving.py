"""One serving path for the service and the demo: assign → decide → tag/shadow.

A request for policy ``name`` goes to the version its unit's experiment variant names (the champion
when no experiment runs or the request names no unit), is decided by that version with
``decide(context, rng)`` (:mod:`rewardloop.policies.contract`), named after the policy and version it
came from, and tagged with the experiment, variant and variant share; in a shadow experiment the
challenger decides the same context too (logged, never served).

:func:`load_policy` loads an artifact of any policy kind, served with the exploration
``policies[].options`` configure (:func:`exploration_for`: the one place those options are read).

Randomness: the caller hands ``rng``. The demo passes its seeded generator; the service derives one per
request from the decision's id (:func:`request_rng`), so a logged decision's draw can be replayed and
concurrent requests share no generator.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rewardloop.loop.experiments import Assignment, Experiments
from rewardloop.policies.contract import (
    EXPLORATION_OPTIONS,
    POLICY_KINDS,
    DecisionContext,
    Exploration,
    Policy,
    PolicyInputError,
    Warmable,
)
from rewardloop.store.experiments import TRIGGER_KEY
from rewardloop.types import Decision, Experiment

#: The kinds that explore their own way, and how (``exploration_for`` refuses the options for them).
_OWN_EXPLORATION = {
    "router": "a router explores by its own algorithm",
    "generator": "a generator samples with the decoding saved with it (mode, temperature, top_k, top_p)",
}


def exploration_for(kind: str, options: Mapping[str, Any]) -> Exploration | None:
    """The exploration a policy of ``kind`` is served with, from its ``policies[].options``.

    Classifiers (and gated ones) default to ε-greedy with ε = 0.1, rerankers to sampling from the
    softmax of their scores; routers explore by their own algorithm and generators by the decoding
    saved with them (None), and both refuse the options.
    """
    if kind in _OWN_EXPLORATION:
        given = [k for k in EXPLORATION_OPTIONS if k in options]
        if given:
            raise PolicyInputError(f"options.{given[0]}", f"{_OWN_EXPLORATION[kind]}; remove the option")
        return None
    return Exploration.from_options(options, "sample" if kind == "reranker" else "epsilon")


def served_kind(kind: str, path: str | Path) -> str:
    """The policy kind to load a registered artifact as: a classifier folder that holds a gate too
    (``gate.json``, saved by :meth:`~rewardloop.policies.abstain.GatedClassifier.save`) is served
    behind its abstain gate; one that holds a category and actions (``composite.json``) as both."""
    if kind == "classifier" and (Path(path) / "composite.json").is_file():
        return "category_actions"
    return "abstain_gate" if kind == "classifier" and (Path(path) / "gate.json").is_file() else kind


def load_policy(kind: str, path: str | Path, exploration: Exploration | None = None) -> Policy:
    """Load a saved policy of ``kind`` (classifier, router, reranker, abstain_gate, set,
    category_actions or generator) from ``path``.

    ``exploration`` sets how classifiers and rerankers are served (default: :func:`exploration_for`
    with no options). A router folder holds a bandit (``router.json``) or a gating network
    (``gating.json``). Nothing loaded runs code (safetensors, JSON, ``.npz`` without pickle).

    >>> load_policy("ranker", ".")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    rewardloop.policies.contract.PolicyInputError: kind: must be one of classifier, ... got 'ranker'
    """
    if kind not in POLICY_KINDS:
        raise PolicyInputError("kind", f"must be one of {', '.join(POLICY_KINDS)}; got {kind!r}")
    folder = Path(path)
    served = exploration if exploration is not None else exploration_for(kind, {})
    if kind == "classifier":
        from rewardloop.policies.classifier import ClassifierPolicy

        return ClassifierPolicy.load(folder, exploration=served)
    if kind == "abstain_gate":
        from rewardloop.policies.abstain import GatedClassifier

        return GatedClassifier.load(folder, exploration=served)
    if kind == "reranker":
        from rewardloop.policies.reranker import Reranker

        return Reranker.load(folder, exploration=served)
    if kind == "generator":
        from rewardloop.policies.generator import GeneratorPolicy

        return GeneratorPolicy.load(folder)
    if kind in ("set", "category_actions"):
        from rewardloop.policies.multilabel import CategoryAndActions, MultiLabelPolicy

        if kind == "set":
            return MultiLabelPolicy.load(folder, exploration=served)
        return CategoryAndActions.load(folder, exploration=served)
    if (folder / "gating.json").is_file():
        from rewardloop.policies.gating import GatingPolicy

        return GatingPolicy.load(folder)
    from rewardloop.learners.bandits import load_router

    return load_router(folder)


def warm(policy: Policy) -> None:
    """Load what ``policy`` loads lazily (its encoder) now, ahead of the first request."""
    if isinstance(policy, Warmable):
        policy.warm()


def request_rng(decision_id: str) -> np.random.Generator:
    """The generator a served decision draws from, seeded by its id: replayable from the log."""
    return np.random.default_rng(int.from_bytes(hashlib.sha256(decision_id.encode()).digest()[:16], "big"))


@dataclass(frozen=True)
class Served:
    """The decision served (named, tagged with its experiment and variant) and, in shadow mode, the
    challenger's decision on the same context (its own id, no idempotency key: logged, not served).

    ``answer``: when a router chose an arm that another policy answers (``ServingPath.arm_path``), that
    policy's decision on the same context, served through its own path; the two name each other
    (``metadata.answer_decision_id`` on the router's, ``metadata.routed_by`` and ``routed_arm`` on the
    answer)."""

    decision: Decision
    shadow: Decision | None = None
    answer: Decision | None = None


@dataclass(eq=False)
class ServingPath:
    """assign → decide → tag/shadow for one policy.

    Parameters
    ----------
    policy : str
        The policy's name: every decision is logged under it.
    experiments : Experiments
        Assigns a unit to a variant of the running experiment.
    running : callable () -> Experiment or None
        The policy's running experiment (the service caches it for a few seconds).
    champion : callable () -> str
        The champion's version.
    load : callable (version) -> Policy
        The loaded policy of a version (cached by the caller).
    decide : callable (policy, context, rng) -> Decision, optional
        How a loaded policy decides; default ``policy.decide(context, rng)``. The service passes its
        micro-batcher (:class:`rewardloop.service.batching.MicroBatcher`), which draws the same.
    arm_path : callable (arm) -> ServingPath or None, optional
        For a router: the serving path of the policy that answers an arm (None: the arm is answered by
        the caller). The served arm's policy decides the same context with its champion, experiment or
        pinned version, on a generator spawned from ``rng`` (the router's draws are unchanged).
    counterfactual : bool, default False
        In a live champion/challenger experiment, also ask the variant the request was *not* assigned
        to for its action distribution (from a generator of its own: the request's draws are
        unchanged), and flag the served decision ``metadata["triggered"]``: True when the two
        distributions differ. A request both variants would serve alike has the same outcome
        distribution in both arms, so the verdict compares the arms on the triggered ones only
        (:meth:`~rewardloop.loop.experiments.Experiments.evaluate`). Costs one more decide per request
        during an experiment (for a classifier, one more head on the cached embedding).
    """

    policy: str
    experiments: Experiments
    running: Callable[[], Experiment | None]
    champion: Callable[[], str]
    load: Callable[[str], Policy]
    decide: Callable[[Policy, DecisionContext, np.random.Generator], Decision] | None = None
    counterfactual: bool = False
    arm_path: Callable[[str], ServingPath | None] | None = None

    def assign(self, unit_id: str | None) -> Assignment | None:
        """Where the unit's request goes in the running experiment (None: the champion serves it)."""
        exp = self.running()
        if exp is None or unit_id is None:
            return None
        return self.experiments.assign(exp, unit_id)

    def decide_with(
        self, version: str, context: DecisionContext, rng: np.random.Generator, decision_id: str | None = None
    ) -> Decision:
        """``version``'s decision on ``context``, named after this policy and that version."""
        loaded = self.load(version)
        decision = loaded.decide(context, rng) if self.decide is None else self.decide(loaded, context, rng)
        named = dataclasses.replace(decision, policy=self.policy, policy_version=version)
        return named if decision_id is None else dataclasses.replace(named, id=decision_id)

    def serve(
        self,
        context: DecisionContext,
        unit_id: str | None,
        rng: np.random.Generator,
        *,
        idempotency_key: str | None = None,
        decision_id: str | None = None,
    ) -> Served:
        """Assign the request, decide with the assigned version, tag it; decide the shadows too."""
        assignment = self.assign(unit_id)
        version = assignment.version if assignment is not None else self.champion()
        decision = self.decide_with(version, context, rng, decision_id)
        decision = dataclasses.replace(decision, idempotency_key=idempotency_key)
        shadow = None
        if assignment is not None:
            if self.counterfactual and not assignment.shadow:
                decision = self._flag_trigger(assignment, context, decision)
            for variant, shadow_version in assignment.shadow:
                shadow = assignment.tag_shadow(self.decide_with(shadow_version, context, rng), variant)
            decision = assignment.tag(decision)
        decision, answer = self._answer(decision, context, unit_id, rng)
        return Served(decision, shadow, answer)

    def _answer(
        self, decision: Decision, context: DecisionContext, unit_id: str | None, rng: np.random.Generator
    ) -> tuple[Decision, Decision | None]:
        """A router's decision and the answer of the policy its arm names (None when none does)."""
        path = (
            self.arm_path(decision.action)
            if self.arm_path is not None and decision.kind == "router"
            else None
        )
        if path is None:
            return decision, None
        key = None if decision.idempotency_key is None else f"{decision.idempotency_key}/answer"
        answer = path.serve(context, unit_id, rng.spawn(1)[0], idempotency_key=key).decision
        answer = dataclasses.replace(
            answer, metadata={**answer.metadata, "routed_by": decision.id, "routed_arm": decision.action}
        )
        routed = dataclasses.replace(
            decision, metadata={**decision.metadata, "answer_decision_id": answer.id}
        )
        return routed, answer

    def _flag_trigger(self, assignment: Assignment, context: DecisionContext, decision: Decision) -> Decision:
        """``decision`` flagged ``triggered``: would the experiment's other variant serve it otherwise?"""
        exp = self.running()
        others = [v for k, v in (exp.variants if exp is not None else {}).items() if k != assignment.variant]
        if len(others) != 1:  # the flag compares two variants
            return decision
        # A generator of its own: the counterfactual's draw must not move the served request's stream;
        # only its distribution is read.
        other = self.decide_with(others[0], context, np.random.default_rng(0))
        same = tuple(other.actions) == tuple(decision.actions) and np.allclose(
            other.action_dist, decision.action_dist, rtol=0.0, atol=1e-12
        )
        return dataclasses.replace(decision, metadata={**decision.metadata, TRIGGER_KEY: not same})


__all__ = [
    "Served",
    "ServingPath",
    "exploration_for",
    "load_policy",
    "request_rng",
    "served_kind",
    "warm",
]
