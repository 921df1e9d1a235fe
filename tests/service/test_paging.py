"""Cursor pagination on the list routes (``page_token`` in, ``next_page_token`` out): every item once, in
order, stable while items come in; bad tokens are 400 problems naming ``page_token``; the SDK follows the
tokens."""

from __future__ import annotations

from typing import Any

import pytest
from tests.service.conftest import LABELS, Api

from rewardloop.client import Client
from rewardloop.service.paging import encode_token
from rewardloop.store import write_decisions
from rewardloop.store.apikeys import create_api_key
from rewardloop.store.review import enqueue_review, read_review_queue
from rewardloop.types import Decision, ReviewItem


def queue(api: Api, priorities: list[float], tag: str = "q") -> list[str]:
    """Review items of project acme with these priorities; their ids."""
    decisions = [
        Decision(
            policy="intent",
            policy_version="1",
            kind="classifier",
            actions=LABELS,
            action=LABELS[0],
            action_dist=(0.5, 0.3, 0.2),
            pscore=0.5,
            text=f"{tag}{i}",
            metadata={"project": "acme"},
        )
        for i in range(len(priorities))
    ]
    write_decisions(api.store, decisions)
    items = [
        ReviewItem(decision_id=d.id, reason="unsure", priority=p)
        for d, p in zip(decisions, priorities, strict=True)
    ]
    enqueue_review(api.store, items)
    return [i.id for i in items]


def pages(api: Api, path: str, limit: int, who: str = "reviewer", between: Any = None) -> list[list[str]]:
    """Follow ``next_page_token`` from the first page; ``between(n)`` runs after page ``n``."""
    out: list[list[str]] = []
    token = None
    while True:
        params: dict[str, Any] = {"limit": limit}
        if token is not None:
            params["page_token"] = token
        body = api.client.get(path, params=params, headers=api.h(who)).json()
        out.append([item["id"] if "id" in item else item["name"] for item in body["items"]])
        token = body["next_page_token"]
        if between is not None:
            between(len(out))
        if token is None:
            return out


def test_review_pages_hold_every_item_once_in_priority_order(api: Api) -> None:
    ids = queue(api, [0.1, 0.9, 0.5, 0.5, 0.9, 0.2, 0.5])
    got = pages(api, "/v1/review", 3)
    assert [len(p) for p in got] == [3, 3, 1]
    whole = [e.item.id for e in read_review_queue(api.store, "acme", limit=100)]
    assert [i for p in got for i in p] == whole and sorted(whole) == sorted(ids)
    by_id = dict(zip(ids, [0.1, 0.9, 0.5, 0.5, 0.9, 0.2, 0.5], strict=True))
    assert [by_id[i] for i in whole] == [0.9, 0.9, 0.5, 0.5, 0.5, 0.2, 0.1]


def test_review_paging_is_stable_while_items_come_in(api: Api) -> None:
    """An offset would show an item twice when a higher-priority item arrives between pages."""
    first = queue(api, [0.5, 0.5, 0.4, 0.3, 0.2, 0.1])

    def arrive(n: int) -> None:
        if n == 1:
            queue(api, [0.99, 0.45, 0.05], tag="late")  # before, inside and after what is left

    got = [i for p in pages(api, "/v1/review", 2, between=arrive) for i in p]
    assert len(got) == len(set(got))  # nothing twice
    assert set(first) <= set(got)  # nothing skipped
    assert len(got) == 8  # the two that sort after the cursor are seen, the 0.99 one is not


@pytest.mark.parametrize(
    "token",
    [
        "not-a-token!",
        "e30",  # base64 of {}
        encode_token("keys", ["2026-01-01T00:00:00+00:00", "k1"]),  # another route's
        encode_token("review:claimed,open", [0.5, "yesterday", "i1"]),  # a time that is not one
        encode_token("review:claimed,open", [0.5, "x"]),  # too short
        encode_token("review:claimed,open", ["high", "2026-01-01T00:00:00+00:00", "i1"]),  # not a priority
        encode_token("review:claimed,open", [0.5, "2026-01-01T00:00:00", "i1"]),  # a time without its offset
        encode_token("review:resolved", [0.5, "2026-01-01T00:00:00+00:00", "i1"]),  # another filter's
    ],
)
def test_a_bad_token_is_a_400_problem_naming_page_token(api: Api, token: str) -> None:
    r = api.client.get("/v1/review", params={"page_token": token}, headers=api.h("reviewer"))
    assert r.status_code == 400 and r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["field"] == "page_token" and "page_token" in r.json()["detail"]


@pytest.mark.parametrize("path", ["/v1/policies", "/v1/experiments", "/v1/keys"])
def test_every_list_route_is_a_page_object(api: Api, path: str) -> None:
    body = api.client.get(path, headers=api.h("admin")).json()
    assert set(body) == {"items", "next_page_token"} and body["next_page_token"] is None
    bad = api.client.get(path, params={"page_token": "zz"}, headers=api.h("admin"))
    assert bad.status_code == 400 and bad.json()["field"] == "page_token"


def test_keys_page_by_creation_and_new_keys_come_last(api: Api) -> None:
    for i in range(5):
        create_api_key(api.store, f"app{i}", "acme", role="client")

    def arrive(n: int) -> None:
        if n == 1:
            create_api_key(api.store, "late", "acme", role="client")

    got = pages(api, "/v1/keys", 2, who="admin", between=arrive)
    ids = [i for p in got for i in p]
    listed = api.client.get("/v1/keys", params={"limit": 500}, headers=api.h("admin")).json()["items"]
    assert ids == [k["id"] for k in listed] and len(ids) == 3 + 5 + 1  # admin, client, reviewer, 5, late


def test_the_sdk_iterates_over_every_page(api: Api) -> None:
    ids = queue(api, [0.3, 0.2, 0.1, 0.9, 0.8])
    sdk = Client(api_key=api.keys["reviewer"], http=api.client)
    first = sdk.review_queue(limit=2)
    assert len(first.items) == 2 and first.next_page_token is not None
    assert [i.id for i in sdk.iter_review(page_size=2)] == [
        e.item.id for e in read_review_queue(api.store, "acme", limit=100)
    ]
    assert sorted(i.id for i in sdk.iter_review(page_size=2)) == sorted(ids)
    for i in range(3):
        create_api_key(api.store, f"sdk{i}", "acme", role="client")
    admin = Client(api_key=api.keys["admin"], http=api.client)
    names = [k["name"] for k in admin.iter_list("keys", page_size=2)]
    assert names == ["admin", "client", "reviewer", "sdk0", "sdk1", "sdk2"]
    assert [p["name"] for p in admin.iter_list("policies")] == [
        p["name"] for p in admin.list_page("policies").items
    ]
