"""``Idempotency-Key`` on the ``/v1`` writes: the same key and request replays the stored answer, another
request with the key is a 422 naming the header, keys are per API key and expire, and a write whose
answer was lost (the worker died before storing it) is not done twice when retried."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from tests.service.conftest import LABELS, Api, FakeRegistry, make_keys

from rewardloop.client import Client, LogReport
from rewardloop.config import ProjectConfig
from rewardloop.service import DecideInput, DecideOutcome, create_app, idempotency
from rewardloop.store import Store, read_decisions
from rewardloop.store.tables import DecisionRow, FeedbackRow, IdempotencyRow
from rewardloop.types import utcnow

DECISION = {
    "policy": "intent",
    "policy_version": "1",
    "kind": "classifier",
    "actions": ["lights_on", "lights_off", "weather"],
    "action": "lights_on",
    "action_dist": [0.9, 0.05, 0.05],
    "pscore": 0.9,
    "text": "turn on the lights",
}


def _count(api: Api, table: Any) -> int:
    with api.store.engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(table)) or 0)


def _post(api: Api, path: str, body: dict[str, Any], key: str, who: str = "admin") -> httpx.Response:
    return api.client.post(path, json=body, headers={**api.h(who), "Idempotency-Key": key})


def _decision(api: Api) -> str:
    answer = api.client.post("/v1/decisions", json=DECISION, headers=api.h("admin"))
    assert answer.status_code == 201, answer.text
    return str(answer.json()["decision_id"])


@pytest.mark.parametrize("path", ["/v1/decisions", "/v1/feedback", "/v1/decide"])
def test_the_same_key_and_body_replays_the_stored_answer(api: Api, path: str) -> None:
    body: dict[str, Any] = {"policy": "intent", "text": "is it dark"} if path == "/v1/decide" else DECISION
    if path == "/v1/feedback":
        body = {"decision_id": _decision(api), "kind": "rating", "value": 1, "scale": [0, 1]}
    before = (_count(api, DecisionRow), _count(api, FeedbackRow))
    first = _post(api, path, body, "order-1001")
    again = _post(api, path, dict(reversed(body.items())), "order-1001")  # key order is not the request
    assert first.status_code in (200, 201), first.text
    assert (again.status_code, again.content) == (first.status_code, first.content)
    assert again.headers["idempotent-replayed"] == "true" and "idempotent-replayed" not in first.headers
    assert again.headers["x-request-id"] != first.headers["x-request-id"]  # a new request all the same
    grew = (_count(api, DecisionRow) - before[0], _count(api, FeedbackRow) - before[1])
    assert grew == ((0, 1) if path == "/v1/feedback" else (1, 0))


def test_the_same_key_with_another_body_is_a_422_naming_the_header(api: Api) -> None:
    assert _post(api, "/v1/decisions", DECISION, "k-1").status_code == 201
    other = _post(api, "/v1/decisions", {**DECISION, "text": "lights please"}, "k-1")
    assert other.status_code == 422
    assert other.headers["content-type"] == "application/problem+json"
    problem = other.json()
    assert problem["field"] == "header.Idempotency-Key" and "another request" in problem["detail"]
    # another path with the key is another request too
    assert _post(api, "/v1/policies/intent/promote", {"version": "2"}, "k-1").status_code == 422
    assert _count(api, DecisionRow) == 1


def test_keys_are_scoped_per_api_key(api: Api) -> None:
    mine = _post(api, "/v1/decisions", DECISION, "shared", who="admin")
    theirs = _post(api, "/v1/decisions", {**DECISION, "text": "lights please"}, "shared", who="client")
    assert (mine.status_code, theirs.status_code) == (201, 201)
    assert mine.json()["decision_id"] != theirs.json()["decision_id"]
    assert _count(api, IdempotencyRow) == 2


def test_an_expired_key_is_free_again(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    assert _post(api, "/v1/decisions", DECISION, "k-2").status_code == 201
    later = utcnow() + timedelta(hours=24, seconds=1)  # service.idempotency_hours defaults to 24
    monkeypatch.setattr(idempotency, "utcnow", lambda: later)
    other = _post(api, "/v1/decisions", {**DECISION, "text": "lights please"}, "k-2")
    assert other.status_code == 201 and "idempotent-replayed" not in other.headers
    assert _count(api, IdempotencyRow) == 1  # the expired row was replaced
    # ... and that answer is now the one replayed
    again = _post(api, "/v1/decisions", {**DECISION, "text": "lights please"}, "k-2")
    assert again.headers.get("idempotent-replayed") == "true" and again.content == other.content


@pytest.mark.parametrize(
    ("raw", "why"), [("", "empty"), ("x" * 256, "too long"), ("caf\u00e9", "not ASCII"), ("a\tb", "a tab")]
)
def test_a_malformed_key_is_a_400_naming_the_header(api: Api, raw: str, why: str) -> None:
    answer = api.client.post(
        "/v1/decisions",
        json=DECISION,
        headers={**api.h("admin"), "Idempotency-Key": raw.encode("utf-8")},  # type: ignore[dict-item]
    )
    assert answer.status_code == 400, why
    assert answer.json()["field"] == "header.Idempotency-Key"
    assert _count(api, DecisionRow) == 0


def test_a_quoted_key_is_the_same_key_as_the_bare_one(api: Api) -> None:
    first = _post(api, "/v1/decisions", DECISION, '"8e03978e-40d5"')
    again = _post(api, "/v1/decisions", DECISION, "8e03978e-40d5")
    assert again.headers.get("idempotent-replayed") == "true" and again.content == first.content


def test_answers_that_say_nothing_was_done_are_not_stored(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a valid key the route answers 401 and nothing is stored; a 503 (the store refused the
    write) is not stored either, so the retry runs again."""
    no_key = api.client.post("/v1/decisions", json=DECISION, headers={"Idempotency-Key": "k-3"})
    assert no_key.status_code == 401
    from rewardloop.service.group_commit import Rejected

    real = api.client.app.state.rl.decisions.write_batch  # type: ignore[attr-defined]
    monkeypatch.setattr(
        api.client.app.state.rl.decisions,  # type: ignore[attr-defined]
        "write_batch",
        lambda items: [Rejected(503, "the store refused the write: down")] * len(items),
    )
    assert _post(api, "/v1/decisions", DECISION, "k-3").status_code == 503
    assert _count(api, IdempotencyRow) == 0
    monkeypatch.setattr(api.client.app.state.rl.decisions, "write_batch", real)  # type: ignore[attr-defined]
    retried = _post(api, "/v1/decisions", DECISION, "k-3")
    assert retried.status_code == 201 and "idempotent-replayed" not in retried.headers


