"""Request and response bodies of the HTTP API (pydantic), separate from the ORM rows and the records.

Request models forbid unknown fields, so a misspelt field is an error naming it, not silently dropped.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from rewardloop.store import GroupStats
from rewardloop.types import Decision, DecisionKind, Feedback, FeedbackKind, RecordError, TraceStep
from rewardloop.types.answers import ReviewQueueItem

Item = TypeVar("Item")

#: The most items one batch request may carry (``/v1/decisions/batch``, ``/v1/feedback/batch``).
MAX_BATCH_ITEMS = 5000


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Response(BaseModel):
    pass


class Page(Response, Generic[Item]):
    """One page of a listing, in the listing's order: every paged route answers with a subclass."""

    items: list[Item]
    next_page_token: str | None = Field(
        None, description="pass as `page_token` for the next page; null on the last page (opaque)"
    )


class ErrorResponse(Response):
    """An RFC 9457 problem (``application/problem+json``): the one shape of every error."""

    type: str = Field("about:blank", description="a URI naming the kind of problem")
    title: str = Field("", description="the HTTP status phrase (`Not Found`)")
    status: int = Field(0, description="the HTTP status code")
    detail: str = Field(description="what was wrong, naming the field")
    field: str | None = Field(None, description="the offending field, dotted (`body.kind`)")
    errors: list[dict[str, Any]] | None = Field(None, description="every validation error, when several")


class DecideRequest(Request):
    policy: str = Field(min_length=1, max_length=200, description="the policy's name")
    text: str | None = Field(None, max_length=100_000, description="the request text (classifier)")
    features: list[float] | None = Field(None, description="numeric context features (router)")
    candidates: list[str] | None = Field(None, description="candidate answer texts (reranker)")
    actions: list[str] | None = Field(None, description="ids of the candidates, aligned with `candidates`")
    metadata: dict[str, Any] = Field(default_factory=dict, description="free context: user_id, category, ...")
    unit_id: str | None = Field(None, max_length=200, description="who is asking: experiments assign by it")
    idempotency_key: str | None = Field(None, max_length=200, description="re-sent requests log once")


class TraceStepModel(Request):
    name: str
    action: str
    logp: float


#: The Decision fields that are tuples in the record and lists in a JSON body.
SEQUENCE_FIELDS = (
    "actions",
    "action_dist",
    "features",
    "candidates",
    "ranking",
    "label_space",
    "chosen_set",
    "label_probs",
)


class DecisionLogRequest(Request):
    """A decision made outside the service (the same fields as the store's Decision record)."""

    policy: str = Field(min_length=1, max_length=200)
    policy_version: str = Field(min_length=1, max_length=100)
    kind: DecisionKind
    actions: list[str] = Field(min_length=1)
    action: str
    action_dist: list[float] = Field(description="probability of each action, aligned with `actions`")
    pscore: float = Field(description="probability of the chosen action")
    confidence: float | None = None
    latency_ms: float | None = None
    text: str | None = Field(None, max_length=100_000)
    features: list[float] | None = None
    candidates: list[str] | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    ranking: list[str] | None = None
    experiment: str | None = None
    variant: str | None = None
    variant_share: float | None = None
    trace: list[TraceStepModel] = Field(default_factory=list)
    idempotency_key: str | None = Field(None, max_length=200)
    created_at: datetime | None = None
    id: str | None = Field(None, min_length=1, max_length=64, description="default: a fresh id")
    shadow_action: str | None = Field(
        None, description="what a shadow challenger chose on the same request (for the review queue)"
    )
    label_space: list[str] | None = Field(None, description="the labels a set is drawn from (docs/sets.md)")
    chosen_set: list[str] | None = Field(None, description="the chosen subset of `label_space`")
    label_probs: list[float] | None = Field(
        None, description="each label's probability of being chosen, aligned with `label_space`"
    )

    def to_decision(self, project: str) -> Decision:
        """The Decision record this body describes, stamped with ``project`` (RecordError naming the
        field if the record's own checks refuse it)."""
        fields = self.model_dump(exclude={"shadow_action", "trace"}, exclude_none=True)
        for name in SEQUENCE_FIELDS:
            if name in fields:
                fields[name] = tuple(fields[name])
        fields["trace"] = tuple(TraceStep(s.name, s.action, s.logp) for s in self.trace)
        fields["metadata"] = {**self.metadata, "project": project}
        if "created_at" in fields:  # the server stamps receipt time; the client's time is kept beside it
            fields["client_time"] = fields.pop("created_at")
        decision = Decision(**fields)
        if self.shadow_action is not None and self.shadow_action not in decision.actions:
            raise RecordError("shadow_action", f"{self.shadow_action!r} is not among the candidate actions")
        return decision


