"""Import decisions or feedback from rows (a file's JSON lines, CSV or Parquet rows): all or nothing,
idempotent, in bounded memory.

- **All or nothing.** The whole import is one transaction. Every row is validated (the record checks,
  the store's limits, the decisions feedback references, a correction's labels, ids reused with
  another body) before the transaction commits; with one bad row nothing is stored and every bad row
  is reported. Killed midway, the transaction never commits: nothing is half-written.
- **Rows counted from 1.** A bad row is named by its place in the file, the first row being row 1
  (a CSV file's first data row, after the header), as golden-set and labelled-file errors are.
- **Idempotent.** A row without an ``id`` gets a deterministic one: a hash of the row's content and of
  how many identical rows came before it in the file. Re-running the same file (or a corrected one)
  replays the rows already stored instead of storing them twice.
- **Receipt time.** ``created_at`` is the time the store received the row; a time the row gives
  (``created_at`` or ``client_time``) is kept as ``client_time``.
- **Bounded memory.** Rows are validated and written chunk by chunk; only each row's 16-byte content
  digest is kept for the whole file.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson
from sqlalchemy import Connection

from rewardloop.store.engine import Store
from rewardloop.store.writing import (
    BatchError,
    Outcome,
    _validate,
    check_decision_limits,
    check_references,
    insert_decisions,
    insert_feedback,
)
from rewardloop.types import Decision, Feedback, RecordError, decision_from_dict, feedback_from_dict

#: Rows validated and written per step (every step is inside the one transaction of the import).
IMPORT_CHUNK = 5000

ImportKind = Literal["decisions", "feedback"]


@dataclass
class ImportReport:
    """What an import stored: rows written, replays of stored rows, and the bad rows (0-based)."""

    written: int = 0
    duplicates: int = 0
    invalid: list[RecordError] = field(default_factory=list)
    rows: int = 0


class RowIds:
    """Deterministic ids for rows without one: a content hash, and the row's occurrence among identical
    rows of the same file (so two identical rows stay two rows, and a re-run gives the same ids).

    >>> ids = RowIds()
    >>> ids.assign({"a": 1})["id"] == RowIds().assign({"a": 1})["id"]
    True
    >>> len({ids.assign({"a": 1})["id"], ids.assign({"a": 1})["id"]})
    2
    """

    def __init__(self) -> None:
        self._seen: dict[bytes, int] = {}

    def assign(self, row: Mapping[str, Any]) -> dict[str, Any]:
        out = dict(row)
        if out.get("id") is not None:
            return out
        content = orjson.dumps(
            {k: v for k, v in out.items() if k != "id"}, option=orjson.OPT_SORT_KEYS, default=str
        )
        digest = hashlib.sha256(content).digest()[:16]
        n = self._seen.get(digest, 0)
        self._seen[digest] = n + 1
        out["id"] = hashlib.sha256(digest + n.to_bytes(8, "big")).hexdigest()[:32]
        return out


def received(row: Mapping[str, Any]) -> dict[str, Any]:
    """The row with its own time moved to ``client_time`` (``created_at`` becomes the receipt time)."""
    out = dict(row)
    given = out.pop("created_at", None)
    if out.get("client_time") is None and given is not None:
        out["client_time"] = given
    return out


def _write_chunk(
    conn: Connection, store: Store, kind: ImportKind, rows: list[dict[str, Any]], start: int
) -> tuple[list[Outcome], list[RecordError]]:
    """Validate one chunk (after ``start`` rows) and insert its good rows in ``conn``; bad rows are
    numbered as in the file, the first row being row 1."""
    if kind == "decisions":
        decisions, where, bad = _validate(
            rows, decision_from_dict, Decision, lambda d: check_decision_limits(store, d)
        )
        outcomes = insert_decisions(conn, decisions)
    else:
        feedback, where0, bad = _validate(rows, feedback_from_dict, Feedback)
        good, where, missing = check_references(conn, feedback, where0)
        bad += missing
        outcomes = insert_feedback(conn, good)
    bad += [o.error.at_row(row) for o, row in zip(outcomes, where, strict=True) if o.error is not None]
    return outcomes, [e.at_row(start + (e.row or 0) + 1) for e in bad]  # file rows count from 1


def import_rows(
    store: Store,
    kind: ImportKind,
    rows: Iterable[Mapping[str, Any]],
    skip_invalid: bool = False,
    on_rows: Callable[[int], None] | None = None,
    chunk: int | None = None,
) -> ImportReport:
    """Store ``rows`` as decisions or feedback in one transaction (see the module docstring).

    ``on_rows(n)`` is called after each chunk (default :data:`IMPORT_CHUNK` rows) with its row count
    (a progress bar). With ``skip_invalid`` the good rows are stored and the bad ones reported.

    Raises
    ------
    BatchError
        Listing every bad row, if any and not ``skip_invalid``; nothing is stored then.
    """
    size = chunk or IMPORT_CHUNK
    ids = RowIds()
    report = ImportReport()
    pending: list[dict[str, Any]] = []
    with store.engine.begin() as conn:

        def flush() -> None:
            outcomes, bad = _write_chunk(conn, store, kind, pending, report.rows)
            report.invalid += bad
            report.written += sum(o.status == "new" for o in outcomes)
            report.duplicates += sum(o.status == "replay" for o in outcomes)
            report.rows += len(pending)
            if on_rows is not None:
                on_rows(len(pending))
            pending.clear()

        for row in rows:
            pending.append(received(ids.assign(row)))
            if len(pending) >= size:
                flush()
        flush()
        if report.invalid and not skip_invalid:
            raise BatchError(kind, report.invalid)  # rolls back every chunk written so far
    return report


__all__ = ["IMPORT_CHUNK", "ImportReport", "RowIds", "import_rows", "received"]
