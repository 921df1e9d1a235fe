"""The SDK's reviewer calls against the real app: ``review_next`` (a page claimed on open, filters,
the agreement) and ``review_bulk`` (one submit, each answer on its own), sync and async."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from tests.service.conftest import Api
from tests.service.test_review_workflow import queue, second_reviewer, unsure

from rewardloop.client import (
    Agreement,
    AsyncClient,
    BulkAnswer,
    BulkReport,
    Client,
    ReviewFailure,
    ReviewPage,
)
from rewardloop.client.wire import BULK_LIMIT, bulk_bodies


def _client(api: Api, who: str = "reviewer") -> Client:
    return Client(api_key=api.keys[who], http=api.client)


def test_review_next_is_a_claimed_page_with_counts_and_agreement(api: Api) -> None:
    queue(api, [unsure(i) for i in range(12)] + [unsure(99, policy="other")])
    client = _client(api)
    page = client.review_next(policy="intent", limit=5)
    assert isinstance(page, ReviewPage)
    assert (len(page.items), page.available, page.claimed) == (5, 12, 5)
    assert page.counts == {"open": 8, "claimed": 5, "resolved": 0}
    assert page.agreement == Agreement(items=0, agreed=0, kappa=None, alpha=None)
    assert {i.status for i in page.items} == {"claimed"} and {i.policy for i in page.items} == {"intent"}
    # paging: the next five; the five claimed are still mine, so offset 5 starts after them
    more = client.review_next(policy="intent", limit=5, offset=5)
    assert not {i.id for i in more.items} & {i.id for i in page.items}
    assert client.review_next(reason="audit").items == []


def test_review_bulk_answers_skips_and_reports_each_refusal(api: Api) -> None:
    queue(api, [unsure(i) for i in range(4)])
    client = _client(api)
    ids = [i.id for i in client.review_next().items]
    report = client.review_bulk(
        [
            BulkAnswer(ids[0], label="weather"),
            BulkAnswer(ids[1], label="no_such_label"),
            BulkAnswer(ids[2], skip=True),
            BulkAnswer("missing", label="weather"),
        ]
    )
    assert isinstance(report, BulkReport)
    assert (report.resolved, report.answered, report.skipped) == (1, 1, 1)
    assert [(f.item_id, f.kind) for f in report.failed] == [(ids[1], "invalid"), ("missing", "not_found")]
    assert "no_such_label" in report.failed[0].message
    # the skipped item is open again for the others; the refused and the unanswered one stay mine
    assert report.counts == {"open": 1, "claimed": 2, "resolved": 1}
    # the same submit again: the answered and skipped items are conflicts, nothing is stored twice
    again = client.review_bulk([BulkAnswer(ids[0], label="weather"), BulkAnswer(ids[2], skip=True)])
    assert (again.answered, again.skipped) == (0, 0)
    assert [f.kind for f in again.failed] == ["conflict", "conflict"]
    assert again.counts["resolved"] == 1


def test_review_bulk_of_an_overlap_page_moves_the_agreement(api: Api) -> None:
    queue(api, [unsure(i) for i in range(2)], overlap=1.0)
    second_reviewer(api)
    first, second = _client(api), _client(api, "rev2")
    ids = [i.id for i in first.review_next().items]
    assert first.review_bulk([BulkAnswer(i, label="weather") for i in ids]).resolved == 0
    out = second.review_bulk([BulkAnswer(ids[0], label="weather"), BulkAnswer(ids[1], label="timer")])
    assert (out.resolved, out.answered) == (2, 2)
    assert second.review_next().agreement.items == 2
    assert first.review_next().agreement.agreed == 1


def test_async_client_reviews_the_same_way(api: Api) -> None:
    queue(api, [unsure(i) for i in range(3)])

    async def run() -> tuple[ReviewPage, BulkReport]:
        transport = httpx.ASGITransport(app=api.client.app)
        http = httpx.AsyncClient(transport=transport, base_url="http://test")
        async with AsyncClient(api_key=api.keys["reviewer"], http=http) as client:
            page = await client.review_next(limit=2)
            report = await client.review_bulk([BulkAnswer(page.items[0].id, label="timer")])
            return page, report

    page, report = asyncio.run(run())
    assert (len(page.items), page.available, page.claimed) == (2, 3, 2)
    assert (report.resolved, report.answered, report.failed) == (1, 1, [])
    assert report.counts == {"open": 1, "claimed": 1, "resolved": 1}


def test_bulk_bodies_split_at_the_service_limit_and_refuse_other_types() -> None:
    answers = [BulkAnswer(f"i{n}", label="a") for n in range(BULK_LIMIT + 1)]
    bodies = bulk_bodies(answers)
    assert [len(b["answers"]) for b in bodies] == [BULK_LIMIT, 1]
    assert bodies[0]["answers"][0] == {"item_id": "i0", "label": "a"}
    assert bulk_bodies([BulkAnswer("x", skip=True)]) == [{"answers": [{"item_id": "x", "skip": True}]}]
    assert bulk_bodies([BulkAnswer("s", labels=[], rating=4)])[0]["answers"][0] == {
        "item_id": "s",
        "labels": [],
        "rating": 4,
    }
    with pytest.raises(TypeError, match=r"answers\[1\]: expected a BulkAnswer, got dict"):
        bulk_bodies([answers[0], {"item_id": "x"}])  # type: ignore[list-item]


def test_report_add_keeps_the_newer_counts() -> None:
    a = BulkReport(1, 1, 0, [ReviewFailure("x", "invalid", "m")], {"open": 3})
    a.add(BulkReport(0, 2, 1, [], {"open": 1}))
    assert (a.resolved, a.answered, a.skipped, len(a.failed), a.counts) == (1, 3, 1, 1, {"open": 1})


def test_review_next_refuses_an_unknown_filter_naming_it(api: Api) -> None:
    with pytest.raises(TypeError, match="unknown filter 'label'"):
        _client(api).review_next(label="x")  # type: ignore[call-arg]
