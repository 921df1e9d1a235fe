"""Records to and from files: JSON lines, CSV and Parquet; and the export views.

In CSV, list and mapping fields (``actions``, ``action_dist``, ``metadata``, ``scale``, ``scores``,
``trace``...) are JSON text in their cell; empty cells mean "not given". A text cell that a spreadsheet
would run as a formula (starting with ``=``, ``+``, ``-``, ``@``, tab or carriage return) is written with
a leading ``'`` (OWASP's advice against CSV injection), which reading takes off again.

Files are read and written in bounded memory: Parquet in row groups (``ParquetWriter``,
``iter_batches``), CSV and JSON lines row by row.

Export views of stored decisions joined with their feedback:

- ``rows``: one row per decision, its feedback as a list (JSONL, Parquet) or JSON text (CSV);
- ``openai``: OpenAI chat fine-tuning JSONL, one example per classifier decision whose right label
  is known (a correction, or a positive rating/implicit signal on the chosen label);
- ``pairs``: preference pairs ``{"prompt", "chosen", "rejected"}`` from preference feedback (candidate
  texts where the decision logged them) and from corrections (right label over the wrong one).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

import orjson

from rewardloop.store.dsjson import dsjson_rows
from rewardloop.types import Decision, DecisionBatch, Feedback, record_to_dict

FileFormat = Literal["jsonl", "csv", "parquet"]
ExportView = Literal["rows", "openai", "pairs"]

_SUFFIXES: dict[str, FileFormat] = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
}
_JSON_CELLS = {
    "actions",
    "action_dist",
    "features",
    "candidates",
    "metadata",
    "ranking",
    "trace",
    "scale",
    "scores",
    "feedback",
    "label_space",
    "chosen_set",
    "label_probs",
    "labels",
}
_NUMBER_CELLS = {"pscore", "confidence", "latency_ms", "variant_share", "value", "authority"}


class FileFormatError(ValueError):
    """A file cannot be read: unknown format, or a line that is not a JSON object (named by line)."""


def file_format(path: str | Path, given: str | None = None) -> FileFormat:
    """The format named by ``given`` or by the file's suffix."""
    if given:
        if given not in ("jsonl", "csv", "parquet"):
            raise FileFormatError(f"--format must be jsonl, csv or parquet, got {given!r}")
        return given  # type: ignore[return-value]
    suffix = Path(path).suffix.lower()
    if suffix not in _SUFFIXES:
        raise FileFormatError(
            f"{path}: cannot tell the format from {suffix or 'no suffix'!r}; "
            "use .jsonl, .csv or .parquet, or pass --format"
        )
    return _SUFFIXES[suffix]


#: First characters that make a spreadsheet read a cell as a formula (OWASP, "CSV Injection").
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(value: Any) -> Any:
    """A CSV cell that no spreadsheet runs: text starting like a formula gets a leading ``'`` (and so
    does text that already starts with ``'`` before such a character, so reading is exact).

    >>> csv_safe('=HYPERLINK("http://x")'), csv_safe("-1"), csv_safe(-1.0), csv_safe("plain")
    ('\'=HYPERLINK("http://x")', "'-1", -1.0, 'plain')
    """
    if isinstance(value, str) and (
        value.startswith(_FORMULA_START) or (value.startswith("'") and value[1:2].startswith(_FORMULA_START))
    ):
        return "'" + value
    return value


def _csv_unsafe(cell: str) -> str:
    """The inverse of :func:`csv_safe`."""
    return cell[1:] if cell.startswith("'") and cell[1:2].startswith((*_FORMULA_START, "'")) else cell


def _csv_cell(key: str, cell: str, line: int) -> Any:
    if cell == "":
        return None
    cell = _csv_unsafe(cell)
    if key in _JSON_CELLS:
        try:
            return json.loads(cell)
        except json.JSONDecodeError as err:
            raise FileFormatError(f"line {line}: {key}: not valid JSON ({err.msg})") from None
    if key in _NUMBER_CELLS:
        try:
            return float(cell)
        except ValueError:
            return cell  # the record's own validation names the field
    return cell


