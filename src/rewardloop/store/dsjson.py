"""DSJSON: the joined contextual-bandit events of Vowpal Wabbit and Azure Personalizer, in and out.

One JSON object per line::

    {"_label_cost": -1.0, "_label_probability": 0.8, "_label_Action": 2, "_labelIndex": 0,
     "Timestamp": "2024-01-01T00:00:00Z", "Version": "1", "EventId": "e1",
     "a": [2, 1], "c": {"shared": {...}, "_multi": [{...}, {...}]}, "p": [0.8, 0.2]}

``c._multi`` lists the actions (VW's action ids are their 1-based positions); ``a`` ranks the action ids,
the chosen one (``_label_Action``) first, and ``p`` gives each one's probability (aligned with ``a``);
``_labelIndex`` is the chosen action's 0-based position in ``c._multi``. The reward is minus the cost.

Import: a line is a router :class:`Decision` (``actions`` "1".."K", ``action_dist`` by action id, id =
``EventId``, ``c`` kept in ``metadata["dsjson"]``) and, when it carries a cost, a rating
:class:`Feedback` (source ``implicit``, value = −cost, on a scale covering the file's rewards). Export
writes the same shape from decisions and their feedback, so VW reads it (``--dsjson``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import orjson

from rewardloop.types import Decision, DecisionBatch, Feedback, RecordError

if TYPE_CHECKING:  # the writers import SQLAlchemy: only import_dsjson needs them (store.files reads)
    from rewardloop.store import Store
    from rewardloop.store.writing import WriteReport


@dataclass(frozen=True)
class DsjsonEvents:
    decisions: list[Decision]
    feedback: list[Feedback]


def _event(line: str, row: int) -> dict[str, Any]:
    try:
        event = orjson.loads(line)
    except orjson.JSONDecodeError as err:
        raise RecordError("line", f"not JSON: {err}").at_row(row) from None
    if not isinstance(event, dict):
        raise RecordError("line", "a DSJSON event is a JSON object").at_row(row)
    for name in ("EventId", "a", "p", "c"):
        if name not in event:
            raise RecordError(name, "is required in a DSJSON event").at_row(row)
    return event


def _decision(event: dict[str, Any], policy: str, version: str, row: int) -> Decision:
    ids, probs = event["a"], event["p"]
    multi = event["c"].get("_multi") if isinstance(event["c"], dict) else None
    k = len(multi) if isinstance(multi, list) and multi else len(ids)
    if len(ids) != len(probs) or sorted(ids) != list(range(1, k + 1)):
        raise RecordError("a", f"must rank the action ids 1..{k} once each, aligned with p").at_row(row)
    dist = [0.0] * k
    for action_id, p in zip(ids, probs, strict=True):
        dist[int(action_id) - 1] = float(p)
    chosen = int(event.get("_label_Action", ids[0]))
    pscore = float(event.get("_label_probability", dist[chosen - 1]))
    stamp = event.get("Timestamp")
    try:
        return Decision(
            id=str(event["EventId"]),
            policy=policy,
            policy_version=version,
            kind="router",
            actions=tuple(str(i) for i in range(1, k + 1)),
            action=str(chosen),
            action_dist=tuple(dist),
            pscore=pscore,
            metadata={"dsjson": {"c": event["c"], "Version": event.get("Version", "1")}},
            client_time=datetime.fromisoformat(stamp.replace("Z", "+00:00")) if stamp else None,
        )
    except (RecordError, ValueError, TypeError) as err:
        if isinstance(err, RecordError):
            raise err.at_row(row) from None
        raise RecordError("Timestamp", f"not an ISO-8601 time: {stamp!r}").at_row(row) from None


def read_dsjson(lines: Iterable[str], policy: str, version: str = "dsjson") -> DsjsonEvents:
    """Parse DSJSON lines (rows counted from 1 in errors); blank lines are skipped."""
    decisions, costs = [], []
    for row, line in enumerate(lines, 1):
        if not line.strip():
            continue
        event = _event(line, row)
        decisions.append(_decision(event, policy, version, row))
        cost = event.get("_label_cost")
        if cost is not None and not math.isfinite(float(cost)):
            raise RecordError("_label_cost", f"must be finite, got {cost!r}").at_row(row)
        costs.append(None if cost is None else float(cost))
    rewards = [-c for c in costs if c is not None]
    scale = (min([0.0, *rewards]), max([1.0, *rewards]))
    feedback = [
        Feedback(
            id=f"{d.id}:reward"[:64],
            decision_id=d.id,
            kind="rating",
            value=-c,
            scale=scale,
            source="implicit",
            rater_id="dsjson",
        )
        for d, c in zip(decisions, costs, strict=True)
        if c is not None
    ]
    return DsjsonEvents(decisions, feedback)


def _context(d: Decision) -> Any:
    stored = d.metadata.get("dsjson")
    if isinstance(stored, dict) and "c" in stored:
        return stored["c"]
    shared: dict[str, Any] = {f"f{i}": x for i, x in enumerate(d.features or ())}
    if d.text is not None:
        shared["text"] = d.text
    return {"shared": shared, "_multi": [{"action": {"name": a}} for a in d.actions]}


def dsjson_event(d: Decision, reward: float | None) -> dict[str, Any]:
    """One DSJSON event of a decision (and its reward, if any)."""
    chosen = d.action_index
    order = [chosen, *(i for i in range(len(d.actions)) if i != chosen)]
    event: dict[str, Any] = {}
    if reward is not None:
        event["_label_cost"] = -reward
        event["_label_probability"] = d.pscore
        event["_label_Action"] = chosen + 1
        event["_labelIndex"] = chosen
    event.update(
        Timestamp=(d.client_time or d.created_at).isoformat(),
        Version="1",
        EventId=d.id,
        a=[i + 1 for i in order],
        c=_context(d),
        p=[d.action_dist[i] for i in order],
    )
    return event


def write_dsjson(rows: Iterable[tuple[Decision, float | None]]) -> Iterator[bytes]:
    """DSJSON lines of ``(decision, reward)`` pairs."""
    for d, reward in rows:
        yield orjson.dumps(dsjson_event(d, reward)) + b"\n"


def _reward(feedback: list[Feedback]) -> float | None:
    """The newest rating or implicit value of a decision (its reward in the export), if any."""
    valued = [f for f in feedback if f.kind in ("rating", "implicit") and f.value is not None]
    return max(valued, key=lambda f: f.created_at).value if valued else None


def dsjson_rows(batch: DecisionBatch) -> Iterator[dict[str, Any]]:
    """The export view ``dsjson``: one event per decision, labelled with its reward when it has one."""
    for d in batch.decisions:
        yield dsjson_event(d, _reward(batch.feedback.get(d.id, [])))


def import_dsjson(
    store: Store, lines: Iterable[str], policy: str, version: str = "dsjson", skip_invalid: bool = False
) -> tuple[WriteReport, WriteReport]:
    """Store a DSJSON file's decisions, then their rewards as feedback; (decisions, feedback) reports.
    Importing the same file again stores nothing twice (the ids come from ``EventId``)."""
    from rewardloop.store.writing import write_decisions, write_feedback

    events = read_dsjson(lines, policy, version)
    decisions = write_decisions(store, events.decisions, skip_invalid=skip_invalid)
    return decisions, write_feedback(store, events.feedback, skip_invalid=skip_invalid)
