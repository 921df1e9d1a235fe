"""Issue 13 over HTTP and in the writers: ids per project with replay/409 semantics, receipt times, the
store's bounds, one bad row in a group commit, and the decision and its review item in one transaction."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import DataError

from rewardloop.loop.review import ReviewPolicy
from rewardloop.service.decision_writer import DecisionJob, DecisionWriter
from rewardloop.service.group_commit import GroupCommitWriter, Rejected
from rewardloop.store import Store, read_decisions, read_feedback
from rewardloop.store.tables import DecisionRow, FeedbackRow, ReviewItemRow
from rewardloop.types import Decision

from .conftest import Api


def count(store: Store, table: type) -> int:
    with store.engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(table)))


def log(api: Api, who: str = "client", **changes: object):
    body = {
        "policy": "router" if who == "client" else "bpolicy",
        "policy_version": "7",
        "kind": "router",
        "actions": ["rag", "sql"],
        "action": "sql",
        "action_dist": [0.3, 0.7],
        "pscore": 0.7,
        **changes,
    }
    return api.client.post("/v1/decisions", json=body, headers=api.h(who))


def test_a_feedback_id_another_project_used_is_stored_not_dropped(api: Api) -> None:
    theirs = log(api, "intruder").json()["decision_id"]
    ours = log(api).json()["decision_id"]
    body = {"id": "order-1001", "kind": "implicit", "value": 1}
    first = api.client.post("/v1/feedback", json={**body, "decision_id": theirs}, headers=api.h("intruder"))
    assert first.status_code == 201, first.text
    # Was: 201 and nothing stored, because the id was taken globally.
    second = api.client.post("/v1/feedback", json={**body, "decision_id": ours}, headers=api.h("client"))
    assert second.status_code == 201, second.text
    assert sorted(f.decision_id for f in read_feedback(api.store)) == sorted([theirs, ours])


def test_feedback_replay_answers_the_same_and_another_body_is_a_409(api: Api) -> None:
    d = log(api).json()["decision_id"]
    body = {"id": "fb-1", "decision_id": d, "kind": "implicit", "value": 1}
    first = api.client.post("/v1/feedback", json=body, headers=api.h("client"))
    replay = api.client.post("/v1/feedback", json=body, headers=api.h("client"))
    assert (first.status_code, replay.status_code) == (201, 201)
    assert replay.json() == first.json()
    other = api.client.post("/v1/feedback", json={**body, "value": 0}, headers=api.h("client"))
    assert other.status_code == 409, other.text
    assert other.json()["detail"].startswith(
        "id: 'fb-1' was used before in this project for different feedback"
    )
    assert [f.value for f in read_feedback(api.store)] == [1.0]


def test_decision_idempotency_key_with_another_body_is_a_409(api: Api) -> None:
    first = log(api, idempotency_key="req-1")
    replay = log(api, idempotency_key="req-1")
    assert (first.status_code, replay.status_code) == (201, 201)
    assert replay.json()["decision_id"] == first.json()["decision_id"]
    other = log(api, idempotency_key="req-1", action="rag", pscore=0.3)  # was: silently dropped
    assert other.status_code == 409, other.text
    assert "idempotency_key: 'req-1' was used before for a different decision" in other.json()["detail"]
    assert count(api.store, DecisionRow) == 1


def test_decide_replay_of_the_same_request_answers_the_first_decision(api: Api) -> None:
    body = {"policy": "intent", "text": "turn on the lights", "idempotency_key": "k1"}
    first = api.client.post("/v1/decide", json=body, headers=api.h("client")).json()
    again = api.client.post("/v1/decide", json=body, headers=api.h("client")).json()
    assert again["decision_id"] == first["decision_id"]
    other = api.client.post("/v1/decide", json={**body, "text": "is it dark"}, headers=api.h("client"))
    assert other.status_code == 409, other.text


def test_the_server_stamps_receipt_time_and_keeps_the_client_time(api: Api) -> None:
    r = log(api, created_at="9999-01-01T00:00:00Z")
    assert r.status_code == 201, r.text
    (d,) = read_decisions(api.store)
    assert d.client_time is not None and d.client_time.year == 9999 and d.created_at.year < 9999
    body = {"decision_id": d.id, "kind": "implicit", "value": 1, "created_at": "9999-01-01T00:00:00Z"}
    assert api.client.post("/v1/feedback", json=body, headers=api.h("client")).status_code == 201
    (f,) = read_feedback(api.store)
    assert f.client_time is not None and f.client_time.year == 9999 and f.created_at.year < 9999


def test_a_decision_over_max_actions_gets_a_422_naming_the_field(api: Api) -> None:
    api.store.max_actions = 2
    r = log(api, actions=["rag", "sql", "web"], action_dist=[0.2, 0.7, 0.1])
    assert r.status_code == 422, r.text
    assert "actions: has 3 actions; at most 2 are accepted (store.max_actions)" in r.text
    assert count(api.store, DecisionRow) == 0


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"variant": "v" * 101}, "variant"),
        ({"experiment": "e" * 201}, "experiment"),
        ({"text": "a\x00b"}, "text"),
    ],
)
def test_rows_postgres_cannot_hold_get_a_422_not_a_503(api: Api, changes: dict, field: str) -> None:
    r = log(api, **changes)
    assert r.status_code == 422, r.text
    assert field in r.text
    assert log(api).status_code == 201


def test_a_correction_label_the_policy_lacks_is_a_422_naming_the_labels(api: Api) -> None:
    d = log(api).json()["decision_id"]
    body = {"decision_id": d, "kind": "correction", "label": "sqll"}
    r = api.client.post("/v1/feedback", json=body, headers=api.h("client"))
    assert r.status_code == 422, r.text
    assert r.json()["detail"] == "label: 'sqll' is not one of the policy's labels (rag, sql)"
    assert r.json()["field"] == "body.label"
    assert count(api.store, FeedbackRow) == 0


class _Picky(GroupCommitWriter[str, str]):
    """Writes strings; the database refuses "bad" (as PostgreSQL refuses a NUL byte)."""

    def write_batch(self, items: list[str]) -> list[str | Rejected]:
        self.batches.append(list(items))
        if "bad" in items:
            raise DataError("INSERT ...", {}, Exception("invalid byte sequence for encoding UTF8: 0x00"))
        return [f"stored {i}" for i in items]


def test_one_bad_row_in_a_group_commit_fails_alone_with_a_422() -> None:
    async def run() -> list[object]:
        writer = _Picky(Store.open("sqlite://"))
        writer.batches = []  # type: ignore[attr-defined]
        await writer.start()
        try:
            return await asyncio.gather(
                *(writer.submit_item(x) for x in ("a", "b", "bad", "c")), return_exceptions=True
            )
        finally:
            await writer.stop()

    results = asyncio.run(run())
    assert results[0] == "stored a" and results[1] == "stored b" and results[3] == "stored c"
    bad = results[2]
    assert isinstance(bad, Rejected) and bad.status == 422  # was: 503 for all four
    assert "0x00" in str(bad)


def test_a_decision_and_its_review_item_are_one_transaction(store: Store, monkeypatch) -> None:
    import rewardloop.service.decision_writer as module

    unsure = Decision(
        policy="intent",
        policy_version="1",
        kind="classifier",
        actions=("on", "off"),
        action="on",
        action_dist=(0.55, 0.45),
        pscore=0.55,
        idempotency_key="req-7",
        metadata={"project": "acme"},
    )
    writer = DecisionWriter(store, ReviewPolicy(confidence_below=0.7), group_commit=False)
    real = module.insert_review_items

    def killed(conn, items):  # the process dies between the decision and its review item
        raise SystemExit(9)

    monkeypatch.setattr(module, "insert_review_items", killed)
    with pytest.raises(SystemExit):
        writer.write_batch([DecisionJob(unsure, "acme", "log")])
    assert count(store, DecisionRow) == 0
    monkeypatch.setattr(module, "insert_review_items", real)
    (logged,) = writer.write_batch([DecisionJob(unsure, "acme", "log")])
    # Was: new=False and no review item, for good.
    assert logged.new and logged.review_reason == "low_confidence"
    assert count(store, ReviewItemRow) == 1


def test_void_feedback_over_http_is_audited_with_the_key_id_and_scoped(api: Api) -> None:
    d = log(api).json()["decision_id"]
    body = {"id": "fb-9", "decision_id": d, "kind": "correction", "label": "rag"}
    assert api.client.post("/v1/feedback", json=body, headers=api.h("client")).status_code == 201
    path = "/v1/feedback/fb-9/void"
    assert api.client.post(path, json={"reason": "spam"}, headers=api.h("reviewer")).status_code == 403
    assert api.client.post(path, json={"reason": "spam"}, headers=api.h("intruder")).status_code == 404
    assert api.client.post(path, json={}, headers=api.h("client")).status_code == 422
    r = api.client.post(path, json={"reason": "wrong label"}, headers=api.h("client"))
    assert r.status_code == 200, r.text
    assert r.json()["voided_by"].startswith("key ") and r.json()["voided_by"].endswith("(client)")
    assert read_feedback(api.store) == []
    again = api.client.post(path, json={"reason": "twice"}, headers=api.h("admin"))
    assert again.status_code == 409 and "voided already" in again.json()["detail"]


def test_csv_export_over_http_writes_no_formula(api: Api) -> None:
    d = log(api).json()["decision_id"]
    body = {"decision_id": d, "kind": "implicit", "value": 1, "comment": '=HYPERLINK("http://evil.example")'}
    assert api.client.post("/v1/feedback", json=body, headers=api.h("client")).status_code == 201
    text = api.client.get("/v1/export?format=csv", headers=api.h("admin")).text
    assert "'=HYPERLINK(" in text and ",=HYPERLINK" not in text  # was: written unescaped
