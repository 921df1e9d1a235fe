"""Write decisions, feedback and rewards.

Writes are batched and transactional: every row is validated first (the record checks, the store's
limits, the decisions that feedback references and the labels a correction may name); a batch with a
bad row writes nothing (:class:`BatchError` lists every bad row and field) unless
``skip_invalid=True``, which writes the good rows and reports the bad ones.

Idempotency, with Stripe's semantics: re-sending a decision with the same ``id`` or
``idempotency_key``, or feedback with the same ``id`` in the same project, with the same body is a
replay (nothing is written; it answers the stored row); the same id or key with a *different* body is
a conflict, reported (and refused with the batch) instead of silently dropped. Feedback ids are unique
per project (the project of the row's decision), not globally.

The bulk path is the driver's own (:mod:`rewardloop.store.bulk`). No ORM loop.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import orjson
from sqlalchemy import Connection, select

from rewardloop.store.bulk import (
    _DECISION_COLUMNS,
    _FEEDBACK_COLUMNS,
    _REWARD_COLUMNS,
    _bulk_insert,
    _decision_params,
    _feedback_params,
    _fetch_in,
    _insert_if_all_new,
    _reward_params,
    _time_adapter,
)
from rewardloop.store.engine import Store
from rewardloop.store.rows import decision_from_row, feedback_from_row
from rewardloop.store.tables import DecisionRow, FeedbackRow
from rewardloop.types import (
    Decision,
    Feedback,
    RecordError,
    Reward,
    decision_from_dict,
    feedback_from_dict,
)
from rewardloop.types.sets import check_labels_against

R = TypeVar("R", Decision, Feedback)
#: A stored decision as feedback checks see it: its project, the labels a correction may name (None: a
#: generator's, whose correction is the text of the right answer) and its set.
_Ref = tuple[str, tuple[str, ...] | None, dict[str, Any] | None]

#: Ids per IN (...) list when checking that feedback references stored decisions.
_ID_CHUNK = 5000
#: The project of a decision logged without ``metadata["project"]`` (as store.insights reads it).
DEFAULT_PROJECT = "default"

#: How a re-sent decision is compared with the stored one: every field the client sent ("record", for
#: logged decisions), or only the request the policy decided on ("context", for ``/v1/decide``, whose
#: model may sample another action for the same request).
Match = Literal["record", "context"]


class BatchError(ValueError):
    """A batch had invalid rows and nothing of it was written.

    ``errors`` holds one :class:`RecordError` per bad row, each naming the row and the field.
    """

    def __init__(self, kind: str, errors: Sequence[RecordError]) -> None:
        self.errors = list(errors)
        shown = "\n".join(f"  {e}" for e in self.errors[:20])
        more = f"\n  ... and {len(self.errors) - 20} more" if len(self.errors) > 20 else ""
        super().__init__(
            f"{len(self.errors)} invalid {kind} row(s); nothing of this batch was written "
            f"(pass skip_invalid to write the valid rows):\n{shown}{more}"
        )


@dataclass(frozen=True)
class WriteReport:
    """What a batch write did: rows written, replays ignored, invalid rows and id conflicts skipped."""

    written: int
    duplicates: int = 0
    invalid: list[RecordError] = field(default_factory=list)
    conflicts: list[RecordError] = field(default_factory=list)


@dataclass(frozen=True)
class Outcome:
    """What happened to one row of a batch: ``new`` (written), ``replay`` of ``stored_id``, or
    ``conflict`` (``error`` names the id or key that was used before with another body)."""

    status: Literal["new", "replay", "conflict"]
    stored_id: str
    error: RecordError | None = None
    stored: Decision | Feedback | None = None


def _validate(
    rows: Iterable[R | Mapping[str, Any]],
    parse: Callable[[Mapping[str, Any]], R],
    cls: type[R],
    check: Callable[[R], None] | None = None,
) -> tuple[list[R], list[int], list[RecordError]]:
    """Records for the valid rows, their row numbers, and an error for each invalid row."""
    good: list[R] = []
    where: list[int] = []
    bad: list[RecordError] = []
    for i, row in enumerate(rows):
        try:
            record = row if isinstance(row, cls) else parse(row)  # type: ignore[arg-type]
            if check is not None:
                check(record)
            good.append(record)
            where.append(i)
        except RecordError as err:
            bad.append(err.at_row(i))
        except (TypeError, ValueError) as err:
            bad.append(RecordError("(row)", str(err), i))
    return good, where, bad


# ------------------------------------------------------------------------------------------ decisions


#: Metadata the serving path adds to link the rows of one served request by their ids (a shadow to its
#: decision, a router's decision and the answer of the policy its arm names): fresh ids on every
#: request, so not part of what a replay must repeat.
LINK_KEYS = frozenset({"shadow_of", "answer_decision_id", "routed_by"})


def _decision_body(d: Decision, match: Match = "record") -> tuple[Any, ...]:
    """What a client sent: the fields a replay must repeat (not the id or key, nor the server's time,
    nor the links between the rows of one request: :data:`LINK_KEYS`).

    ``match="context"`` keeps only the request the policy decided on."""
    meta = {k: v for k, v in d.metadata.items() if k not in LINK_KEYS}
    context = (d.policy, d.kind, d.text, d.features, d.candidates, meta)
    if match == "context":
        return context
    return (
        *context,
        d.policy_version,
        d.actions,
        d.action,
        d.action_dist,
        d.pscore,
        d.confidence,
        d.latency_ms,
        d.ranking,
        d.experiment,
        d.variant,
        d.variant_share,
        d.trace,
        d.client_time,
    )


def _feedback_body(f: Feedback) -> tuple[Any, ...]:
    """What a client sent of a feedback row (not the id, nor the server's time)."""
    scores = dict(f.scores) if f.scores else None
    return (
        f.decision_id,
        f.kind,
        f.value,
        f.scale,
        f.label,
        f.preferred,
        f.rejected,
        scores,
        f.rater_id,
        f.authority,
        f.source,
        f.comment,
        f.client_time,
    )


def check_decision_limits(store: Store, d: Decision) -> None:
    """The store's own bounds on a decision (``store.max_actions``); RecordError naming the field."""
    if len(d.actions) > store.max_actions:
        raise RecordError(
            "actions",
            f"has {len(d.actions)} actions; at most {store.max_actions} are accepted (store.max_actions)",
        )


def _stored_ids(conn: Connection, ids: Sequence[str]) -> set[str]:
    found: set[str] = set()
    for start in range(0, len(ids), _ID_CHUNK):
        chunk = ids[start : start + _ID_CHUNK]
        found.update(i for (i,) in _fetch_in(conn, "SELECT id FROM decisions WHERE id IN ({})", chunk))
    return found


def _key_owners(conn: Connection, keys: Iterable[str | None]) -> dict[str, str]:
    """The stored decision id of each idempotency key among ``keys`` (None entries are skipped)."""
    wanted = list(dict.fromkeys(k for k in keys if k is not None))
    if not wanted:
        return {}
    sql = "SELECT idempotency_key, id FROM decisions WHERE idempotency_key IN ({})"
    return {str(k): i for start in range(0, len(wanted), _ID_CHUNK)
            for k, i in _fetch_in(conn, sql, wanted[start : start + _ID_CHUNK])}  # fmt: skip


def _stored_decisions(conn: Connection, ids: Iterable[str]) -> dict[str, Decision]:
    wanted = list(dict.fromkeys(ids))
    query = select(DecisionRow.__table__).where(DecisionRow.id.in_(wanted))
    return {r.id: decision_from_row(r) for r in conn.execute(query)} if wanted else {}


def insert_decisions(
    conn: Connection, rows: Sequence[Decision], matches: Sequence[Match] | None = None
) -> list[Outcome]:
    """Insert validated decisions inside the caller's transaction; one :class:`Outcome` per row.

    A row is new if its id was not stored before and its idempotency key (if any) is now its own;
    otherwise it is a replay of the stored decision if the bodies agree (``matches``: one per row,
    default "record"), else a conflict.
    """
    time = _time_adapter(conn.dialect.name)
    params = [_decision_params(d, time) for d in rows]
    if _insert_if_all_new(conn, "decisions", _DECISION_COLUMNS, params):
        # Every row went in: each id is new and each key is now its own.
        return [Outcome("new", d.id) for d in rows]
    ids = list(dict.fromkeys(d.id for d in rows))
    before = _stored_ids(conn, ids)
    inserted = _bulk_insert(conn, "decisions", _DECISION_COLUMNS, params)
    outcomes: list[Outcome | None]
    if len(ids) == len(rows) and inserted == len(ids) - len(before):
        # Every row not stored before went in, so each is new and owns its (unique) key: no second
        # look at the table, only the keys of the rows already stored are read.
        outcomes = [None if d.id in before else Outcome("new", d.id) for d in rows]
        owner = _key_owners(conn, (d.idempotency_key for d in rows if d.id in before))
    else:
        after = _stored_ids(conn, ids)
        owner = _key_owners(conn, (d.idempotency_key for d in rows))
        seen: set[str] = set()
        outcomes = []
        for d in rows:
            first = d.id not in seen
            seen.add(d.id)
            key = d.idempotency_key
            new = first and d.id in after and d.id not in before and (key is None or owner.get(key) == d.id)
            outcomes.append(Outcome("new", d.id) if new else None)
    earlier = _stored_decisions(
        conn,
        (owner.get(d.idempotency_key or "", d.id) for d, o in zip(rows, outcomes, strict=True) if o is None),
    )
    result: list[Outcome] = []
    every: Sequence[Match] = matches if matches is not None else ["record"] * len(rows)
    for d, o, match in zip(rows, outcomes, every, strict=True):
        if o is not None:
            result.append(o)
            continue
        by_key = d.idempotency_key is not None and d.idempotency_key in owner
        stored = earlier.get(owner[d.idempotency_key] if by_key else d.id)  # type: ignore[index]
        name = "idempotency_key" if by_key else "id"
        if stored is not None and _decision_body(stored, match) == _decision_body(d, match):
            result.append(Outcome("replay", stored.id, stored=stored))
        else:
            used = d.idempotency_key if by_key else d.id
            reason = f"{used!r} was used before for a different decision (same {name} and body replays it)"
            result.append(
                Outcome("conflict", stored.id if stored else d.id, RecordError(name, reason), stored)
            )
    return result


def _report(outcomes: Sequence[Outcome], where: Sequence[int], bad: list[RecordError]) -> WriteReport:
    conflicts = [o.error.at_row(row) for o, row in zip(outcomes, where, strict=True) if o.error is not None]
    return WriteReport(
        sum(o.status == "new" for o in outcomes), sum(o.status == "replay" for o in outcomes), bad, conflicts
    )


def write_decisions(
    store: Store, rows: Iterable[Decision | Mapping[str, Any]], skip_invalid: bool = False
) -> WriteReport:
    """Validate and write decisions in one transaction.

    Parameters
    ----------
    rows : iterable of Decision or mapping
        Records, or mappings such as parsed JSON lines (validated here).
    skip_invalid : bool, default False
        Write the valid rows and report the invalid ones (and the conflicts), instead of refusing the
        whole batch.

    Raises
    ------
    BatchError
        If any row is invalid or reuses an id or idempotency key with another body, and
        ``skip_invalid`` is False; nothing is written then.
    """
    good, where, bad = _validate(
        rows, decision_from_dict, Decision, lambda d: check_decision_limits(store, d)
    )
    if bad and not skip_invalid:
        raise BatchError("decision", bad)
    with store.engine.begin() as conn:
        report = _report(insert_decisions(conn, good), where, bad)
        if report.conflicts and not skip_invalid:
            raise BatchError("decision", report.conflicts)  # rolls the transaction back
    return report


def log_decision(store: Store, decision: Decision) -> str:
    """Write one decision; returns the stored id (the earlier one's, for a replayed idempotency key).

    Raises BatchError if its id or idempotency key was used before for a different decision.
    """
    check_decision_limits(store, decision)
    with store.engine.begin() as conn:
        (outcome,) = insert_decisions(conn, [decision])
    if outcome.error is not None:
        raise BatchError("decision", [outcome.error])
    return outcome.stored_id


def existing_decision_ids(store: Store, ids: Iterable[str]) -> set[str]:
    """The subset of ``ids`` that are stored decisions."""
    with store.engine.connect() as conn:
        return _stored_ids(conn, list(dict.fromkeys(ids)))


# ------------------------------------------------------------------------------------------- feedback


def _decision_refs(
    conn: Connection, ids: Iterable[str], labels: bool = True, sets: bool = True
) -> dict[str, _Ref]:
    """For each stored decision among ``ids``: (its project, its actions or None for a generator's, its
    set or None). Without ``labels`` (no row is a correction) the actions are not read and stand as
    None, without ``sets`` (no row names labels) the set is not read."""
    wanted = list(dict.fromkeys(ids))
    found: dict[str, _Ref] = {}
    # The JSON columns as text, decoded by orjson: the JSON type's stdlib decoder was most of the time of
    # a feedback batch.
    actions = "kind, CAST(actions AS TEXT)" if labels else "NULL, NULL"
    action_set = "CAST(action_set AS TEXT)" if sets else "NULL"
    sql = f"SELECT id, CAST(meta AS TEXT), {actions}, {action_set} FROM decisions WHERE id IN ({{}})"
    for start in range(0, len(wanted), _ID_CHUNK):
        for i, meta, kind, acts, stored_set in _fetch_in(conn, sql, wanted[start : start + _ID_CHUNK]):
            known = None if not labels or kind == "generator" else tuple(_loads(acts))
            found[i] = (_project_of(meta), known, _loads(stored_set))
    return found


def _project_of(meta: str | None) -> str:
    """The project of a decision from its stored metadata (JSON text).

    Most metadata names no project: it is decoded only if the text holds the key ``"project"``, which
    stored JSON always spells so (orjson and the stdlib encoder escape no ASCII letters; PostgreSQL
    prints jsonb keys plainly)."""
    if meta is None or '"project"' not in meta:
        return DEFAULT_PROJECT
    return str((_loads(meta) or {}).get("project") or DEFAULT_PROJECT)


def _loads(text: str | None) -> Any:
    """A stored JSON value (SQL NULL and JSON null are both None); stdlib json for what orjson refuses
    (NaN, which the ORM's encoder may have written)."""
    if text is None:
        return None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def _set_mismatch(f: Feedback, action_set: dict[str, Any] | None) -> str | None:
    """Why set feedback ``f`` cannot be about its decision's stored set (None: it can)."""
    assert f.labels is not None
    space = action_set["labels"] if action_set else None
    chosen = action_set["chosen"] if action_set else ()
    return check_labels_against(f.kind, f.labels, space, chosen)


def check_references(
    conn: Connection, rows: Sequence[Feedback], where: Sequence[int], project: str | None = None
) -> tuple[list[tuple[Feedback, str]], list[int], list[RecordError]]:
    """Feedback whose decision is stored (in ``project``, if given) and whose correction label is one of
    the decision's actions, paired with its project; the rows kept, and an error for each other row."""
    refs = _decision_refs(
        conn,
        (f.decision_id for f in rows),
        labels=any(f.kind == "correction" for f in rows),
        sets=any(f.labels is not None for f in rows),
    )
    good: list[tuple[Feedback, str]] = []
    kept: list[int] = []
    bad: list[RecordError] = []
    for row, f in zip(where, rows, strict=True):
        ref = refs.get(f.decision_id)
        if ref is None or (project is not None and ref[0] != project):
            where_ = "in this project" if project is not None else "in the store"
            bad.append(RecordError("decision_id", f"no decision {f.decision_id!r} {where_}", row))
        elif f.kind == "correction" and ref[1] is not None and f.label not in ref[1]:
            labels = ", ".join(ref[1])
            bad.append(RecordError("label", f"{f.label!r} is not one of the policy's labels ({labels})", row))
        elif f.labels is not None and (why := _set_mismatch(f, ref[2])) is not None:
            bad.append(RecordError("labels", why, row))
        else:
            good.append((f, ref[0]))
            kept.append(row)
    return good, kept, bad


def _stored_feedback(conn: Connection, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Feedback]:
    wanted = set(keys)
    out: dict[tuple[str, str], Feedback] = {}
    for chunk in _key_chunks(wanted):
        query = select(FeedbackRow.__table__).where(*_key_filter(chunk))
        out.update(
            {
                (r.project, r.id): feedback_from_row(r)
                for r in conn.execute(query)
                if (r.project, r.id) in wanted
            }
        )
    return out


def _key_chunks(keys: Iterable[tuple[str, str]]) -> Iterator[list[tuple[str, str]]]:
    ordered = sorted(keys)
    for start in range(0, len(ordered), _ID_CHUNK):
        yield ordered[start : start + _ID_CHUNK]


def _key_filter(chunk: Sequence[tuple[str, str]]) -> list[Any]:
    """``project IN (...) AND id IN (...)``: served by the ``(project, id)`` primary key (a row-value
    ``IN`` of thousands of pairs is not, on PostgreSQL); the caller drops the cross pairs."""
    f = FeedbackRow
    return [f.project.in_(sorted({p for p, _ in chunk})), f.id.in_([i for _, i in chunk])]


def insert_feedback(conn: Connection, rows: Sequence[tuple[Feedback, str]]) -> list[Outcome]:
    """Insert validated ``(feedback, project)`` pairs inside the caller's transaction; one Outcome each.

    The caller has checked the references (:func:`check_references`; the review queue's resolve writes
    a reviewer's correction and closes the item in one transaction with it).
    """
    if not rows:
        return []
    time = _time_adapter(conn.dialect.name)
    params = [_feedback_params(f, p, time) for f, p in rows]
    if _insert_if_all_new(conn, "feedback", _FEEDBACK_COLUMNS, params):
        return [Outcome("new", f.id) for f, _ in rows]  # every (project, id) was new and went in
    keys = [(p, f.id) for f, p in rows]
    fresh = _insert_feedback_rows(conn, keys, params)
    earlier = _stored_feedback(conn, (k for k, new in zip(keys, fresh, strict=True) if not new))
    result: list[Outcome] = []
    for (f, _), key, new in zip(rows, keys, fresh, strict=True):
        stored = earlier.get(key)
        if new:
            result.append(Outcome("new", f.id))
        elif stored is not None and _feedback_body(stored) == _feedback_body(f):
            result.append(Outcome("replay", f.id, stored=stored))
        else:
            reason = (
                f"{f.id!r} was used before in this project for different feedback "
                "(the same id and body replays it)"
            )
            result.append(Outcome("conflict", f.id, RecordError("id", reason), stored))
    return result


def _insert_feedback_rows(
    conn: Connection, keys: Sequence[tuple[str, str]], params: list[tuple[Any, ...]]
) -> list[bool]:
    """Insert the rows (``keys``: their ``(project, id)``); for each, whether this insert wrote it.

    PostgreSQL looks up the stored keys first. SQLite inserts first and looks only if a row was
    skipped: the rows this insert wrote hold the log's last ``inserted`` positions (each takes the next
    one as it goes in, and this transaction holds SQLite's one write lock from its first row), so a
    stored row is this insert's if its position is above ``MAX(log_seq) - inserted``.
    """
    if conn.dialect.name != "sqlite":
        before = _feedback_positions(conn, keys)
        _bulk_insert(conn, "feedback", _FEEDBACK_COLUMNS, params)
        return _first_of_each(keys, lambda key: key not in before)
    inserted = _bulk_insert(conn, "feedback", _FEEDBACK_COLUMNS, params)
    if inserted == len(keys):
        return [True] * len(keys)  # no row was skipped: every key was new and went in
    (end,) = _fetch_in(conn, "SELECT MAX(log_seq) FROM feedback")
    after = _feedback_positions(conn, keys)
    return _first_of_each(keys, lambda key: (after.get(key) or -1) > int(end[0] or 0) - inserted)


def _first_of_each(keys: Sequence[tuple[str, str]], written: Callable[[tuple[str, str]], bool]) -> list[bool]:
    """Per key, ``written(key)`` at its first occurrence in ``keys`` and False at a repeat."""
    seen: set[tuple[str, str]] = set()
    out = []
    for key in keys:
        out.append(key not in seen and written(key))
        seen.add(key)
    return out


def _feedback_positions(
    conn: Connection, keys: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], int | None]:
    """The stored ``(project, id)`` keys among ``keys``, with each row's log position."""
    wanted = set(keys)
    found: dict[tuple[str, str], int | None] = {}
    sql = "SELECT project, id, log_seq FROM feedback WHERE project IN ({}) AND id IN ({})"  # see _key_filter
    for chunk in _key_chunks(wanted):
        projects, ids = sorted({p for p, _ in chunk}), [i for _, i in chunk]
        found.update(((p, i), seq) for p, i, seq in _fetch_in(conn, sql, projects, ids) if (p, i) in wanted)
    return found


