"""Records from plain mappings (JSON lines, CSV rows, request bodies), with errors that name the field."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import datetime
from typing import Any, TypeVar

from rewardloop.types.errors import RecordError
from rewardloop.types.records import Decision, Feedback, TraceStep

R = TypeVar("R", Decision, Feedback)

_TUPLE_FIELDS = {
    "actions",
    "action_dist",
    "features",
    "candidates",
    "ranking",
    "scale",
    "label_space",
    "chosen_set",
    "label_probs",
    "labels",
}


def _parse_time(key: str, value: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            pass
    raise RecordError(key, f"must be an ISO-8601 time, got {value!r}")


def _field_names(cls: type[Any]) -> tuple[frozenset[str], frozenset[str]]:
    """(all field names, required field names) of a record class."""
    fields = dataclasses.fields(cls)
    required = frozenset(
        f.name
        for f in fields
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    )
    return frozenset(f.name for f in fields), required


def _convert(key: str, value: Any) -> Any:
    if key in _TIME_FIELDS:
        return _parse_time(key, value)
    if key == "trace":
        try:
            return tuple(s if isinstance(s, TraceStep) else TraceStep(**s) for s in value)
        except TypeError as err:
            raise RecordError("trace", f"each step needs name, action and logp ({err})") from None
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise RecordError(key, f"must be a list, got {type(value).__name__}")
    return tuple(value)


_TIME_FIELDS = frozenset({"created_at", "client_time"})
_CONVERTED = frozenset(_TUPLE_FIELDS | _TIME_FIELDS | {"trace"})


def _build(cls: type[R], data: Mapping[str, Any]) -> R:
    if not isinstance(data, Mapping):
        raise RecordError("(row)", f"must be an object, got {type(data).__name__}")
    names, required = _FIELDS[cls]
    if not names.issuperset(data.keys()):
        unknown = sorted(data.keys() - names)[0]
        raise RecordError(unknown, f"is not a field of {cls.__name__} (fields: {', '.join(sorted(names))})")
    # None means "not given": the record's default applies.
    kwargs = {k: v for k, v in data.items() if v is not None}
    for key in _CONVERTED.intersection(kwargs):
        kwargs[key] = _convert(key, kwargs[key])
    if not required.issubset(kwargs.keys()):
        missing = sorted(required - kwargs.keys())[0]
        raise RecordError(missing, "is required")
    return cls(**kwargs)


# Computed once: dataclasses.fields() per row would dominate parsing time.
_FIELDS = {cls: _field_names(cls) for cls in (Decision, Feedback)}


def decision_from_dict(data: Mapping[str, Any]) -> Decision:
    """A :class:`Decision` from a mapping such as one JSON line; ``None`` values mean "not given"."""
    return _build(Decision, data)


def feedback_from_dict(data: Mapping[str, Any]) -> Feedback:
    """A :class:`Feedback` from a mapping such as one JSON line; ``None`` values mean "not given"."""
    return _build(Feedback, data)


def record_to_dict(record: Decision | Feedback) -> dict[str, Any]:
    """The inverse of the two parsers: JSON-ready (times as ISO strings, tuples as lists)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(record):
        value = getattr(record, f.name)
        if isinstance(value, datetime):
            value = value.isoformat()
        elif f.name == "trace":
            value = [dataclasses.asdict(s) for s in value]
        elif isinstance(value, tuple):
            value = list(value)
        elif isinstance(value, Mapping):
            value = dict(value)
        out[f.name] = value
    return out
