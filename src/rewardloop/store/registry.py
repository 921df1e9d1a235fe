"""Policy versions, aliases and the append-only history of alias moves.

A registered policy belongs to the project that registered it (``registry_policies``), from its first
version on; registering a version of another project's policy is refused.

An alias move is one transaction: the alias row changes only if it still points where the caller
saw it (compare-and-set), and the event describing the move is written with it. Two operators
promoting at once therefore cannot both win: the second gets :class:`AliasConflict` and nothing
changes. Events are never updated or deleted.

The move's first statement bumps the policy's ``generation`` counter. That takes the write lock before
the alias is read: on PostgreSQL a row lock, on SQLite the database's write lock (the sqlite3 driver
begins a transaction only at the first write, so a compare made by a read before it would run outside
the transaction, and two processes could both see the old alias and both "win"). The counter also tells
a serving cache that an alias of the policy moved (:func:`policy_generation`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from datetime import timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError

from rewardloop.store.engine import Store
from rewardloop.store.rows import aware, read_records, record_from_row, row_values
from rewardloop.store.tables import AliasEventRow, AliasRow, PolicyVersionRow, RegistryPolicyRow
from rewardloop.types import AliasEvent, PolicyVersion, utcnow


class RegistryStoreError(ValueError):
    """A registry write was refused (a duplicate version, a stale alias move); nothing was stored."""


class AliasConflict(RegistryStoreError):
    """The alias moved since the caller read it: re-read and retry."""


def insert_version(store: Store, pv: PolicyVersion, project: str) -> PolicyVersion:
    """Store a new version of a policy of ``project``; its first version makes ``project`` the owner.

    Refused (nothing stored) for a version that exists already and for a policy another project owns.
    """
    try:
        with store.session() as s:
            owner = s.get(RegistryPolicyRow, pv.policy)
            if owner is None:
                s.add(RegistryPolicyRow(policy=pv.policy, project=project, generation=0, created_at=utcnow()))
                s.flush()
            elif owner.project != project:
                raise RegistryStoreError(f"policy: {pv.policy} belongs to another project")
            if s.get(PolicyVersionRow, (pv.policy, pv.version)) is not None:
                raise RegistryStoreError(f"version: {pv.policy}@{pv.version} is registered already")
            s.add(PolicyVersionRow(**row_values(pv)))
    except IntegrityError:  # a concurrent register of the same version
        raise RegistryStoreError(f"version: {pv.policy}@{pv.version} is registered already") from None
    return pv


def policy_projects(store: Store) -> dict[str, str]:
    """``{policy: project}`` of every registered policy."""
    with store.session() as s:
        return {p: o for p, o in s.execute(select(RegistryPolicyRow.policy, RegistryPolicyRow.project))}


def policy_project(store: Store, policy: str) -> str | None:
    """The project that registered ``policy``, or None when it is not registered."""
    with store.session() as s:
        row = s.get(RegistryPolicyRow, policy)
        return row.project if row is not None else None


def policy_generation(store: Store, policy: str) -> int | None:
    """How many alias moves ``policy`` has had (None: not registered); one primary-key read."""
    with store.engine.connect() as conn:
        value = conn.scalar(select(RegistryPolicyRow.generation).where(RegistryPolicyRow.policy == policy))
        return int(value) if value is not None else None


def _version_from_row(r: PolicyVersionRow) -> PolicyVersion:
    return record_from_row(PolicyVersion, r, config=r.config or {}, metrics=r.metrics or {})


def get_version(store: Store, policy: str, version: str) -> PolicyVersion | None:
    with store.session() as s:
        row = s.get(PolicyVersionRow, (policy, version))
        return _version_from_row(row) if row is not None else None


def read_versions(store: Store, policy: str | None = None) -> list[PolicyVersion]:
    """Versions, oldest registration first (one policy, or all)."""
    query = select(PolicyVersionRow).order_by(
        PolicyVersionRow.policy, PolicyVersionRow.created_at, PolicyVersionRow.version
    )
    return read_records(store, query, _version_from_row, (PolicyVersionRow.policy, policy))


def delete_versions(store: Store, policy: str, versions: Iterable[str]) -> int:
    """Delete version rows (retention); refuses any that an alias points at. Returns rows deleted."""
    wanted = list(versions)
    if not wanted:
        return 0
    with store.session() as s:
        pinned = set(
            s.scalars(select(AliasRow.version).where(AliasRow.policy == policy, AliasRow.version.in_(wanted)))
        )
        if pinned:
            raise RegistryStoreError(
                f"versions: {', '.join(sorted(pinned))} of {policy} have an alias pointing at them"
            )
        result = s.execute(
            delete(PolicyVersionRow).where(
                PolicyVersionRow.policy == policy, PolicyVersionRow.version.in_(wanted)
            )
        )
        return int(result.rowcount)  # type: ignore[attr-defined]


def read_aliases(store: Store, policy: str) -> dict[str, str]:
    """``{alias: version}`` for one policy."""
    with store.session() as s:
        rows = s.execute(select(AliasRow.alias, AliasRow.version).where(AliasRow.policy == policy))
        return {a: v for a, v in rows}


def get_alias(store: Store, policy: str, alias: str) -> str | None:
    with store.session() as s:
        row = s.get(AliasRow, (policy, alias))
        return row.version if row is not None else None


def move_alias(store: Store, event: AliasEvent) -> AliasEvent:
    """Move ``event.alias`` from ``event.from_version`` to ``event.to_version`` and record the event.

    ``to_version=None`` removes the alias. Refused with :class:`AliasConflict` (nothing written) when
    the alias does not point at ``from_version`` any more, and with :class:`RegistryStoreError` when
    ``to_version`` is not a registered version. Event times are kept strictly increasing per policy so
    that the history has one order even when two moves fall in the same clock tick.
    """
    try:
        with store.session() as s:
            bumped = s.execute(
                update(RegistryPolicyRow)
                .where(RegistryPolicyRow.policy == event.policy)
                .values(generation=RegistryPolicyRow.generation + 1)
            )
            if bumped.rowcount == 0:  # type: ignore[attr-defined]
                raise RegistryStoreError(f"policy: {event.policy} is not registered")
            query = select(AliasRow).where(AliasRow.policy == event.policy, AliasRow.alias == event.alias)
            if store.dialect == "postgresql":
                query = query.with_for_update()
            row = s.scalars(query).one_or_none()
            current = row.version if row is not None else None
            if current != event.from_version:
                raise AliasConflict(
                    f"alias: {event.policy}@{event.alias} points at {current or 'nothing'}, "
                    f"not {event.from_version or 'nothing'} (it moved meanwhile; re-read and retry)"
                )
            if (
                event.to_version is not None
                and s.get(PolicyVersionRow, (event.policy, event.to_version)) is None
            ):
                raise RegistryStoreError(f"version: {event.policy}@{event.to_version} is not registered")
            last = aware(
                s.scalar(
                    select(func.max(AliasEventRow.created_at)).where(AliasEventRow.policy == event.policy)
                )
            )
            when = event.created_at
            if last is not None and when <= last:
                when = last + timedelta(microseconds=1)
            if event.to_version is None:
                if row is not None:
                    s.delete(row)
            elif row is None:
                s.add(
                    AliasRow(
                        policy=event.policy, alias=event.alias, version=event.to_version, updated_at=when
                    )
                )
            else:
                row.version = event.to_version
                row.updated_at = when
            s.add(AliasEventRow(**row_values(event, created_at=when)))
    except IntegrityError:  # two first assignments of the same alias at once
        raise AliasConflict(
            f"alias: {event.policy}@{event.alias} was set meanwhile; re-read and retry"
        ) from None
    return dataclasses.replace(event, created_at=when)


def _event_from_row(r: AliasEventRow) -> AliasEvent:
    return record_from_row(AliasEvent, r, forced=bool(r.forced))


def read_alias_events(store: Store, policy: str, alias: str | None = None) -> list[AliasEvent]:
    """The history of one policy's aliases (or of one alias), oldest first."""
    query = (
        select(AliasEventRow)
        .where(AliasEventRow.policy == policy)
        .order_by(AliasEventRow.created_at, AliasEventRow.id)
    )
    return read_records(store, query, _event_from_row, (AliasEventRow.alias, alias))


__all__ = [
    "AliasConflict",
    "RegistryStoreError",
    "delete_versions",
    "get_alias",
    "get_version",
    "insert_version",
    "move_alias",
    "policy_generation",
    "policy_project",
    "policy_projects",
    "read_alias_events",
    "read_aliases",
    "read_versions",
]