def count_rows(path: str | Path, fmt: FileFormat) -> int:
    """Rows in the file (for a progress bar)."""
    if fmt == "parquet":
        import pyarrow.parquet as pq

        return int(pq.ParquetFile(path).metadata.num_rows)
    with open(path, "rb") as fh:
        n = sum(1 for line in fh if line.strip())
    return n - 1 if fmt == "csv" and n else n


def jsonl_objects(
    path: Path, error: type[Exception] = FileFormatError
) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) of each non-blank line of the JSON-lines file ``path``; ``error`` naming
    the line for one that is not JSON or not an object."""
    with path.open("rb") as fh:
        for n, raw_line in enumerate(fh, start=1):
            if not raw_line.strip():
                continue
            try:
                row = orjson.loads(raw_line)
            except orjson.JSONDecodeError as err:
                raise error(f"{path} line {n}: not valid JSON ({err.msg})") from None
            if not isinstance(row, dict):
                raise error(f"{path} line {n}: expected a JSON object, got {type(row).__name__}")
            yield n, row


def read_rows(path: str | Path, fmt: FileFormat | None = None) -> Iterator[dict[str, Any]]:
    """Yield each row of a JSONL, CSV or Parquet file as a mapping of field → value."""
    fmt = file_format(path, fmt)
    if fmt == "jsonl":
        for _, row in jsonl_objects(Path(path)):
            yield row
    elif fmt == "csv":
        with open(path, newline="") as fh:
            for n, row in enumerate(csv.DictReader(fh), start=2):
                yield {k: _csv_cell(k, v, n) for k, v in row.items() if k is not None}
    else:
        import pyarrow.parquet as pq

        n = 0
        for batch in pq.ParquetFile(path).iter_batches(batch_size=10_000):
            for row in batch.to_pylist():
                n += 1
                yield {
                    k: _csv_cell(k, v, n) if isinstance(v, str) and k in _JSON_CELLS else v
                    for k, v in row.items()
                    if v is not None
                }


#: Rows per Parquet row group when writing (memory is bounded by one group, not the file).
PARQUET_GROUP_ROWS = 10_000


def _flat(row: Mapping[str, Any]) -> dict[str, Any]:
    # Nested values as JSON text keep one schema whatever each row holds.
    return {k: json.dumps(v) if isinstance(v, list | dict) else v for k, v in row.items()}


def write_rows(rows: Iterable[Mapping[str, Any]], path: str | Path, fmt: FileFormat | None = None) -> int:
    """Write mappings to a JSONL, CSV or Parquet file in bounded memory; returns the rows written.

    CSV and Parquet take their columns from the first row (later rows' other keys are dropped, missing
    ones left empty); every export view yields the same keys on every row.
    """
    fmt = file_format(path, fmt)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    n = 0
    if fmt == "jsonl":
        with open(path, "wb") as fh:
            for row in rows:
                fh.write(orjson.dumps(row, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n")
                n += 1
        return n
    if fmt == "csv":
        with open(path, "w", newline="") as fh:
            writer: csv.DictWriter[str] | None = None
            for row in rows:
                if writer is None:
                    writer = csv.DictWriter(fh, fieldnames=list(row), extrasaction="ignore")
                    writer.writeheader()
                writer.writerow({k: csv_safe(v) for k, v in _flat(row).items()})
                n += 1
        return n
    return _write_parquet(rows, path)


def _write_parquet(rows: Iterable[Mapping[str, Any]], path: str | Path) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    n = 0
    group: list[dict[str, Any]] = []
    writer: pq.ParquetWriter | None = None
    schema: pa.Schema | None = None
    try:
        for row in rows:
            group.append(_flat(row))
            if len(group) >= PARQUET_GROUP_ROWS:
                writer, schema = _write_group(writer, schema, group, path)
                n += len(group)
                group = []
        if group or writer is None:
            writer, schema = _write_group(writer, schema, group, path)
            n += len(group)
    finally:
        if writer is not None:
            writer.close()
    return n


def _write_group(writer: Any, schema: Any, group: list[dict[str, Any]], path: str | Path) -> tuple[Any, Any]:
    """Append one row group. The first group fixes the schema (a column empty throughout it becomes a
    number column for the records' number fields, else text); later groups are cast to it."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pylist(group)
    if schema is None:
        fields = [
            pa.field(f.name, pa.float64() if f.name in _NUMBER_CELLS else pa.string())
            if pa.types.is_null(f.type)
            else f
            for f in table.schema
        ]
        schema = pa.schema(fields)
        writer = pq.ParquetWriter(path, schema)
    columns = [
        table.column(f.name).cast(f.type, safe=False)
        if f.name in table.column_names
        else pa.nulls(table.num_rows, f.type)
        for f in schema
    ]
    writer.write_table(pa.Table.from_arrays(columns, schema=schema))
    return writer, schema


# ------------------------------------------------------------------------------------------ views


def decision_rows(batch: DecisionBatch) -> Iterator[dict[str, Any]]:
    """One mapping per decision with its feedback under ``feedback`` (the ``rows`` view)."""
    for d in batch:
        row = record_to_dict(d)
        row["feedback"] = [record_to_dict(f) for f in batch.feedback.get(d.id, [])]
        yield row


def known_label(d: Decision, feedback: list[Feedback]) -> str | None:
    """The right label of a classifier decision, if its feedback tells it (latest, highest authority).

    A correction names it; a rating or implicit signal in the top half of its scale confirms the chosen
    action. Conflicting signals resolve to the most authoritative, then the latest.
    """
    best: tuple[float, int, str] | None = None
    for i, f in enumerate(feedback):
        label: str | None = None
        if f.kind == "correction":
            label = f.label
        elif f.kind in ("rating", "implicit") and f.value is not None and f.scale is not None:
            low, high = f.scale
            if f.value > (low + high) / 2:
                label = d.action
        if label is not None and (best is None or (f.authority, i) >= best[:2]):
            best = (f.authority, i, label)
    return best[2] if best else None


def openai_rows(batch: DecisionBatch) -> Iterator[dict[str, Any]]:
    """OpenAI chat fine-tuning examples for classifier decisions whose right label is known."""
    for d in batch:
        if d.kind != "classifier" or not d.text:
            continue
        label = known_label(d, batch.feedback.get(d.id, []))
        if label is None:
            continue
        yield {
            "messages": [
                {
                    "role": "system",
                    "content": f"Classify the request. Answer with one of: {', '.join(d.actions)}.",
                },
                {"role": "user", "content": d.text},
                {"role": "assistant", "content": label},
            ]
        }


def preference_rows(batch: DecisionBatch) -> Iterator[dict[str, Any]]:
    """Preference pairs from preference feedback and from corrections."""
    for d in batch:
        texts = dict(zip(d.actions, d.candidates, strict=True)) if d.candidates else {}
        for f in batch.feedback.get(d.id, []):
            if f.kind == "preference" and f.preferred and f.rejected:
                chosen, rejected = texts.get(f.preferred, f.preferred), texts.get(f.rejected, f.rejected)
            elif f.kind == "correction" and f.label and f.label != d.action:
                chosen, rejected = f.label, d.action
            else:
                continue
            yield {
                "prompt": d.text or "",
                "chosen": chosen,
                "rejected": rejected,
                "decision_id": d.id,
                "feedback_id": f.id,
                "rater_id": f.rater_id,
                "authority": f.authority,
            }


VIEWS = {"rows": decision_rows, "openai": openai_rows, "pairs": preference_rows, "dsjson": dsjson_rows}