class DecisionLogResponse(Response):
    decision_id: str
    queued_for_review: str | None = None


class FeedbackCreateRequest(Request):
    decision_id: str = Field(min_length=1, max_length=64)
    kind: FeedbackKind
    value: float | None = Field(None, description="rating or implicit value, inside `scale`")
    scale: tuple[float, float] | None = Field(None, description="(low, high) of the rating scale")
    label: str | None = Field(None, max_length=1000, description="the right action (correction)")
    preferred: str | None = Field(None, max_length=1000)
    rejected: str | None = Field(None, max_length=1000)
    scores: dict[str, float] | None = Field(None, description="named scores (multilevel)")
    labels: list[str] | None = Field(
        None,
        max_length=1000,
        description="set feedback's labels, from the decision's label space: missed (missed_actions), "
        "chosen wrongly (unnecessary_actions), or the right set (set_correction, may be empty)",
    )
    rater_id: str | None = Field(None, max_length=200)
    authority: float = Field(1.0, ge=0, le=1, description="the rater's weight in [0, 1]")
    source: Literal["human", "golden", "judge", "implicit"] = "human"
    comment: str | None = Field(None, max_length=10_000)
    created_at: datetime | None = None
    id: str | None = Field(
        None, min_length=1, max_length=64, description="client id: a retried request is stored once"
    )

    def to_feedback(self) -> Feedback:
        """The Feedback record of this body (RecordError naming the field if its checks refuse it)."""
        fields = self.model_dump(exclude_none=True)
        if "created_at" in fields:  # the server stamps receipt time; the client's time is kept beside it
            fields["client_time"] = fields.pop("created_at")
        if "labels" in fields:
            fields["labels"] = tuple(fields["labels"])
        return Feedback(**fields)


class FeedbackResponse(Response):
    id: str
    decision_id: str


def _batch_of(model: str) -> Any:
    return Field(
        min_length=1,
        max_length=MAX_BATCH_ITEMS,
        description=f"each item a `{model}` body, validated and stored on its own",
        json_schema_extra={"items": {"$ref": f"#/components/schemas/{model}"}},
    )


class DecisionBatchRequest(Request):
    items: list[dict[str, Any]] = _batch_of("DecisionLogRequest")


class FeedbackBatchRequest(Request):
    items: list[dict[str, Any]] = _batch_of("FeedbackCreateRequest")


class BatchItemResult(Response):
    """One item's outcome: its own status (201 stored, 200 a replay of a stored row) and error."""

    index: int = Field(description="the item's position in `items`, from 0")
    status: int
    id: str | None = Field(None, description="the stored row's id (the first one's, for a replay)")
    queued_for_review: str | None = None
    error: ErrorResponse | None = None


class BatchResponse(Response):
    results: list[BatchItemResult]
    stored: int = Field(description="items newly stored")
    replayed: int = Field(description="items that replayed a stored row")
    failed: int


class OnlineLineageModel(Response):
    """A router version learned online (``rewardloop learn``): its last publish, and what this
    worker serves."""

    policy: str
    version: str
    state_version: int = Field(description="the last router state the learner published")
    rewards: int = Field(description="decisions whose reward that state holds")
    events: int = Field(description="feedback-log events (rows written or voided) the learner applied")
    published_at: datetime
    served_state: int | None = Field(description="the state this worker decides with (None: not loaded)")


class StatsResponse(Response):
    project: str
    decisions: int
    coverage: float
    groups: list[GroupStats] = Field(description="per policy version, as the store counts them")
    feedback_by_kind: dict[str, int]
    feedback_by_source: dict[str, int]
    review: dict[str, int]
    online: list[OnlineLineageModel] = Field(default_factory=list, description="routers learned online")


class LeaderboardEntry(Response):
    policy: str
    action: str
    decisions: int
    judged: int
    mean_score: float | None = Field(description="mean feedback score in [0, 1] of the judged decisions")
    low: float | None = Field(None, description="95% t-interval of the mean score, clipped to [0, 1] (n ≥ 2)")
    high: float | None = None
    mean_latency_ms: float | None


