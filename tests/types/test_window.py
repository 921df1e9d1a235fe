"""TimeWindow: the half-open ``[since, until)`` every windowed read, compile and training run takes."""

from __future__ import annotations

import doctest
from datetime import UTC, datetime, timedelta, timezone

import pytest

from rewardloop.types import RecordError, TimeWindow, window


def test_naive_times_are_utc_and_offsets_are_converted():
    w = TimeWindow(datetime(2026, 1, 1, 12), datetime(2026, 1, 1, 14, tzinfo=timezone(timedelta(hours=2))))
    assert w.since == datetime(2026, 1, 1, 12, tzinfo=UTC) and w.since.tzinfo is UTC
    assert w.until == datetime(2026, 1, 1, 12, tzinfo=UTC) and w.until.tzinfo is UTC  # 14:00+02 is 12:00Z


def test_open_ends_and_an_empty_window_are_allowed():
    assert TimeWindow() == TimeWindow(None, None)
    assert TimeWindow(since=datetime(2026, 1, 1)).until is None
    t = datetime(2026, 1, 1, tzinfo=UTC)
    assert TimeWindow(t, t).since == TimeWindow(t, t).until == t


@pytest.mark.parametrize(
    ("since", "until", "field", "reason"),
    [
        (
            datetime(2026, 1, 2),
            datetime(2026, 1, 1),
            "until",
            "2026-01-01 00:00:00+00:00 is before since (2026-01-02 00:00:00+00:00)",
        ),
        # 10:00+02:00 is 08:00Z, before 09:00Z: compared in UTC, not by the wall clock
        (
            datetime(2026, 1, 1, 9, tzinfo=UTC),
            datetime(2026, 1, 1, 10, tzinfo=timezone(timedelta(hours=2))),
            "until",
            "2026-01-01 08:00:00+00:00 is before since (2026-01-01 09:00:00+00:00)",
        ),
        ("2026-01-01", None, "since", "expected a datetime or None, got str"),
        (None, 1767225600, "until", "expected a datetime or None, got int"),
    ],
)
def test_bad_windows_name_the_end(since, until, field, reason):
    with pytest.raises(RecordError) as err:
        TimeWindow(since, until)
    assert (err.value.field, err.value.reason) == (field, reason)


def test_frozen():
    w = TimeWindow()
    with pytest.raises(AttributeError):
        w.since = datetime(2026, 1, 1)  # type: ignore[misc]


def test_docstring_examples():
    result = doctest.testmod(window, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
