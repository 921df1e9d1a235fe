"""The SDK's typed answers (dataclasses), its error, and its retry policy."""

from __future__ import annotations

import dataclasses
import random
import uuid
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any, Self, TypeVar

from rewardloop.types.answers import Decided as Decided  # re-exported: the SDK's answer to decide
from rewardloop.types.answers import ReviewQueueItem

T = TypeVar("T")

#: A review-queue item as the service answers it (the service's own answer schema, as ``Decided`` is).
ReviewItem = ReviewQueueItem


@dataclass(eq=False)  # compared and hashed by identity, as exceptions are
class ApiError(Exception):
    """An answer the SDK does not retry (or that it gave up retrying): an RFC 9457 problem's fields.

    ``status`` is 0 when no answer arrived (connection refused or timed out after the last attempt).
    """

    status: int
    detail: str
    field: str | None = None
    title: str = ""
    request_id: str | None = None

    def __post_init__(self) -> None:
        super().__init__(f"{self.status} {self.title}: {self.detail}".strip() if self.status else self.detail)


@dataclass(frozen=True)
class FeedbackReceipt:
    id: str
    decision_id: str


@dataclass(frozen=True)
class ItemFailure:
    """One logged item the service refused (not retried: retrying cannot fix it)."""

    id: str | None
    status: int
    detail: str
    field: str | None = None


@dataclass
class LogReport:
    """What background logging delivered since the last ``flush``: rows newly stored, rows that replayed a
    stored one (a retry of a write whose answer was lost), and the refused items."""

    stored: int = 0
    replayed: int = 0
    failed: list[ItemFailure] = field(default_factory=list)

    def add(self, other: LogReport) -> None:
        self.stored += other.stored
        self.replayed += other.replayed
        self.failed.extend(other.failed)


class Closing(ABC):
    """``with client:`` closes the client when the block ends (what is queued is delivered first)."""

    @abstractmethod
    def close(self) -> LogReport:
        """Flush, stop the background logger and close the connections; what was delivered."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class ReviewQueue:
    """One page of the review queue; ``next_page_token`` asks for the next (None on the last page)."""

    items: list[ReviewItem]
    counts: dict[str, int]
    next_page_token: str | None = None


@dataclass(frozen=True)
class Agreement:
    """How far reviewers agree on the overlap items (those two reviewers answer): of ``items`` answered
    twice, ``agreed`` got the same answer; Cohen's ``kappa`` and Krippendorff's ``alpha`` (None while
    there are too few to measure)."""

    items: int
    agreed: int
    kappa: float | None = None
    alpha: float | None = None


@dataclass(frozen=True)
class ReviewPage:
    """A reviewer's page (``GET /v1/review/next``): the items they may take, claimed for them as it
    opened; how many they may take in all, how many of the page are now theirs, the queue's counts
    and the reviewers' agreement."""

    items: list[ReviewItem]
    available: int
    claimed: int
    counts: dict[str, int]
    agreement: Agreement


@dataclass(frozen=True)
class BulkAnswer:
    """One item's answer in a bulk submit (``POST /v1/review/bulk``): ``label`` (the right action),
    ``labels`` (the right set of a decision with one), ``rating`` (1–5) or ``better`` (one of a
    reranker item's ``pair``), with an optional ``comment``; or ``skip=True`` to pass on the item.

    >>> a = BulkAnswer("item-1", label="lights_off")
    >>> a.item_id, a.label, a.skip
    ('item-1', 'lights_off', False)
    """

    item_id: str
    label: str | None = None
    labels: Sequence[str] | None = None
    rating: int | None = None
    better: str | None = None
    comment: str | None = None
    skip: bool = False


@dataclass(frozen=True)
class ReviewFailure:
    """An answer of a bulk submit that the service refused (``kind``: ``not_found``, ``conflict`` or
    ``invalid``); the other answers of the submit stand."""

    item_id: str
    kind: str
    message: str


@dataclass
class BulkReport:
    """What a bulk submit did: items resolved, answers stored (an overlap item's first answer leaves it
    open for a second reviewer), items skipped, the refused answers, and the queue's counts after."""

    resolved: int = 0
    answered: int = 0
    skipped: int = 0
    failed: list[ReviewFailure] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, other: BulkReport) -> None:
        """Add a later submit's report (its counts are the newer)."""
        self.resolved += other.resolved
        self.answered += other.answered
        self.skipped += other.skipped
        self.failed.extend(other.failed)
        self.counts = dict(other.counts)


@dataclass(frozen=True)
class Page:
    """One page of a list route (``/v1/policies``, ``/v1/experiments``, ``/v1/keys``): the items as the
    service answers them, and the token of the next page (None on the last)."""

    items: list[dict[str, Any]]
    next_page_token: str | None = None


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter: attempt ``n`` (from 0) waits a uniform draw in
    ``[0, min(max_delay, base_delay * 2**n)]``, or what ``Retry-After`` asks (capped at ``max_delay``).

    >>> RetryPolicy(base_delay=0.1, max_delay=1.0).cap(5)
    1.0
    """

    max_attempts: int = 8
    base_delay: float = 0.05
    max_delay: float = 5.0
    retry_statuses: frozenset[int] = frozenset({429, 503})

    def cap(self, attempt: int) -> float:
        return float(min(self.max_delay, self.base_delay * 2**attempt))

    def delay(self, attempt: int, retry_after: str | None = None, rng: random.Random | None = None) -> float:
        asked = parse_retry_after(retry_after)
        if asked is not None:
            return min(self.max_delay, asked)
        return (rng or random).uniform(0.0, self.cap(attempt))


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delay-seconds or an HTTP date); None if absent or unreadable.

    >>> parse_retry_after("3")
    3.0
    >>> now = datetime.fromisoformat("2015-10-21T07:27:58+00:00")
    >>> parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now)
    2.0
    """
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    start = now or datetime.now(when.tzinfo)
    return max(0.0, (when - start).total_seconds())


def new_key() -> str:
    """A fresh id / idempotency key (32 hex characters)."""
    return uuid.uuid4().hex


def build(cls: type[T], data: dict[str, Any]) -> T:
    """An answer dataclass from a JSON object (unknown keys ignored: a newer service may add fields)."""
    names = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    values = {k: v for k, v in data.items() if k in names}
    for time_field in ("created_at", "resolved_at"):
        if isinstance(values.get(time_field), str):
            values[time_field] = datetime.fromisoformat(values[time_field])
    return cls(**values)
