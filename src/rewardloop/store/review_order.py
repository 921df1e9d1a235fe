"""The order of the review queue: priority, plus a staleness term for the days an item has waited.

An item's rank is ``priority + staleness_per_day × days since it was queued``: an item that waits
gains ``staleness_per_day`` a day, so the audit sample and the mildly unsure are not starved by a
stream of fresh, more uncertain decisions. The term is linear, so all items gain at the same rate
and the order of two items never changes with time: ranking by ``priority − staleness_per_day ×
(queued day number)`` is the same order at every moment, which is what lets the list route page with
a key (the ``(priority, created_at, id)`` of a page's last item) while items age. Equal ranks go
oldest first, then by id (a total order).

The day number is computed by the database (SQLite's ``julianday``, PostgreSQL's epoch seconds /
86,400), for the rows and for the page key alike, so a key compares equal to its own row exactly.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, literal, or_
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import Float

from rewardloop.store.tables import ReviewItemRow

#: The days between the Julian day origin and the Unix epoch (SQLite's ``julianday`` counts from it).
_JULIAN_EPOCH = 2440587.5


class day_number(FunctionElement[float]):
    """Days since 1970-01-01T00:00Z of a timestamp, as a float, in SQL."""

    type = Float()
    inherit_cache = True


@compiles(day_number, "sqlite")
def _day_number_sqlite(element: day_number, compiler: SQLCompiler, **kw: Any) -> str:
    return f"(julianday({compiler.process(element.clauses, **kw)}) - {_JULIAN_EPOCH})"


@compiles(day_number)
def _day_number_default(element: day_number, compiler: SQLCompiler, **kw: Any) -> str:
    return f"(EXTRACT(EPOCH FROM {compiler.process(element.clauses, **kw)}) / 86400.0)"


def rank(staleness_per_day: float) -> ColumnElement[float]:
    """The rank the queue is ordered by, up to a constant that is the same for every item
    (``priority − staleness_per_day × queued day``); the priority alone when the term is 0."""
    r = ReviewItemRow
    if staleness_per_day == 0:
        return r.priority.expression
    return r.priority - staleness_per_day * day_number(r.created_at)


def queue_order(staleness_per_day: float) -> tuple[ColumnElement[Any], ...]:
    """ORDER BY of the queue: highest rank first, then oldest, then by id."""
    r = ReviewItemRow
    return rank(staleness_per_day).desc(), r.created_at.expression, r.id.expression


def after_key(
    staleness_per_day: float, priority: float, created: datetime, item_id: str
) -> ColumnElement[bool]:
    """The items after the one with this ``(priority, created_at, id)`` in :func:`queue_order`."""
    r = ReviewItemRow
    created_at = literal(created, r.created_at.type)
    last = (
        literal(priority, Float())
        if staleness_per_day == 0
        else literal(priority, Float()) - staleness_per_day * day_number(created_at)
    )
    key = rank(staleness_per_day)
    later = or_(r.created_at > created_at, and_(r.created_at == created_at, r.id > item_id))
    return or_(key < last, and_(key == last, later))


__all__ = ["after_key", "day_number", "queue_order", "rank"]
