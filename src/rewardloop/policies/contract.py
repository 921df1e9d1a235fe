"""The policy contract: one context type, one ``decide(context, rng) -> Decision``, one exploration.

Every kind of decision model — classifier, router (bandits in :mod:`rewardloop.learners.bandits`, the
gating network), reranker, and a classifier behind the DQN abstain gate — decides on a
:class:`DecisionContext` with a random generator it is handed, and returns a loggable
:class:`~rewardloop.types.Decision` carrying the full action distribution, the propensity of the chosen
action (``pscore == action_dist[chosen]``), confidence and latency. Randomness comes only from ``rng``,
so the same seed gives the same decision.

How a model's probabilities become the distribution it is served with is :class:`Exploration`, read
from ``policies[].options`` (``explore``, ``epsilon``, ``temperature``) by
:meth:`Exploration.from_options` — the one place those options are read. Off-policy evaluation uses the
same object (:func:`rewardloop.evaluation.offline.candidate_action_dist`), so a policy is scored offline
exactly as it is served.

Loading an artifact of any kind is :func:`rewardloop.loop.serving.load_policy` (routers live in
``learners``, which this layer may not import).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, get_args, runtime_checkable

import numpy as np
import numpy.typing as npt

from rewardloop.types import Decision

FloatArray = npt.NDArray[np.float64]
ExploreMode = Literal["greedy", "sample", "epsilon"]
EXPLORE_MODES: tuple[str, ...] = get_args(ExploreMode)
PolicyKind = Literal[
    "classifier", "router", "reranker", "abstain_gate", "set", "category_actions", "generator"
]
#: The kinds :func:`rewardloop.loop.serving.load_policy` loads. ``abstain_gate`` is a classifier behind a
#: DQN gate; its decisions are logged as kind ``classifier``. ``set`` decides a subset of a label space
#: (:mod:`rewardloop.policies.multilabel`); ``category_actions`` a classifier's label with a set beside
#: it, logged as kind ``classifier``. ``generator`` answers in free text
#: (:mod:`rewardloop.policies.generator`).
POLICY_KINDS: tuple[str, ...] = get_args(PolicyKind)
#: Metadata key of a decision served behind an abstain gate: ``"act"`` or ``"abstain"``
#: (:class:`rewardloop.policies.abstain.GatedClassifier`; the review policy queues ``"abstain"``).
GATE_KEY = "abstain_gate"
#: Keys of ``policies[].options`` that :meth:`Exploration.from_options` reads.
EXPLORATION_OPTIONS = ("explore", "epsilon", "temperature")


class PolicyInputError(ValueError):
    """A policy was given bad input (a context, an option); nothing changed.

    Attributes
    ----------
    field : str
        What was wrong: ``"text"``, ``"features"``, ``"candidates"``, ``"options.epsilon"``...
    reason : str
        The reason, in words a user can act on.
    """

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")


@dataclass(frozen=True)
class DecisionContext:
    """What every policy decides on.

    Parameters
    ----------
    text : str, optional
        The request text (classifiers read it; routers and rerankers log it, rerankers use it as the
        prompt).
    features : tuple of float, optional
        Numeric context (routers).
    candidates : tuple of str, optional
        Candidate answers to rank (rerankers).
    actions : tuple of str, optional
        Names of the candidates, aligned with ``candidates``; default ``c0, c1, ...``.
    metadata : mapping
        Free metadata logged with the decision (``user_id``, ``category``...).

    Examples
    --------
    >>> DecisionContext(candidates=("a", "b")).candidate_actions()
    ('c0', 'c1')
    """

    text: str | None = None
    features: tuple[float, ...] | None = None
    candidates: tuple[str, ...] | None = None
    actions: tuple[str, ...] | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.features is not None:
            try:
                feats = tuple(float(v) for v in self.features)
            except (TypeError, ValueError):
                raise PolicyInputError("features", "must be a list of numbers") from None
            if not all(math.isfinite(v) for v in feats):
                raise PolicyInputError("features", "must be finite numbers (found NaN or inf)")
            object.__setattr__(self, "features", feats)
        if self.candidates is not None:
            object.__setattr__(self, "candidates", tuple(self.candidates))
        if self.actions is not None:
            actions = tuple(self.actions)
            if self.candidates is None or len(actions) != len(self.candidates):
                n = 0 if self.candidates is None else len(self.candidates)
                raise PolicyInputError("actions", f"has {len(actions)} names for {n} candidates")
            if len(set(actions)) != len(actions):
                raise PolicyInputError("actions", "must not repeat a name")
            object.__setattr__(self, "actions", actions)
        if not isinstance(self.metadata, Mapping):
            raise PolicyInputError("metadata", "must be a mapping")

    def require_text(self) -> str:
        """The text, or :class:`PolicyInputError` when there is none."""
        if not self.text:
            raise PolicyInputError("text", "this policy decides on `text`; none given")
        return self.text

    def require_features(self) -> tuple[float, ...]:
        """The numeric features, or :class:`PolicyInputError` when there are none."""
        if self.features is None:
            raise PolicyInputError("features", "a router decides on `features`; none given")
        return self.features

    def candidate_actions(self) -> tuple[str, ...]:
        """The candidates' names (``actions``, default ``c0, c1, ...``); at least one candidate."""
        if not self.candidates:
            raise PolicyInputError("candidates", "a reranker ranks `candidates`; none given")
        return self.actions or tuple(f"c{i}" for i in range(len(self.candidates)))


