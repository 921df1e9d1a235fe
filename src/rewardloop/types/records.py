"""The records of the loop: one schema for classifiers, routers and rerankers.

Every record is a frozen, slotted dataclass that validates itself on construction, so an invalid
record cannot exist. A failed check raises :class:`RecordError` naming the field and the reason;
batch writers add the row number.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, get_args

from rewardloop.types.errors import RecordError
from rewardloop.types.limits import check_json, check_text, check_texts, check_time
from rewardloop.types.sets import (
    check_action_set,
    check_feedback_labels,
    check_set_joint,
    set_pscore,
)

DecisionKind = Literal["classifier", "router", "reranker", "generator", "set"]
FeedbackKind = Literal[
    "rating",
    "correction",
    "preference",
    "multilevel",
    "implicit",
    "missed_actions",
    "unnecessary_actions",
    "set_correction",
]
FeedbackSource = Literal["human", "golden", "judge", "implicit"]
ReviewStatus = Literal["open", "claimed", "resolved"]
RunStatus = Literal["running", "succeeded", "failed"]
ExperimentStatus = Literal["running", "promoted", "rolled_back", "stopped"]

DECISION_KINDS: tuple[str, ...] = get_args(DecisionKind)
FEEDBACK_KINDS: tuple[str, ...] = get_args(FeedbackKind)
FEEDBACK_SOURCES: tuple[str, ...] = get_args(FeedbackSource)

#: Tolerance on "the action distribution sums to 1" and "pscore equals the chosen action's probability".
PROB_TOL = 1e-6


def new_id() -> str:
    """A fresh 32-character hex id (uuid4)."""
    return uuid.uuid4().hex


def utcnow() -> datetime:
    return datetime.now(UTC)


def _finite(name: str, value: float) -> float:
    kind = type(value)
    # Exact int/float first: this runs several times per row of every bulk write.
    if (
        kind is not float
        and kind is not int
        and (isinstance(value, bool) or not isinstance(value, (int, float)))
    ):
        raise RecordError(name, f"must be a number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value):
        raise RecordError(name, f"must be finite, got {value}")
    return value


def _unit(name: str, value: float) -> float:
    value = _finite(name, value)
    if not 0.0 <= value <= 1.0:
        raise RecordError(name, f"must be in [0, 1], got {value}")
    return value


def _nonempty(name: str, value: str) -> None:
    if not isinstance(value, str) or not value.strip():
        raise RecordError(name, "must be a non-empty string")


def _set_times(record: Decision | Feedback) -> None:
    """``created_at`` and ``client_time`` as aware UTC times (naive ones are taken as UTC)."""
    object.__setattr__(record, "created_at", check_time("created_at", record.created_at))
    if record.client_time is not None:
        object.__setattr__(record, "client_time", check_time("client_time", record.client_time))


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise RecordError(name, f"must be one of {', '.join(allowed)}; got {value!r}")


@dataclass(frozen=True, slots=True)
class TraceStep:
    """One step of a multi-step decision, e.g. expert selection then graph traversal."""

    name: str
    action: str
    logp: float

    def __post_init__(self) -> None:
        _nonempty("trace.name", self.name)
        check_text("trace.name", self.name)
        check_text("trace.action", self.action)
        logp = _finite("trace.logp", self.logp)
        if logp > 1e-12:
            raise RecordError("trace.logp", f"a log-probability must be <= 0, got {logp}")


@dataclass(frozen=True, slots=True)
class Decision:
    """A decision a policy made in production, logged with everything off-policy learning needs.

    Parameters
    ----------
    policy, policy_version : str
        Which policy decided, and which version of it.
    kind : {"classifier", "router", "reranker", "generator", "set"}
    actions : tuple of str
        The candidate actions, in the order of ``action_dist``: labels for a classifier, arms/experts for a
        router, candidate ids for a reranker.
    action : str
        The chosen action (for a reranker: the top of ``ranking``). Must be one of ``actions``.
    action_dist : tuple of float, shape (n_actions,)
        The full distribution the action was drawn from; sums to 1.
    pscore : float
        The propensity of the chosen action: ``action_dist[actions.index(action)]``, > 0.
    confidence : float, optional
        The model's confidence in [0, 1]; defaults to the chosen action's probability.
    text, features, candidates, metadata
        The context: request text, numeric features, candidate texts (aligned with ``actions`` for a
        reranker) and free metadata such as ``user_id`` and ``category``.
    ranking : tuple of str, optional
        A full order over ``actions`` (rerankers).
    trace : tuple of TraceStep
        Optional multi-step trace with per-step log-probabilities.
    created_at, client_time : datetime
        When the store received it (the service and ``rewardloop import`` stamp it), and the time the
        client gave, if any (kept, never trusted for ordering).
    variant_share : float, optional
        The probability of the experiment variant that served this request (the traffic share); the
        propensity under the whole system is ``variant_share * pscore``.
    label_space, chosen_set, label_probs : optional
        A set decided beside (or, for kind ``"set"``, instead of) the action: the labels a set is drawn
        from, the chosen subset, and each label's probability of being included
        (:mod:`rewardloop.types.sets`; the set's propensity is :attr:`set_pscore`).

    Examples
    --------
    >>> d = Decision(policy="intent", policy_version="1", kind="classifier",
    ...              actions=("on", "off"), action="on", action_dist=(0.8, 0.2), pscore=0.8)
    >>> d.confidence
    0.8
    """

    policy: str
    policy_version: str
    kind: DecisionKind
    actions: tuple[str, ...]
    action: str
    action_dist: tuple[float, ...]
    pscore: float
    confidence: float | None = None
    latency_ms: float | None = None
    text: str | None = None
    features: tuple[float, ...] | None = None
    candidates: tuple[str, ...] | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    ranking: tuple[str, ...] | None = None
    experiment: str | None = None
    variant: str | None = None
    variant_share: float | None = None
    trace: tuple[TraceStep, ...] = ()
    idempotency_key: str | None = None
    created_at: datetime = field(default_factory=utcnow)
    id: str = field(default_factory=new_id)
    client_time: datetime | None = None
    label_space: tuple[str, ...] | None = None
    chosen_set: tuple[str, ...] | None = None
    label_probs: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        for name in ("id", "policy", "policy_version"):
            _nonempty(name, getattr(self, name))
            check_text(name, getattr(self, name))
        _choice("kind", self.kind, DECISION_KINDS)
        set_ = object.__setattr__
        actions = check_texts("actions", self.actions)
        if not actions:
            raise RecordError("actions", "must name at least one action")
        if len(set(actions)) != len(actions):
            raise RecordError("actions", "must not repeat an action")
        set_(self, "actions", actions)
        try:
            dist = tuple(map(float, self.action_dist))
        except (TypeError, ValueError):
            raise RecordError("action_dist", "must be a list of numbers") from None
        if len(dist) != len(actions):
            raise RecordError("action_dist", f"has {len(dist)} probabilities for {len(actions)} actions")
        # NaN fails both comparisons, so one pass checks range and finiteness.
        if not all(0.0 <= p <= 1.0 for p in dist):
            bad = next(p for p in dist if not 0.0 <= p <= 1.0)
            raise RecordError("action_dist", f"probabilities must be in [0, 1], got {bad}")
        total = math.fsum(dist)
        if abs(total - 1.0) > PROB_TOL:
            raise RecordError("action_dist", f"must sum to 1 (±{PROB_TOL:g}), sums to {total:.9g}")
        set_(self, "action_dist", dist)
        try:
            index = actions.index(self.action)
        except ValueError:
            raise RecordError("action", f"{self.action!r} is not among the candidate actions") from None
        pscore = _finite("pscore", self.pscore)
        if pscore <= 0.0:
            raise RecordError("pscore", f"must be > 0 (an action the policy could not take), got {pscore}")
        if abs(pscore - dist[index]) > PROB_TOL:
            raise RecordError("pscore", f"{pscore} is not the chosen action's probability {dist[index]}")
        set_(self, "pscore", pscore)
        set_(
            self,
            "confidence",
            dist[index] if self.confidence is None else _unit("confidence", self.confidence),
        )
        if self.latency_ms is not None:
            latency = _finite("latency_ms", self.latency_ms)
            if latency < 0:
                raise RecordError("latency_ms", f"must be >= 0, got {latency}")
            set_(self, "latency_ms", latency)
        if self.features is not None:
            set_(self, "features", tuple(_finite("features", x) for x in self.features))
        for name in ("text", "experiment", "variant", "idempotency_key"):
            if getattr(self, name) is not None:
                check_text(name, getattr(self, name))
        if self.candidates is not None:
            candidates = check_texts("candidates", self.candidates)
            if len(candidates) != len(actions):
                raise RecordError("candidates", f"has {len(candidates)} texts for {len(actions)} actions")
            set_(self, "candidates", candidates)
        if self.ranking is not None:
            ranking = tuple(self.ranking)
            if sorted(ranking) != sorted(actions):
                raise RecordError("ranking", "must order exactly the candidate actions")
            if ranking[0] != self.action:
                raise RecordError("ranking", "must start with the chosen action")
            set_(self, "ranking", ranking)
        if self.variant_share is not None:
            share = _unit("variant_share", self.variant_share)
            if share == 0.0:
                raise RecordError("variant_share", "must be > 0 for a variant that served traffic")
            set_(self, "variant_share", share)
        set_(self, "trace", tuple(self.trace))
        if not isinstance(self.metadata, Mapping):
            raise RecordError("metadata", "must be a mapping")
        if self.metadata:
            check_json("metadata", dict(self.metadata))
        self._check_set()
        _set_times(self)

    def _check_set(self) -> None:
        checked = check_action_set(self.label_space, self.chosen_set, self.label_probs)
        if checked is None:
            if self.kind == "set":
                raise RecordError(
                    "label_space", "a set decision needs label_space, chosen_set and label_probs"
                )
            return
        for name, value in zip(("label_space", "chosen_set", "label_probs"), checked, strict=True):
            object.__setattr__(self, name, value)
        if self.kind == "set":
            check_set_joint(self.action, self.pscore, checked[1], set_pscore(*checked))

    @property
    def action_index(self) -> int:
        return self.actions.index(self.action)

    @property
    def set_pscore(self) -> float | None:
        """The propensity of the logged set, Π p_j (chosen) · Π (1 − p_j) (left out); None without a set."""
        if self.label_space is None or self.chosen_set is None or self.label_probs is None:
            return None
        return set_pscore(self.label_space, self.chosen_set, self.label_probs)


@dataclass(frozen=True, slots=True)
class Feedback:
    """Feedback on a decision, from one rater.

    ``kind`` says which fields carry it:

    ========== ==========================================================
    rating     ``value`` inside ``scale`` (e.g. 4 on (1, 5), or ±1 thumbs)
    correction ``label``: the action that should have been taken
    preference ``preferred`` over ``rejected``: two distinct actions, candidates or decision ids
    multilevel ``scores``: named scores (retrieval, reasoning, ...) inside ``scale``
    implicit   ``value`` inside ``scale``: the user acted (1) or not (0)
    missed_actions       ``labels``: set members the decision should have chosen and did not
    unnecessary_actions  ``labels``: chosen set members that should not have been chosen
    set_correction       ``labels``: the right set (may be empty)
    ========== ==========================================================

    Examples
    --------
    >>> Feedback(decision_id="d1", kind="rating", value=4, scale=(1, 5), rater_id="ann").authority
    1.0
    """

    decision_id: str
    kind: FeedbackKind
    value: float | None = None
    scale: tuple[float, float] | None = None
    label: str | None = None
    preferred: str | None = None
    rejected: str | None = None
    scores: Mapping[str, float] | None = None
    rater_id: str | None = None
    authority: float = 1.0
    source: FeedbackSource = "human"
    comment: str | None = None
    created_at: datetime = field(default_factory=utcnow)
    id: str = field(default_factory=new_id)
    client_time: datetime | None = None
    labels: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        for name in ("id", "decision_id"):
            _nonempty(name, getattr(self, name))
            check_text(name, getattr(self, name))
        for name in ("label", "preferred", "rejected", "rater_id", "comment"):
            if getattr(self, name) is not None:
                check_text(name, getattr(self, name))
        _choice("kind", self.kind, FEEDBACK_KINDS)
        _choice("source", self.source, FEEDBACK_SOURCES)
        set_ = object.__setattr__
        set_(self, "authority", _unit("authority", self.authority))
        set_(self, "labels", check_feedback_labels(self.kind, self.labels))
        scale = self._checked_scale()
        if self.kind in ("rating", "implicit"):
            if self.value is None:
                raise RecordError("value", f"is required for {self.kind} feedback")
            set_(self, "value", self._in_scale("value", self.value, scale))
        elif self.kind == "correction":
            if self.label is None:
                raise RecordError("label", "is required for correction feedback")
            _nonempty("label", self.label)
        elif self.kind == "preference":
            if self.preferred is None or self.rejected is None:
                raise RecordError("preferred", "preference feedback needs both preferred and rejected")
            _nonempty("preferred", self.preferred)
            _nonempty("rejected", self.rejected)
            if self.preferred == self.rejected:
                raise RecordError("rejected", "a preference must name two distinct items")
        elif self.kind == "multilevel":  # the set kinds' labels are checked above
            if not self.scores:
                raise RecordError("scores", "multilevel feedback needs at least one named score")
            checked = {
                check_text("scores", str(k)): self._in_scale(f"scores.{k}", v, scale)
                for k, v in self.scores.items()
            }
            set_(self, "scores", checked)
            if self.value is not None:
                set_(self, "value", self._in_scale("value", self.value, scale))
        _set_times(self)

    def _checked_scale(self) -> tuple[float, float] | None:
        if self.scale is None:
            if self.kind in ("rating", "multilevel"):
                raise RecordError("scale", f"{self.kind} feedback must declare its scale (low, high)")
            if self.kind == "implicit":
                object.__setattr__(self, "scale", (0.0, 1.0))
                return (0.0, 1.0)
            return None
        if len(self.scale) != 2:
            raise RecordError("scale", f"must be (low, high), got {self.scale!r}")
        low, high = _finite("scale", self.scale[0]), _finite("scale", self.scale[1])
        if not low < high:
            raise RecordError("scale", f"low must be below high, got ({low}, {high})")
        object.__setattr__(self, "scale", (low, high))
        return (low, high)

    @staticmethod
    def _in_scale(name: str, value: float, scale: tuple[float, float] | None) -> float:
        value = _finite(name, value)
        if scale is not None and not scale[0] <= value <= scale[1]:
            raise RecordError(name, f"{value} is outside the declared scale [{scale[0]}, {scale[1]}]")
        return value


@dataclass(frozen=True, slots=True)
class Reward:
    """A number per decision compiled from its feedback by a named, versioned reward spec.

    ``components`` keeps the named parts it was summed from, ``feedback_ids`` the rows it came from,
    and ``disagreement`` the spread between raters (authority-weighted standard deviation), if any.
    """

    decision_id: str
    spec: str
    spec_version: int
    value: float
    components: Mapping[str, float] = field(default_factory=dict)
    feedback_ids: tuple[str, ...] = ()
    disagreement: float | None = None
    created_at: datetime = field(default_factory=utcnow)

    def __post_init__(self) -> None:
        _nonempty("decision_id", self.decision_id)
        _nonempty("spec", self.spec)
        if self.spec_version < 1:
            raise RecordError("spec_version", f"must be >= 1, got {self.spec_version}")
        object.__setattr__(self, "value", _finite("value", self.value))
        object.__setattr__(self, "feedback_ids", tuple(self.feedback_ids))
        object.__setattr__(self, "created_at", check_time("created_at", self.created_at))


@dataclass(frozen=True, slots=True)
class PolicyVersion:
    """A registered, versioned policy artifact with its metrics and lineage."""

    policy: str
    version: str
    kind: DecisionKind
    artifact_path: str
    checksum: str
    config: Mapping[str, Any] = field(default_factory=dict)
    metrics: Mapping[str, float] = field(default_factory=dict)
    parent_version: str | None = None
    training_run_id: str | None = None
    created_at: datetime = field(default_factory=utcnow)

    def __post_init__(self) -> None:
        _nonempty("policy", self.policy)
        _nonempty("version", self.version)
        _choice("kind", self.kind, DECISION_KINDS)
        object.__setattr__(self, "created_at", check_time("created_at", self.created_at))


@dataclass(frozen=True, slots=True)
class AliasEvent:
    """One move of an alias (``champion``, ``challenger``, ...): append-only history."""

    policy: str
    alias: str
    from_version: str | None
    to_version: str | None
    action: Literal["promote", "rollback", "activate", "assign", "remove"]
    actor: str = "rewardloop"
    reason: str = ""
    forced: bool = False
    gate_report: Mapping[str, Any] | None = None
    created_at: datetime = field(default_factory=utcnow)
    id: str = field(default_factory=new_id)


@dataclass(frozen=True, slots=True)
class TrainingRun:
    """What was trained on what data, with which config, and how it went."""

    policy: str
    learner: str
    config: Mapping[str, Any] = field(default_factory=dict)
    data_window: tuple[datetime | None, datetime | None] = (None, None)
    n_samples: int = 0
    metrics: Mapping[str, float] = field(default_factory=dict)
    artifact_path: str | None = None
    status: RunStatus = "running"
    started_at: datetime = field(default_factory=utcnow)
    finished_at: datetime | None = None
    id: str = field(default_factory=new_id)


@dataclass(frozen=True, slots=True)
class Experiment:
    """A champion/challenger (or N-variant) split of one policy's traffic.

    ``variants`` maps a variant name to a policy version; ``shares`` its traffic share now (summing
    to 1); ``ramp`` the challenger shares to step through; ``stage`` the index into ``ramp``.
    """

    name: str
    policy: str
    variants: Mapping[str, str]
    shares: Mapping[str, float]
    salt: str
    ramp: tuple[float, ...] = (0.05, 0.25, 0.5, 1.0)
    stage: int = 0
    shadow: bool = False
    status: ExperimentStatus = "running"
    verdict: Mapping[str, Any] | None = None
    created_at: datetime = field(default_factory=utcnow)
    updated_at: datetime = field(default_factory=utcnow)

    def __post_init__(self) -> None:
        _nonempty("name", self.name)
        if set(self.variants) != set(self.shares):
            raise RecordError("shares", "must give a share for every variant and no other")
        total = math.fsum(_unit(f"shares.{k}", v) for k, v in self.shares.items())
        if abs(total - 1.0) > PROB_TOL:
            raise RecordError("shares", f"must sum to 1, sums to {total:.9g}")


@dataclass(frozen=True, slots=True)
class ReviewItem:
    """A decision queued for a person because the model was unsure, and what resolved it."""

    decision_id: str
    reason: str
    priority: float = 0.0
    status: ReviewStatus = "open"
    claimed_by: str | None = None
    feedback_id: str | None = None
    created_at: datetime = field(default_factory=utcnow)
    resolved_at: datetime | None = None
    id: str = field(default_factory=new_id)
    claimed_at: datetime | None = None
    answers_needed: int = 1

    def __post_init__(self) -> None:
        if self.answers_needed not in (1, 2):
            raise RecordError("answers_needed", f"must be 1 or 2; got {self.answers_needed!r}")