def write_feedback(
    store: Store,
    rows: Iterable[Feedback | Mapping[str, Any]],
    skip_invalid: bool = False,
    project: str | None = None,
) -> WriteReport:
    """Validate and write feedback in one transaction; every row must reference a stored decision (of
    ``project``, if given) and a correction must name one of that decision's actions.

    Same contract as :func:`write_decisions`.
    """
    parsed, where, bad = _validate(rows, feedback_from_dict, Feedback)
    with store.engine.begin() as conn:
        # Every row is validated and every reference checked before refusing, so that one report lists all.
        good, kept, missing = check_references(conn, parsed, where, project)
        bad = sorted(bad + missing, key=lambda e: e.row or 0)
        if bad and not skip_invalid:
            raise BatchError("feedback", bad)
        report = _report(insert_feedback(conn, good), kept, bad)
        if report.conflicts and not skip_invalid:
            raise BatchError("feedback", report.conflicts)  # rolls the transaction back
    return report


def write_rewards(store: Store, rewards: Iterable[Reward]) -> int:
    """Write compiled rewards; a reward for the same (decision, spec, version) is replaced."""
    time = _time_adapter(store.dialect)
    params = [_reward_params(r, time) for r in rewards]
    with store.engine.begin() as conn:
        return _bulk_insert(
            conn, "rewards", _REWARD_COLUMNS, params, upsert_keys="decision_id, spec, spec_version"
        )
