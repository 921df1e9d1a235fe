"""The answers of writes sent with an ``Idempotency-Key`` header (the service's
:mod:`~rewardloop.service.idempotency` middleware reads and writes them).

One row per (API key id, SHA-256 of the header value): keys are scoped per API key, so two callers
may use the same value. A row counts until its ``expires_at``; an expired row is as good as absent,
is replaced by the next write with its key, and :func:`purge_expired` deletes the rest.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite

from rewardloop.store.engine import Store
from rewardloop.store.tables import IdempotencyRow


@dataclass(frozen=True)
class StoredAnswer:
    """A write's answer, kept for replays of its key until ``expires_at``."""

    api_key_id: str
    key: str
    fingerprint: str
    method: str
    path: str
    status: int
    content_type: str
    body: bytes
    created_at: datetime
    expires_at: datetime


def key_hash(key: str) -> str:
    """What is stored of a header value (never the value itself).

    >>> key_hash("abc")[:12]
    'ba7816bf8f01'
    """
    return hashlib.sha256(key.encode()).hexdigest()


def find_answer(store: Store, api_key_id: str, key: str, now: datetime) -> StoredAnswer | None:
    """The unexpired answer stored for ``key`` of this API key, or None."""
    r = IdempotencyRow
    with store.engine.connect() as conn:
        row = conn.execute(
            select(r).where(r.api_key_id == api_key_id, r.key_hash == key_hash(key), r.expires_at > now)
        ).first()
    if row is None:
        return None
    m = row._mapping
    return StoredAnswer(
        api_key_id=m["api_key_id"],
        key=key,
        fingerprint=m["fingerprint"],
        method=m["method"],
        path=m["path"],
        status=int(m["status"]),
        content_type=m["content_type"],
        body=bytes(m["body"]),
        created_at=_utc(m["created_at"]),
        expires_at=_utc(m["expires_at"]),
    )


def save_answer(store: Store, answer: StoredAnswer) -> StoredAnswer:
    """Keep ``answer`` for its key, unless an unexpired answer is stored for it already (a concurrent
    request with the same key finished first): that one is kept, and returned. An expired row of the
    key is replaced."""
    r = IdempotencyRow
    values = {
        "api_key_id": answer.api_key_id,
        "key_hash": key_hash(answer.key),
        "fingerprint": answer.fingerprint,
        "method": answer.method,
        "path": answer.path,
        "status": answer.status,
        "content_type": answer.content_type,
        "body": answer.body,
        "created_at": answer.created_at,
        "expires_at": answer.expires_at,
    }
    dialect = sqlite if store.dialect == "sqlite" else postgresql
    stmt = dialect.insert(r)
    # One statement: insert, or replace the key's row if it has expired (else keep it, return nothing).
    stmt = stmt.on_conflict_do_update(
        index_elements=["api_key_id", "key_hash"],
        set_={k: stmt.excluded[k] for k in values if k not in ("api_key_id", "key_hash")},
        where=r.expires_at <= stmt.excluded.created_at,
    )
    with store.engine.begin() as conn:
        inserted = conn.execute(stmt.returning(r.api_key_id), values).first()
    if inserted is not None:
        return answer
    kept = find_answer(store, answer.api_key_id, answer.key, answer.created_at)
    return kept if kept is not None else answer


def _utc(t: datetime) -> datetime:
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


def purge_expired(store: Store, now: datetime) -> int:
    """Delete the answers expired at ``now``; how many."""
    with store.engine.begin() as conn:
        done = conn.execute(
            delete(IdempotencyRow).where(IdempotencyRow.expires_at <= now).returning(IdempotencyRow.key_hash)
        )
        return len(done.all())
