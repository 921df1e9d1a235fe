"""API keys: created with scopes and a project, stored hashed, checked on every request, revoked.

A key is ``rl_`` followed by 32 random bytes (``secrets.token_urlsafe``), shown once at creation.
The table keeps only its SHA-256. A slow password hash (bcrypt, argon2) exists to make guessing a
*low-entropy* secret expensive; a 256-bit random key cannot be guessed whatever the hash, and a fast
hash keeps the check to one indexed lookup per request (bcrypt would add ~100 ms to each call and cap a
worker near ten requests a second).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update

from rewardloop.store.engine import Store
from rewardloop.store.rows import read_records, record_from_row
from rewardloop.store.tables import ApiKeyRow
from rewardloop.types import new_id, utcnow

#: What each scope allows.
SCOPES: dict[str, str] = {
    "decide": "ask a policy for a decision, log an externally made decision",
    "feedback": "send feedback on a decision",
    "read": "stats, leaderboard, policies and experiments lists, the dashboard",
    "review": "list, claim and resolve review-queue items",
    "export": "export decisions with their feedback (JSONL, CSV, Parquet)",
    "admin": "promote and roll back policies, manage API keys",
}

#: Named sets of scopes a key is usually created with.
ROLES: dict[str, tuple[str, ...]] = {
    "client": ("decide", "feedback"),
    "reviewer": ("read", "review"),
    "admin": ("decide", "feedback", "read", "review", "export", "admin"),
}

KEY_PREFIX = "rl_"


class ApiKeyError(ValueError):
    """A key cannot be created or changed as asked; the message names the field."""


class ApiKeyNotFound(ApiKeyError, LookupError):
    """No active key with that id (in this project)."""


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A stored API key (without its secret).

    Examples
    --------
    >>> from datetime import UTC
    >>> key = ApiKey(id="k1", name="ci", project="default", scopes=("read",),
    ...              created_at=datetime(2026, 1, 1, tzinfo=UTC))
    >>> key.allows("read"), key.allows("admin")
    (True, False)
    """

    id: str
    name: str
    project: str
    scopes: tuple[str, ...]
    created_at: datetime
    revoked_at: datetime | None = None

    def allows(self, scope: str) -> bool:
        return scope in self.scopes

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def hash_key(secret: str) -> str:
    """The stored form of a key: the hex SHA-256 of its text."""
    return hashlib.sha256(secret.encode()).hexdigest()


def _from_row(r: ApiKeyRow) -> ApiKey:
    return record_from_row(ApiKey, r, scopes=tuple(r.scopes))


def resolve_scopes(scopes: Iterable[str] = (), role: str | None = None) -> tuple[str, ...]:
    """The scopes of a role plus the ones named, checked against :data:`SCOPES`, in a stable order."""
    wanted: set[str] = set()
    if role is not None:
        if role not in ROLES:
            raise ApiKeyError(f"role: unknown role {role!r} (known: {', '.join(ROLES)})")
        wanted.update(ROLES[role])
    for scope in scopes:
        if scope not in SCOPES:
            raise ApiKeyError(f"scopes: unknown scope {scope!r} (known: {', '.join(SCOPES)})")
        wanted.add(scope)
    if not wanted:
        raise ApiKeyError("scopes: a key needs at least one scope or a role")
    return tuple(s for s in SCOPES if s in wanted)


def create_api_key(
    store: Store, name: str, project: str, scopes: Sequence[str] = (), role: str | None = None
) -> tuple[ApiKey, str]:
    """Create a key; returns the stored key and its secret (shown once, never stored)."""
    if not name.strip():
        raise ApiKeyError("name: must be a non-empty string")
    if not project.strip():
        raise ApiKeyError("project: must be a non-empty string")
    checked = resolve_scopes(scopes, role)
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKeyRow(
        id=new_id(),
        name=name,
        key_hash=hash_key(secret),
        scopes=list(checked),
        project=project,
        created_at=utcnow(),
        revoked_at=None,
    )
    with store.session() as s:
        s.add(row)
    return _from_row(row), secret


def authenticate(store: Store, secret: str) -> ApiKey | None:
    """The active key whose secret this is, or None (unknown or revoked)."""
    if not secret.startswith(KEY_PREFIX):
        return None
    with store.session() as s:
        row = s.scalar(select(ApiKeyRow).where(ApiKeyRow.key_hash == hash_key(secret)))
        if row is None or row.revoked_at is not None:
            return None
        return _from_row(row)


def list_api_keys(store: Store, project: str | None = None, include_revoked: bool = False) -> list[ApiKey]:
    """Keys, oldest first; those of one project if given."""
    query = select(ApiKeyRow).order_by(ApiKeyRow.created_at, ApiKeyRow.id)
    if not include_revoked:
        query = query.where(ApiKeyRow.revoked_at.is_(None))
    return read_records(store, query, _from_row, (ApiKeyRow.project, project))


def revoke_api_key(store: Store, key_id: str, project: str | None = None) -> ApiKey:
    """Revoke a key (kept for the record); ``project`` restricts it to that project's keys.

    Raises ApiKeyError naming the id when no such active key exists.
    """
    with store.session() as s:
        query = update(ApiKeyRow).where(ApiKeyRow.id == key_id, ApiKeyRow.revoked_at.is_(None))
        if project is not None:
            query = query.where(ApiKeyRow.project == project)
        if s.execute(query.values(revoked_at=utcnow())).rowcount == 0:  # type: ignore[attr-defined]
            raise ApiKeyNotFound(f"id: no active key {key_id!r}")
        row = s.get(ApiKeyRow, key_id)
        assert row is not None
        return _from_row(row)


__all__ = [
    "KEY_PREFIX",
    "ROLES",
    "SCOPES",
    "ApiKey",
    "ApiKeyError",
    "ApiKeyNotFound",
    "authenticate",
    "create_api_key",
    "hash_key",
    "list_api_keys",
    "resolve_scopes",
    "revoke_api_key",
]
