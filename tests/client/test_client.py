"""The SDK against the real app (TestClient as its transport), and its retry rules on a mock transport."""

from __future__ import annotations

import random
import threading
from typing import Any

import httpx
import orjson
import pytest
from tests.service.conftest import Api

from rewardloop.client import ApiError, Client, Decided, LogReport, RetryPolicy
from rewardloop.client import sync as sync_module
from rewardloop.client.models import parse_retry_after
from rewardloop.client.wire import retry_delay

DECISION = dict(
    policy="intent",
    policy_version="1",
    kind="classifier",
    actions=["lights_on", "lights_off", "weather"],
    action="lights_on",
    action_dist=[0.9, 0.05, 0.05],
    pscore=0.9,
    text="turn on the lights",
)


def _client(api: Api, who: str = "admin", **kwargs: Any) -> Client:
    return Client(api_key=api.keys[who], http=api.client, **kwargs)


def test_decide_log_feedback_review_export(api: Api) -> None:
    client = _client(api, batch_size=2, linger=0.0)
    decided = client.decide("intent", text="is it dark")
    assert isinstance(decided, Decided)
    assert decided.action == "lights_on" and decided.probabilities["lights_off"] == pytest.approx(0.3)
    assert decided.queued_for_review == "low_confidence"
    ids = client.log_decisions([DECISION, {**DECISION, "text": "lights please"}, DECISION])
    report = client.flush()
    assert report == LogReport(stored=3, replayed=0, failed=[])
    receipt = client.feedback(ids[0], "rating", value=1, scale=(0, 1), id="f-1")
    assert (receipt.id, receipt.decision_id) == ("f-1", ids[0])
    # The same id and body replays (stored once); the same id with another body is a 409 naming the id.
    assert client.feedback(ids[0], "rating", value=1, scale=(0, 1), id="f-1").id == "f-1"
    with pytest.raises(ApiError) as err:
        client.feedback(ids[0], "rating", value=0, scale=(0, 1), id="f-1")
    assert err.value.status == 409 and err.value.field == "body.id"
    many = client.feedback_many(
        [{"decision_id": i, "kind": "rating", "value": 1, "scale": [0, 1]} for i in ids[1:]]
    )
    assert (many.stored, many.failed) == (2, [])
    queue = client.review_queue()
    assert [i.decision_id for i in queue.items] == [decided.decision_id]
    item = client.claim(queue.items[0].id)
    assert item.status == "claimed"
    resolved = client.resolve(item.id, "lights_off")
    assert resolved.status == "resolved" and resolved.feedback_id is not None
    rows = client.export_rows(policy="intent")
    assert sorted(r["decision_id"] for r in rows) == sorted([*ids, decided.decision_id])
    client.close()


def test_refused_items_are_reported_not_retried(api: Api) -> None:
    client = _client(api, "client")
    good = client.log_decision(**DECISION)
    client.log_decision(**{**DECISION, "pscore": 0.5})  # not the chosen action's probability
    client.log_decision(**{**DECISION, "id": good})  # the same id and body: a replay
    client.log_decision(**{**DECISION, "id": good, "text": "other"})  # the same id, another body
    report = client.close()
    assert report.stored == 1
    assert report.replayed == 1
    assert sorted((f.status, f.field) for f in report.failed) == [
        (409, "items.3.idempotency_key"),
        (422, "items.1.pscore"),
    ]


def test_missing_key_is_an_api_error_with_the_problem_fields(api: Api) -> None:
    client = Client(http=api.client)
    with pytest.raises(ApiError) as err:
        client.decide("intent", text="x")
    assert err.value.status == 401 and err.value.title == "Unauthorized"


# ------------------------------------------------------------------------------------------ retries


def test_backoff_is_exponential_with_full_jitter_and_honours_retry_after() -> None:
    policy = RetryPolicy(max_attempts=5, base_delay=0.1, max_delay=0.5)
    assert [policy.cap(n) for n in range(4)] == [0.1, 0.2, 0.4, 0.5]
    rng = random.Random(0)
    draws = [policy.delay(n, rng=rng) for n in range(4)]
    assert all(0 <= d <= policy.cap(n) for n, d in enumerate(draws))
    assert policy.delay(0, "3") == 0.5  # capped at max_delay
    assert RetryPolicy(max_delay=10).delay(0, "3") == 3.0
    assert parse_retry_after("soon") is None


@pytest.mark.parametrize(
    ("status", "retried"), [(429, True), (503, True), (500, False), (409, False), (422, False), (201, False)]
)
def test_which_answers_are_retried(status: int, retried: bool) -> None:
    response = httpx.Response(status)
    assert (retry_delay(RetryPolicy(), 0, response, None) is not None) == retried
    assert retry_delay(RetryPolicy(max_attempts=1), 0, response, None) is None  # out of attempts


def test_connection_errors_are_retried_and_retry_after_is_waited(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[dict[str, Any]] = []
    answers = iter(["refuse", 503, 429, 201])

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(orjson.loads(request.content))
        what = next(answers)
        if what == "refuse":
            raise httpx.ConnectError("refused", request=request)
        if what != 201:
            return httpx.Response(int(what), headers={"Retry-After": "2"}, json={"detail": "busy"})
        body = seen[-1]
        return httpx.Response(201, json={"id": body["id"], "decision_id": body["decision_id"]})

    slept: list[float] = []
    monkeypatch.setattr(sync_module.time, "sleep", slept.append)
    http = httpx.Client(transport=httpx.MockTransport(handler), base_url="http://test")
    client = Client(http=http, retry=RetryPolicy(max_attempts=5, base_delay=0.01, max_delay=3))
    receipt = client.feedback("d1", "rating", value=1, scale=(0, 1))
    assert len(seen) == 4 and slept[1:] == [2.0, 2.0] and 0 <= slept[0] <= 0.01
    assert len({s["id"] for s in seen}) == 1 and receipt.id == seen[0]["id"]  # one id on every attempt


def test_giving_up_raises_status_zero() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    http = httpx.Client(transport=httpx.MockTransport(handler), base_url="http://test")
    client = Client(http=http, retry=RetryPolicy(max_attempts=2, base_delay=0.0))
    with pytest.raises(ApiError) as err:
        client.feedback("d1", "rating", value=1, scale=(0, 1))
    assert err.value.status == 0 and "ConnectError" in err.value.detail


@pytest.mark.parametrize(("option", "value"), [("batch_size", 0), ("queue_size", 0), ("linger", -1.0)])
def test_bad_logging_options_are_refused_naming_them(option: str, value: float) -> None:
    with pytest.raises(ValueError, match=f"{option}={value}"):
        Client(**{option: value})  # type: ignore[arg-type]


def test_a_batch_whose_answer_cannot_be_read_is_reported_and_flush_returns() -> None:
    """Regression: an unexpected error in the background logger killed it, and flush() waited for ever."""
    http = httpx.Client(
        transport=httpx.MockTransport(lambda r: httpx.Response(200, text="<html>")), base_url="http://t"
    )
    client = Client(http=http, linger=0.0)
    ids = client.log_decisions([DECISION, DECISION])
    done: list[LogReport] = []
    worker = threading.Thread(target=lambda: done.append(client.flush()), daemon=True)
    worker.start()
    worker.join(timeout=10)
    assert done, "flush() did not return"
    assert sorted(f.id for f in done[0].failed) == sorted(ids)
    assert {f.status for f in done[0].failed} == {0}
    client.close()
