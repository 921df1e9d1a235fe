"""The stored answers of ``Idempotency-Key`` writes (store/idempotency.py), on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from rewardloop.store import Store
from rewardloop.store.idempotency import StoredAnswer, find_answer, key_hash, purge_expired, save_answer
from rewardloop.types import utcnow


def _answer(key: str = "k", body: bytes = b'{"id":"1"}', hours: float = 1.0) -> StoredAnswer:
    now = utcnow()
    return StoredAnswer(
        "key-1", key, "fp", "POST", "/v1/decisions", 201, "application/json", body, now,
        now + timedelta(hours=hours),
    )  # fmt: skip


def test_an_answer_is_found_until_it_expires(store: Store) -> None:
    answer = save_answer(store, _answer())
    found = find_answer(store, "key-1", "k", answer.created_at)
    assert found == answer
    assert find_answer(store, "key-2", "k", answer.created_at) is None  # per API key
    assert find_answer(store, "key-1", "k", answer.expires_at) is None


def test_the_first_answer_stored_for_a_key_is_kept(store: Store) -> None:
    first = save_answer(store, _answer(body=b"first"))
    kept = save_answer(store, _answer(body=b"second"))
    assert kept.body == b"first" == first.body


def test_an_expired_answer_is_replaced_and_purged(store: Store) -> None:
    old = save_answer(store, _answer(body=b"old", hours=-1))
    new = save_answer(store, _answer(body=b"new"))
    assert new.body == b"new" and find_answer(store, "key-1", "k", utcnow()) == new
    save_answer(store, dataclasses.replace(_answer(key="other", hours=-1)))
    assert purge_expired(store, utcnow()) == 1
    assert find_answer(store, "key-1", "k", utcnow()) is not None and old.body == b"old"


def test_the_key_itself_is_not_stored() -> None:
    assert key_hash("secret-order-id") != "secret-order-id" and len(key_hash("x")) == 64


def test_the_migration_makes_the_table_the_code_declares(store: Store) -> None:
    from sqlalchemy import inspect

    from rewardloop.store.tables import IdempotencyRow

    columns = {c["name"]: c["nullable"] for c in inspect(store.engine).get_columns("idempotency_keys")}
    assert columns == {c.name: c.nullable for c in IdempotencyRow.__table__.columns}
    pk = inspect(store.engine).get_pk_constraint("idempotency_keys")["constrained_columns"]
    assert pk == ["api_key_id", "key_hash"]
