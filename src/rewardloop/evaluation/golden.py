"""Golden sets: hand-checked items a policy must get right, as JSONL or CSV, validated line by line.

One item per line (JSONL) or row (CSV, with a header):

=========== ======== ==================================================================================
field       required meaning
=========== ======== ==================================================================================
``id``      no       unique id (default: ``line-N``); duplicates are an error
``text``    yes*     the input text (*or ``context``: a JSON object, its ``text`` key is the input)
``label``   yes      the expected label (alias ``expected``)
``labels``  or       the expected **set** (a list; CSV: separated by ``|`` or ``;``), for a set policy:
                     the item's ``label`` is then the set's key (``{area,name}``); a file holds sets
                     on every line or on none
``critical``no       true for items that must never be missed (also: ``priority: critical``)
``priority``no       free priority class (``high``, ``low``...), reported as a breakdown
``category``no       a breakdown key (default: the expected label)
``tags``    no       list of tags (CSV: separated by ``|`` or ``;``)
=========== ======== ==================================================================================

Every error names the file and the line: ``golden.jsonl line 4: duplicate id 'e12' (first on line 2)``.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from rewardloop.store.files import jsonl_objects

TRUE = {"1", "true", "yes", "y", "t"}
FALSE = {"0", "false", "no", "n", "f", ""}
KNOWN_FIELDS = {
    "id", "text", "context", "label", "expected", "labels", "critical", "priority", "category", "tags",
}  # fmt: skip


class GoldenError(ValueError):
    """A golden file is malformed; the message names the file and the line."""


@dataclass(frozen=True)
class GoldenItem:
    """One golden item. ``line`` is its 1-based line in the file (the header is line 1 of a CSV).

    Examples
    --------
    >>> GoldenItem("e1", "my card was stolen", "fraud", critical=True).group
    'fraud'
    """

    id: str
    text: str
    label: str
    critical: bool = False
    priority: str | None = None
    category: str | None = None
    tags: tuple[str, ...] = ()
    line: int = 0
    #: The expected set of a set policy's item (None: a single label).
    labels: tuple[str, ...] | None = None

    @property
    def group(self) -> str:
        """The category breakdown key: ``category`` or else the expected label."""
        return self.category if self.category is not None else self.label


@dataclass(frozen=True)
class GoldenSet:
    """A validated golden set.

    Examples
    --------
    >>> g = GoldenSet([GoldenItem("a", "reset my password", "account", critical=True)])
    >>> g.labels, g.n_critical
    (['account'], 1)
    """

    items: Sequence[GoldenItem]
    source: str = "<golden>"
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.items)

    @property
    def texts(self) -> list[str]:
        return [i.text for i in self.items]

    @property
    def expected(self) -> list[str]:
        return [i.label for i in self.items]

    @property
    def labels(self) -> list[str]:
        """The distinct expected labels, sorted."""
        return sorted({i.label for i in self.items})

    @property
    def n_critical(self) -> int:
        return sum(i.critical for i in self.items)

    @property
    def is_sets(self) -> bool:
        """Its items expect sets (a set policy's golden set)."""
        return bool(self.items) and self.items[0].labels is not None

    @property
    def action_labels(self) -> list[str]:
        """A set golden set's distinct expected actions, sorted."""
        return sorted({label for i in self.items for label in i.labels or ()})

    def matrix(self, labels: Sequence[str]) -> npt.NDArray[np.float64]:
        """The expected sets as a 0/1 matrix of shape (n, L) over ``labels`` (checked first)."""
        self.check_labels(labels)
        index = {label: j for j, label in enumerate(labels)}
        Y = np.zeros((len(self.items), len(labels)))
        for i, item in enumerate(self.items):
            Y[i, [index[label] for label in item.labels or ()]] = 1.0
        return Y

    def check_labels(self, labels: Iterable[str]) -> None:
        """Raise :class:`GoldenError` at the first item whose label (or an action of whose set) the
        policy cannot produce."""
        known = set(labels)
        for item in self.items:
            unknown = [a for a in item.labels if a not in known] if item.labels is not None else []
            if unknown:
                shown = ", ".join(sorted(known)[:12]) + (", ..." if len(known) > 12 else "")
                raise GoldenError(
                    f"{self.source} line {item.line}: action {unknown[0]!r} is not one of the policy's "
                    f"labels ({shown})"
                )
            if item.labels is None and item.label not in known:
                shown = ", ".join(sorted(known)[:12]) + (", ..." if len(known) > 12 else "")
                raise GoldenError(
                    f"{self.source} line {item.line}: label {item.label!r} is not one of the policy's "
                    f"labels ({shown})"
                )


def _bool(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in TRUE | FALSE:
        return value.strip().lower() in TRUE
    raise GoldenError(f"{where}: 'critical' must be true/false, got {value!r}")


def _tags(value: Any, where: str) -> tuple[str, ...]:
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        sep = "|" if "|" in value else ";"
        return tuple(t.strip() for t in value.split(sep) if t.strip())
    if isinstance(value, list) and all(isinstance(t, str) for t in value):
        return tuple(value)
    raise GoldenError(f"{where}: 'tags' must be a list of strings, got {value!r}")


def _set(value: Any, where: str) -> tuple[str, ...]:
    """An item's expected set: a list of labels (CSV: ``a|b``; empty: the empty set), none repeated."""
    labels = list(_tags(value, where)) if isinstance(value, str) else value
    if not isinstance(labels, list | tuple) or not all(isinstance(a, str) and a.strip() for a in labels):
        raise GoldenError(f"{where}: 'labels' must be a list of non-empty strings, got {value!r}")
    if len(set(labels)) != len(labels):
        raise GoldenError(f"{where}: 'labels' repeats a label")
    return tuple(labels)


def _item(raw: dict[str, Any], line: int, where: str) -> GoldenItem:
    unknown = sorted(set(raw) - KNOWN_FIELDS)
    if unknown:
        raise GoldenError(f"{where}: unknown field(s) {', '.join(map(repr, unknown))}")
    label = raw.get("label", raw.get("expected"))
    expected_set = None
    if "labels" in raw:
        if label is not None:
            raise GoldenError(f"{where}: give 'label' (one label) or 'labels' (a set), not both")
        expected_set = _set(raw["labels"], where)
        label = "{" + ",".join(expected_set) + "}"
    if label is None or (isinstance(label, str) and not label.strip()):
        raise GoldenError(f"{where}: missing 'label' (the expected answer)")
    text = raw.get("text")
    context = raw.get("context")
    if (text is None or text == "") and context is not None:
        if isinstance(context, str):
            try:
                context = json.loads(context)
            except json.JSONDecodeError:
                context = {"text": context}
        if not isinstance(context, dict) or not isinstance(context.get("text"), str):
            raise GoldenError(f"{where}: 'context' must be an object with a 'text' string")
        text = context["text"]
    if not isinstance(text, str) or not text.strip():
        raise GoldenError(f"{where}: missing 'text' (or 'context')")
    priority = raw.get("priority") or None
    critical = _bool(raw.get("critical", False), where) or (
        isinstance(priority, str) and priority.strip().lower() == "critical"
    )
    item_id = raw.get("id")
    item_id = f"line-{line}" if item_id is None or item_id == "" else str(item_id)
    category = raw.get("category") or None
    return GoldenItem(
        id=item_id,
        text=text,
        label=str(label),
        critical=critical,
        priority=None if priority is None else str(priority),
        category=None if category is None else str(category),
        tags=_tags(raw.get("tags"), where),
        line=line,
        labels=expected_set,
    )


def _rows_csv(path: Path) -> Iterable[tuple[int, dict[str, Any]]]:
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        columns = reader.fieldnames or []
        if not columns:
            raise GoldenError(f"{path} line 1: empty file (a header row is required)")
        if not {"label", "expected", "labels"} & set(columns):
            raise GoldenError(f"{path} line 1 (header): no 'label' column (columns: {', '.join(columns)})")
        if "text" not in columns and "context" not in columns:
            raise GoldenError(f"{path} line 1 (header): no 'text' column (columns: {', '.join(columns)})")
        for row in reader:
            line = reader.line_num
            if None in row:
                raise GoldenError(f"{path} line {line}: more values than header columns")
            yield line, {k: v for k, v in row.items() if v is not None}


def load_golden(path: str | Path, labels: Iterable[str] | None = None) -> GoldenSet:
    """Read and validate a golden set (``.jsonl``/``.json`` lines or ``.csv``).

    Parameters
    ----------
    labels : iterable of str, optional
        The policy's labels; an item whose label is not among them is an error naming its line.
    """
    file = Path(path)
    if not file.exists():
        raise GoldenError(f"{file}: no such file")
    suffix = file.suffix.lower()
    if suffix == ".csv":
        rows = _rows_csv(file)
    elif suffix in (".jsonl", ".json", ".ndjson"):
        rows = jsonl_objects(file, GoldenError)
    else:
        raise GoldenError(f"{file}: unknown golden format {suffix!r} (use .jsonl or .csv)")
    items: list[GoldenItem] = []
    first_line: dict[str, int] = {}
    for line, raw in rows:
        item = _item(raw, line, f"{file} line {line}")
        if item.id in first_line:
            raise GoldenError(
                f"{file} line {line}: duplicate id {item.id!r} (first on line {first_line[item.id]})"
            )
        first_line[item.id] = line
        if items and (item.labels is None) != (items[0].labels is None):
            raise GoldenError(
                f"{file} line {line}: every item expects a set ('labels') or none does (line "
                f"{items[0].line} {'does' if items[0].labels is not None else 'does not'})"
            )
        items.append(item)
    if not items:
        raise GoldenError(f"{file}: no golden items")
    golden = GoldenSet(items, source=str(file))
    if labels is not None:
        golden.check_labels(labels)
    return golden


def write_golden(golden: GoldenSet | Sequence[GoldenItem], path: str | Path) -> Path:
    """Write items as JSONL (the format :func:`load_golden` reads)."""
    items = golden.items if isinstance(golden, GoldenSet) else golden
    file = Path(path)
    with file.open("w", encoding="utf-8") as fh:
        for i in items:
            row: dict[str, Any] = {"id": i.id, "text": i.text}
            row |= {"labels": list(i.labels)} if i.labels is not None else {"label": i.label}
            if i.critical:
                row["critical"] = True
            if i.priority is not None:
                row["priority"] = i.priority
            if i.category is not None:
                row["category"] = i.category
            if i.tags:
                row["tags"] = list(i.tags)
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    return file


__all__ = ["GoldenError", "GoldenItem", "GoldenSet", "load_golden", "write_golden"]
