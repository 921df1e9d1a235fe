"""Stored rows back to typed records, records to column values, and reads with optional filters.

A record of :mod:`rewardloop.types` and the row it is stored as share their field names; the few that
differ (``Decision.metadata`` is the column ``meta``, ``Feedback.scale`` the columns ``scale_low`` and
``scale_high``, ...) are given by the caller.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import Select

from rewardloop.store.engine import Store
from rewardloop.types import Decision, Feedback, Reward, TraceStep

R = TypeVar("R")


def aware(t: datetime | None) -> datetime | None:
    if t is None:
        return None
    return utc(t)


def utc(t: datetime) -> datetime:
    """A time read back from the store as UTC (SQLite keeps no offset; every stored time is UTC)."""
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


_FIELD_NAMES: dict[type[Any], tuple[str, ...]] = {}


def _field_names(cls: type[Any]) -> tuple[str, ...]:
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(f.name for f in dataclasses.fields(cls))
    return names


def record_from_row(cls: type[R], row: Any, **given: Any) -> R:
    """A record of class ``cls`` from a stored row (an ORM object or a Core row).

    Each field not ``given`` is the row's column of the same name; stored times come back timezone-aware
    (SQLite hands them back naive, in UTC).

    >>> from types import SimpleNamespace
    >>> from rewardloop.types import ReviewItem
    >>> row = SimpleNamespace(decision_id="d1", reason="unsure", priority=0.5, status="open",
    ...                       claimed_by=None, feedback_id=None, created_at=datetime(2026, 1, 1),
    ...                       resolved_at=None, id="r1")
    >>> record_from_row(ReviewItem, row).created_at.tzinfo
    datetime.timezone.utc
    """
    values = {name: getattr(row, name) for name in _field_names(cls) if name not in given}
    for name, value in values.items():
        if isinstance(value, datetime):
            values[name] = aware(value)
    return cls(**values, **given)


def row_values(record: Any, **given: Any) -> dict[str, Any]:
    """The column values of a record: each field not ``given`` as it is, a mapping copied to a ``dict`` and
    a tuple to a ``list`` (what a JSON column stores)."""
    values = {name: getattr(record, name) for name in _field_names(type(record)) if name not in given}
    for name, value in values.items():
        if isinstance(value, Mapping):
            values[name] = dict(value)
        elif isinstance(value, tuple):
            values[name] = list(value)
    return {**values, **given}


def read_records(
    store: Store, query: Select[Any], convert: Callable[[Any], R], *given: tuple[Any, Any]
) -> list[R]:
    """``convert`` of each ORM row that ``query`` selects, read in one session.

    Each ``(column, value)`` pair whose value is not None narrows the query to ``column == value`` (the
    optional filters of a read).
    """
    for column, value in given:
        if value is not None:
            query = query.where(column == value)
    with store.session() as s:
        return [convert(r) for r in s.scalars(query)]


def decision_from_row(r: Any) -> Decision:
    trace = tuple(TraceStep(**s) for s in r.trace) if r.trace else ()
    sets = r.action_set or {}
    return record_from_row(
        Decision,
        r,
        metadata=r.meta or {},
        trace=trace,
        label_space=tuple(sets["labels"]) if sets else None,
        chosen_set=tuple(sets["chosen"]) if sets else None,
        label_probs=tuple(sets["probs"]) if sets else None,
    )


def feedback_from_row(r: Any) -> Feedback:
    scale = (r.scale_low, r.scale_high) if r.scale_low is not None else None
    labels = tuple(r.labels) if r.labels is not None else None
    return record_from_row(Feedback, r, scale=scale, labels=labels)


def reward_from_row(r: Any) -> Reward:
    return record_from_row(Reward, r, components=r.components or {}, feedback_ids=tuple(r.feedback_ids or ()))
