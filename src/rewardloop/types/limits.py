"""What both stores can hold, checked when a record is built, so a valid record is a storable one.

PostgreSQL refuses a NUL character in ``text`` and in JSONB (SQLite stores it), and refuses a string
longer than its ``VARCHAR(n)`` column (SQLite does not check lengths). ``MAX_LENGTH`` holds the
lengths of ``store/tables.py``; a test keeps the two in step.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from rewardloop.types.errors import RecordError

#: Longest value of each length-limited column (``store/tables.py``), by record field.
MAX_LENGTH: dict[str, int] = {
    "id": 64,
    "decision_id": 64,
    "policy": 200,
    "policy_version": 100,
    "experiment": 200,
    "variant": 100,
    "idempotency_key": 200,
    "rater_id": 200,
}


def check_text(name: str, value: Any, limit_key: str | None = None) -> str:
    """``value`` if it is a string without NUL within its column's length; RecordError otherwise."""
    if not isinstance(value, str):
        raise RecordError(name, f"must be a string, got {type(value).__name__}")
    if "\x00" in value:
        raise RecordError(name, "must not contain a NUL character (\\u0000)")
    limit = MAX_LENGTH.get(limit_key or name)
    if limit is not None and len(value) > limit:
        raise RecordError(name, f"must be at most {limit} characters, got {len(value)}")
    return value


def check_texts(name: str, values: Any) -> tuple[str, ...]:
    """A tuple of strings without NUL (a list field such as ``actions``)."""
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise RecordError(name, f"must be a list of strings, got {type(values).__name__}")
    return tuple(check_text(name, v) for v in values)


def check_json(name: str, value: Any) -> None:
    """A value stored as JSON: serialisable, string keys, no NUL character in any key or string."""
    try:
        encoded = orjson.dumps(value)
    except TypeError as err:
        raise RecordError(
            name, f"must be JSON (objects with string keys, lists, strings, numbers): {err}"
        ) from None
    if b"\\u0000" in encoded:
        raise RecordError(name, "must not contain a NUL character (\\u0000) in any key or string")


def check_time(name: str, value: Any) -> datetime:
    """An aware datetime in UTC (a naive one is taken as UTC); RecordError for other values."""
    if not isinstance(value, datetime):
        raise RecordError(name, f"must be a datetime, got {type(value).__name__}")
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    try:
        return aware.astimezone(UTC)
    except OverflowError:
        raise RecordError(name, f"is out of range: {value.isoformat()}") from None