@dataclass(frozen=True)
class Exploration:
    """How a policy turns its model's probabilities into the distribution it acts from.

    Parameters
    ----------
    mode : {"greedy", "sample", "epsilon"}, default "epsilon"
        ``greedy``: the arg-max (one-hot, propensity 1: logs that no estimator can reuse);
        ``sample``: draw from the model's distribution (tempered by ``temperature``);
        ``epsilon``: the arg-max with probability 1-ε, a uniform action otherwise.
    epsilon : float, default 0.1
        ε of mode ``epsilon``, in [0, 1]. Every action then has propensity at least ε/K.
    temperature : float, default 1.0
        Mode ``sample`` draws from ``p ∝ proba^(1/temperature)`` (a softmax of scores at temperature T);
        lower is greedier.

    Examples
    --------
    >>> Exploration("epsilon", epsilon=0.2).action_dist(np.array([[0.7, 0.2, 0.1]])).round(4).tolist()
    [[0.8667, 0.0667, 0.0667]]
    """

    mode: ExploreMode = "epsilon"
    epsilon: float = 0.1
    temperature: float = 1.0

    def __post_init__(self) -> None:
        if self.mode not in EXPLORE_MODES:
            raise PolicyInputError("explore", f"must be greedy, sample or epsilon, got {self.mode!r}")
        if not (isinstance(self.epsilon, int | float) and 0.0 <= self.epsilon <= 1.0):
            raise PolicyInputError("epsilon", f"must be in [0, 1], got {self.epsilon!r}")
        if not (
            isinstance(self.temperature, int | float)
            and self.temperature > 0
            and math.isfinite(self.temperature)
        ):
            raise PolicyInputError("temperature", f"must be a finite number > 0, got {self.temperature!r}")

    @classmethod
    def from_options(cls, options: Mapping[str, Any], default_mode: ExploreMode = "epsilon") -> Exploration:
        """The exploration ``policies[].options`` configure: ``explore``, ``epsilon``, ``temperature``.

        Errors name the option (``options.epsilon: must be a number in [0, 1], got 2``).
        """
        try:
            return cls(
                options.get("explore", default_mode),
                options.get("epsilon", 0.1),
                options.get("temperature", 1.0),
            )
        except PolicyInputError as err:
            raise PolicyInputError(f"options.{err.field}", err.reason) from None

    def describe(self) -> str:
        """``greedy``, ``sample (T=0.5)`` or ``epsilon-greedy (ε=0.1)``: what reports print."""
        if self.mode == "epsilon":
            return f"epsilon-greedy (ε={self.epsilon:g})"
        if self.mode == "sample":
            return f"sample (T={self.temperature:g})"
        return "greedy"

    def action_dist(self, proba: FloatArray) -> FloatArray:
        """The served distribution, shape (n, K), for model probabilities ``proba`` of shape (n, K)."""
        proba = np.asarray(proba, dtype=np.float64)
        if proba.ndim != 2 or proba.shape[1] < 1:
            raise PolicyInputError("proba", f"expected shape (n, K), got {proba.shape}")
        k = proba.shape[1]
        if self.mode == "sample":
            if self.temperature == 1.0:
                dist = proba
            else:  # p^(1/T), computed in log space so that small probabilities do not underflow
                logp = np.log(np.clip(proba, 1e-300, None)) / self.temperature
                dist = np.exp(logp - logp.max(axis=1, keepdims=True))
        else:
            dist = np.eye(k)[proba.argmax(axis=1)]  # (n, K) one-hot arg-max
            if self.mode == "epsilon":
                dist = (1.0 - self.epsilon) * dist + self.epsilon / k
        out: FloatArray = dist / dist.sum(axis=1, keepdims=True)
        return out


def draw(dist: FloatArray, rng: np.random.Generator) -> npt.NDArray[np.int64]:
    """One action per row of ``dist`` (n, K), by inverse-CDF sampling with one uniform draw per row."""
    u = rng.random((dist.shape[0], 1))  # (n, 1)
    chosen: npt.NDArray[np.int64] = np.minimum((dist.cumsum(axis=1) < u).sum(axis=1), dist.shape[1] - 1)
    return chosen


@runtime_checkable
class Policy(Protocol):
    """What serving needs from a policy of any kind.

    ``decide`` returns a :class:`~rewardloop.types.Decision` whose ``action_dist`` sums to 1 and whose
    ``pscore`` is the chosen entry of it; all randomness is drawn from ``rng``. It raises
    :class:`PolicyInputError` naming the field when the context lacks what the policy reads.
    """

    def decide(self, context: DecisionContext, rng: np.random.Generator) -> Decision: ...


@runtime_checkable
class Warmable(Protocol):
    """A policy with heavy lazy state (an encoder) that ``warm()`` loads ahead of the first request."""

    def warm(self) -> None: ...


__all__ = [
    "EXPLORATION_OPTIONS",
    "EXPLORE_MODES",
    "GATE_KEY",
    "POLICY_KINDS",
    "DecisionContext",
    "Exploration",
    "ExploreMode",
    "Policy",
    "PolicyInputError",
    "PolicyKind",
    "Warmable",
    "draw",
]
