"""A half-open time window ``[since, until)``: what compile, training and export take, and what every
windowed read of the store checks its ``since``/``until`` with."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import overload

from rewardloop.types.errors import RecordError


@overload
def to_utc(t: datetime) -> datetime: ...
@overload
def to_utc(t: None) -> None: ...
def to_utc(t: datetime | None) -> datetime | None:
    """``t`` in UTC; a naive time is taken as UTC already (the store keeps UTC)."""
    return None if t is None else (t if t.tzinfo else t.replace(tzinfo=UTC)).astimezone(UTC)


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """The times ``since <= t < until``; either end may be open (None).

    Both ends are kept timezone-aware in UTC (a naive time is taken as UTC, as the store does). An end
    that is not a time, or a ``since`` after ``until``, is a :class:`RecordError` naming that end; an
    empty window (``since == until``) is allowed and matches nothing.

    Examples
    --------
    >>> w = TimeWindow(datetime(2026, 1, 1), datetime(2026, 2, 1))
    >>> w.since.isoformat(), w.until.isoformat()
    ('2026-01-01T00:00:00+00:00', '2026-02-01T00:00:00+00:00')
    >>> TimeWindow(since=datetime(2026, 2, 1), until=datetime(2026, 1, 1))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    rewardloop.types.errors.RecordError: until: 2026-01-01 ... is before since (2026-02-01 ...)
    """

    since: datetime | None = None
    until: datetime | None = None

    def __post_init__(self) -> None:
        for name in ("since", "until"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, datetime):
                raise RecordError(name, f"expected a datetime or None, got {type(value).__name__}")
            object.__setattr__(self, name, to_utc(value))
        if self.since is not None and self.until is not None and self.until < self.since:
            raise RecordError("until", f"{self.until} is before since ({self.since})")
