"""Records to and from files: JSON lines, CSV and Parquet; and the export views.

In CSV, list and mapping fields (``actions``, ``action_dist``, ``metadata``, ``scale``, ``scores``,
``trace``...) are JSON text in their cell; empty cells mean "not given".

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


def _csv_cell(key: str, cell: str, line: int) -> Any:
    if cell == "":
        return None
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


def read_rows(path: str | Path, fmt: FileFormat | None = None) -> Iterator[dict[str, Any]]:
    """Yield each row of a JSONL, CSV or Parquet file as a mapping of field → value."""
    fmt = file_format(path, fmt)
    if fmt == "jsonl":
        with open(path, "rb") as fh:
            for n, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    row = orjson.loads(line)
                except orjson.JSONDecodeError as err:
                    raise FileFormatError(f"{path}, line {n}: not valid JSON ({err})") from None
                if not isinstance(row, dict):
                    raise FileFormatError(f"{path}, line {n}: expected a JSON object")
                yield row
    elif fmt == "csv":
        with open(path, newline="") as fh:
            for n, row in enumerate(csv.DictReader(fh), start=2):
                yield {k: _csv_cell(k, v, n) for k, v in row.items() if k is not None}
    else:
        import pyarrow.parquet as pq

        for batch in pq.ParquetFile(path).iter_batches(batch_size=10_000):
            for n, row in enumerate(batch.to_pylist(), start=1):
                yield {
                    k: _csv_cell(k, v, n) if isinstance(v, str) and k in _JSON_CELLS else v
                    for k, v in row.items()
                    if v is not None
                }


def write_rows(rows: Iterable[Mapping[str, Any]], path: str | Path, fmt: FileFormat | None = None) -> int:
    """Write mappings to a JSONL, CSV or Parquet file; returns the number of rows written."""
    fmt = file_format(path, fmt)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    n = 0
    if fmt == "jsonl":
        with open(path, "wb") as fh:
            for row in rows:
                fh.write(orjson.dumps(row, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n")
                n += 1
        return n
    materialised = list(rows)
    if fmt == "csv":
        keys: dict[str, None] = {}
        for row in materialised:
            keys.update(dict.fromkeys(row))
        with open(path, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(keys))
            writer.writeheader()
            for row in materialised:
                writer.writerow(
                    {k: json.dumps(v) if isinstance(v, list | dict) else v for k, v in row.items()}
                )
        return len(materialised)
    import pyarrow as pa
    import pyarrow.parquet as pq

    # Nested values as JSON text keep one schema whatever each row holds.
    flat = [
        {k: json.dumps(v) if isinstance(v, list | dict) else v for k, v in row.items()}
        for row in materialised
    ]
    pq.write_table(pa.Table.from_pylist(flat), path)
    return len(flat)


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


VIEWS = {"rows": decision_rows, "openai": openai_rows, "pairs": preference_rows}