class LiveArmEntry(Response):
    """One arm of a router learned online, from its latest published state."""

    policy: str
    version: str
    state_version: int
    arm: str
    pulls: int
    mean_reward: float | None = Field(description="mean reward the router has learned from (None: no pulls)")
    low: float = Field(description="lower end of the 95% t-interval of the mean")
    high: float


class LeaderboardResponse(Response):
    rows: list[LeaderboardEntry]
    live: list[LiveArmEntry] = Field(
        default_factory=list, description="routers learned online: their state's own per-arm figures"
    )


class ReviewListResponse(Page[ReviewQueueItem]):
    counts: dict[str, int]


class ReviewResolveRequest(Request):
    label: str | None = Field(
        None,
        min_length=1,
        max_length=1000,
        description="the right action (classifier, router; for a reranker or generator: the best candidate)",
    )
    labels: list[str] | None = Field(
        None,
        max_length=1000,
        description="the right set, from the decision's label space (a decision with a set; may be "
        "empty): stored as `set_correction` feedback",
    )
    rating: int | None = Field(
        None, ge=1, le=5, description="a reranker's or generator's answer rated 1–5: `rating` feedback"
    )
    better: str | None = Field(
        None,
        min_length=1,
        max_length=1000,
        description="a reranker's better one of the item's `pair`: `preference` feedback over the other",
    )
    comment: str | None = Field(None, max_length=10_000)


class ReviewBulkAnswer(ReviewResolveRequest):
    item_id: str = Field(min_length=1, max_length=64)
    skip: bool = Field(False, description="pass on the item (not shown to you again); the answer is ignored")


class ReviewBulkRequest(Request):
    answers: list[ReviewBulkAnswer] = Field(max_length=100, description="one entry per item of the page")


class ReviewFailure(Response):
    item_id: str
    kind: str = Field(description="`not_found`, `conflict` or `invalid`")
    message: str


class AgreementModel(Response):
    items: int = Field(description="overlap items two reviewers answered")
    agreed: int = Field(description="of them, items both answered the same")
    kappa: float | None = Field(description="Cohen's κ of the first answer against the second")
    alpha: float | None = Field(description="Krippendorff's nominal α over the overlap items")


class ReviewBulkResponse(Response):
    resolved: int = Field(description="items resolved by this submit")
    answered: int = Field(description="answers stored (an overlap item stays open for its second reviewer)")
    skipped: int
    failed: list[ReviewFailure]
    counts: dict[str, int]


class ReviewPageResponse(Response):
    items: list[ReviewQueueItem]
    available: int = Field(description="items you may take in all (this page is the first `limit` of them)")
    claimed: int = Field(description="items of this page now claimed by you")
    counts: dict[str, int]
    agreement: AgreementModel


class PolicyModel(Response):
    name: str
    kind: str
    aliases: dict[str, str]
    versions: list[str]


class PolicyPage(Page[PolicyModel]):
    pass


class PromoteRequest(Request):
    version: str = Field(min_length=1, max_length=100)
    alias: str = Field("champion", min_length=1, max_length=100)
    reason: str = Field("", max_length=2000)
    force: bool = Field(False, description="promote even if the gate fails (recorded as forced)")


class RollbackRequest(Request):
    alias: str = Field("champion", min_length=1, max_length=100)
    reason: str = Field("", max_length=2000)


class AliasMoveResponse(Response):
    policy: str
    alias: str
    from_version: str | None
    to_version: str | None
    action: str
    forced: bool
    stopped: list[str] = Field(default=[], description="running experiments the rollback stopped")


class ExperimentModel(Response):
    name: str
    policy: str
    variants: dict[str, str]
    shares: dict[str, float]
    status: str
    stage: int
    shadow: bool
    verdict: dict[str, Any] | None
    observed: dict[str, dict[str, float]] = Field(
        default_factory=dict, description="per variant, from the store: decisions, judged, accuracy"
    )


class ExperimentPage(Page[ExperimentModel]):
    pass


class KeyCreateRequest(Request):
    name: str = Field(min_length=1, max_length=200)
    role: Literal["client", "reviewer", "admin"] | None = None
    scopes: list[str] = Field(default_factory=list)


class KeyModel(Response):
    id: str
    name: str
    project: str
    scopes: list[str]
    created_at: datetime
    revoked_at: datetime | None


class KeyPage(Page[KeyModel]):
    pass


class KeyCreateResponse(KeyModel):
    secret: str = Field(description="the key itself: shown once, never stored")