def test_refusals_are_stored_and_replayed(api: Api) -> None:
    """A 4xx is the request's answer (it will not change): replayed like a success."""
    bad = _post(api, "/v1/decisions", {**DECISION, "pscore": 2.0}, "k-4")
    assert bad.status_code == 422
    again = _post(api, "/v1/decisions", {**DECISION, "pscore": 2.0}, "k-4")
    assert again.headers.get("idempotent-replayed") == "true" and again.content == bad.content


def test_reads_ignore_the_header(api: Api) -> None:
    assert (
        api.client.get("/v1/policies", headers={**api.h("admin"), "Idempotency-Key": ""}).status_code == 200
    )
    assert _count(api, IdempotencyRow) == 0


@pytest.mark.parametrize("path", ["/v1/decide", "/v1/decisions", "/v1/feedback"])
def test_a_write_whose_answer_was_lost_is_done_once_when_retried(
    api: Api, monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    """The worker commits the write, then dies before the answer is stored: the retry finds no stored
    answer, runs again, and the record-level key the header stands for (written with the record, in the
    write's own transaction) makes it a replay: no second row, the same id."""
    body: dict[str, Any] = (
        {"policy": "intent", "text": "turn on the lights"}
        if path == "/v1/decide"
        else {k: v for k, v in DECISION.items()}
    )
    if path == "/v1/feedback":
        body = {"decision_id": _decision(api), "kind": "rating", "value": 1, "scale": [0, 1]}
    monkeypatch.setattr(idempotency, "save_answer", lambda store, answer: answer)  # died before storing
    first = _post(api, path, body, "lost-1")
    monkeypatch.undo()
    rows = (_count(api, DecisionRow), _count(api, FeedbackRow))
    retry = _post(api, path, body, "lost-1")
    assert retry.status_code in (200, 201), retry.text
    assert (_count(api, DecisionRow), _count(api, FeedbackRow)) == rows
    name = "id" if path == "/v1/feedback" else "decision_id"
    assert retry.json()[name] == first.json()[name]
    assert _post(api, path, body, "lost-1").headers.get("idempotent-replayed") == "true"


class _LosesFirstAnswers(httpx.BaseTransport):
    """Forwards to the app; the first answer of each write is lost on the way back (a reset after the
    service committed), so the SDK must retry."""

    def __init__(self, app: Any) -> None:
        self.app = app  # the TestClient
        self.keys: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        got = self.app.request(
            request.method, str(request.url), headers=dict(request.headers), content=request.read()
        )
        response = httpx.Response(got.status_code, headers=dict(got.headers), content=got.content)
        if request.method == "POST":
            key = request.headers["idempotency-key"]
            self.keys.append(key)
            if self.keys.count(key) == 1:
                raise httpx.ReadError("connection reset after the answer was sent", request=request)
        return response


def test_the_sdk_retries_a_lost_answer_with_the_same_key_and_stores_once(api: Api) -> None:
    lossy = _LosesFirstAnswers(api.client)
    http = httpx.Client(transport=lossy, base_url="http://testserver")
    client = Client(api_key=api.keys["admin"], http=http, linger=0.0)
    decided = client.decide("intent", text="turn on the lights")
    client.log_decisions([DECISION])
    # the retry's answer is the first one, replayed: it says "stored", as the lost answer did
    assert client.flush() == LogReport(stored=1, replayed=0, failed=[])
    receipt = client.feedback(decided.decision_id, "rating", value=1, scale=(0, 1))
    client.close()
    assert _count(api, DecisionRow) == 2 and _count(api, FeedbackRow) == 1
    assert receipt.decision_id == decided.decision_id
    # every write was sent twice with one key: the second answer was the stored one
    assert len(lossy.keys) == 6 and len(set(lossy.keys)) == 3


def test_the_openapi_document_lists_the_header_on_every_write(api: Api) -> None:
    document = api.client.get("/openapi.json").json()
    ref = {"$ref": "#/components/parameters/IdempotencyKey"}
    assert document["components"]["parameters"]["IdempotencyKey"]["in"] == "header"
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            writes = path.startswith(idempotency.PATHS) and method.upper() in idempotency.WRITES
            assert (ref in operation.get("parameters", [])) == writes, (method, path)
            if writes:
                assert "422" in operation["responses"] and "400" in operation["responses"]


class _Uniform(FakeRegistry):
    """A policy that draws uniformly from a fresh generator per request, as the registry's serving path
    does (its rng is seeded by each request's new decision id)."""

    def decide(self, request: DecideInput) -> DecideOutcome:
        outcome = super().decide(request)
        i = int(np.random.default_rng().integers(3))
        d = dataclasses.replace(
            outcome.decision, action=LABELS[i], action_dist=(1 / 3, 1 / 3, 1 / 3), pscore=1 / 3
        )
        return DecideOutcome(d)


def test_a_replayed_decide_answers_the_stored_decision_not_a_fresh_draw(store: Store) -> None:
    """Regression: a decide re-sent with its idempotency_key answered this request's own draw with the
    first decision's id, so the app could act on another action than the one logged."""
    cfg = ProjectConfig()
    cfg.service.key_cache_seconds = 0.0
    registry = _Uniform()
    app = create_app(store, config=cfg, provider=registry, admin=registry)
    keys = make_keys(store)
    body = {"policy": "intent", "text": "turn on the lights", "idempotency_key": "req-1"}
    with TestClient(app) as client:
        answers = [
            client.post("/v1/decide", json=body, headers={"Authorization": f"Bearer {keys['client']}"}).json()
            for _ in range(8)
        ]
    (stored,) = read_decisions(store).decisions
    assert {(a["decision_id"], a["action"]) for a in answers} == {(stored.id, stored.action)}
