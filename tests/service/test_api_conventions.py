"""API conventions: batch endpoints with per-item results, RFC 9457 problems everywhere, X-Request-ID,
an OpenAPI 3.1 document that validates and lists only the answers each route gives, local docs."""

from __future__ import annotations

import dataclasses
import logging

import pytest
from openapi_spec_validator import validate
from tests.client.test_client import DECISION
from tests.service.conftest import Api

from rewardloop.service import docs

LOGGED = {**DECISION, "id": "d1"}
PROBLEM_KEYS = {"type", "title", "status", "detail", "field"}


def test_decision_batch_answers_each_item_on_its_own(api: Api) -> None:
    items = [
        LOGGED,
        {**LOGGED, "id": "d2", "pscore": 2},
        LOGGED,
        {"policy": "intent"},
        {**LOGGED, "id": "d3"},
    ]
    r = api.client.post("/v1/decisions/batch", json={"items": items}, headers=api.h("client"))
    assert r.status_code == 200
    body = r.json()
    assert [(x["index"], x["status"], x["id"]) for x in body["results"]] == [
        (0, 201, "d1"),
        (1, 422, None),
        (2, 200, "d1"),  # the same id and body again: a replay answers the first id
        (3, 422, None),
        (4, 201, "d3"),
    ]
    assert (body["stored"], body["replayed"], body["failed"]) == (2, 1, 2)
    err = body["results"][1]["error"]
    assert (
        err["field"] == "items.1.pscore" and err["status"] == 422 and err["title"] == "Unprocessable Entity"
    )
    assert body["results"][3]["error"]["field"] == "items.3.policy_version"
    conflict = api.client.post(
        "/v1/decisions/batch", json={"items": [{**LOGGED, "text": "changed"}]}, headers=api.h("client")
    ).json()["results"][0]
    assert (conflict["status"], conflict["error"]["field"]) == (409, "items.0.id")


def test_feedback_batch_answers_each_item_on_its_own(api: Api) -> None:
    api.client.post("/v1/decisions", json=LOGGED, headers=api.h("client"))
    rating = {"decision_id": "d1", "kind": "rating", "value": 1, "scale": [0, 1], "id": "f1"}
    items = [
        rating,
        {**rating, "id": "f2", "decision_id": "nope"},
        rating,
        {**rating, "id": "f1", "value": 0},
    ]
    body = api.client.post("/v1/feedback/batch", json={"items": items}, headers=api.h("client")).json()
    assert [(x["status"], (x["error"] or {}).get("field")) for x in body["results"]] == [
        (201, None),
        (404, "items.1.decision_id"),
        (201, None),  # the same id and body: stored once
        (409, "items.3.id"),
    ]
    rows = api.client.get("/v1/export", headers=api.h("admin")).text.splitlines()
    assert len(rows) == 1


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("get", "/v1/nowhere", None, 404),
        ("post", "/v1/feedback", {"decision_id": "x"}, 401),  # the plain-ASGI route
        ("get", "/v1/stats", None, 401),
        ("post", "/v1/decide", {"policy": "ghost", "text": "x"}, 404),
        ("post", "/v1/decisions/batch", {"items": []}, 422),
        ("post", "/v1/decide", "x" * 30_000, 413),  # the size limit (middleware)
    ],
)
def test_every_error_is_one_problem_shape(
    api: Api, method: str, path: str, body: object, status: int
) -> None:
    headers = {} if status == 401 else api.h("admin")
    kwargs = {"content": body} if isinstance(body, str) else {"json": body} if body is not None else {}
    r = getattr(api.client, method)(path, headers=headers, **kwargs)
    assert r.status_code == status
    assert r.headers["content-type"] == "application/problem+json"
    problem = r.json()
    assert (
        set(problem) >= PROBLEM_KEYS and problem["status"] == status and problem["type"].endswith(str(status))
    )


def test_request_id_in_and_out_and_in_the_log(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="rewardloop.service.requests"):
        given = api.client.get("/healthz", headers={"X-Request-ID": "abc-123"})
        fresh = api.client.get("/healthz")
        bad = api.client.get("/healthz", headers={"X-Request-ID": "no spaces allowed"})
    assert given.headers["x-request-id"] == "abc-123"
    assert len(fresh.headers["x-request-id"]) == 32 and bad.headers["x-request-id"] != "no spaces allowed"
    assert any("GET /healthz 200" in m and "request_id=abc-123" in m for m in caplog.messages)


def test_openapi_document_validates_and_lists_only_real_answers(api: Api) -> None:
    schema = api.client.get("/openapi.json").json()
    validate(schema)  # OpenAPI 3.1 (openapi-spec-validator)
    assert schema["openapi"].startswith("3.1")
    assert schema["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "an API key: `Authorization: Bearer <key>`",
    }
    paths = schema["paths"]
    assert set(paths["/healthz"]["get"]["responses"]) == {"200", "503"}
    assert "security" not in paths["/healthz"]["get"] and "security" not in paths["/metrics"]["get"]
    # a list route: a bad page_token is 400, a bad limit 422
    assert set(paths["/v1/policies"]["get"]["responses"]) == {"200", "400", "401", "403", "422", "503"}
    for route in ("/v1/policies", "/v1/experiments", "/v1/keys", "/v1/review"):
        params = {p["name"] for p in paths[route]["get"]["parameters"]}
        assert {"limit", "page_token"} <= params and "offset" not in params, route
        answer = paths[route]["get"]["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
        page = schema["components"]["schemas"][answer.rsplit("/", 1)[-1]]
        assert {"items", "next_page_token"} <= set(page["properties"]), route
    assert set(paths["/v1/decisions/batch"]["post"]["responses"]) == {
        "200",
        "400",
        "401",
        "403",
        "413",
        "422",
        "503",
    }
    for path, operations in paths.items():
        for op in operations.values():
            assert ("security" in op) == path.startswith(("/v1/", "/personalizer/")), path
            for code, response in op["responses"].items():
                if code >= "400":
                    assert list(response["content"]) == ["application/problem+json"], (path, code)
    assert paths["/v1/feedback"]["post"]["security"] == [{"bearer": []}, {"apiKey": []}]


@pytest.mark.skipif(docs.assets() is None, reason="fastapi-offline (the docs extra) is not installed")
def test_docs_are_served_from_local_assets(api: Api) -> None:
    page = api.client.get("/docs")
    assert page.status_code == 200 and "/docs/static/swagger-ui-bundle.js" in page.text
    assert "cdn" not in page.text.lower()
    assert api.client.get("/docs/static/swagger-ui-bundle.js").status_code == 200
    redoc = api.client.get("/redoc")
    assert redoc.status_code == 200 and "/docs/static/redoc.standalone.js" in redoc.text
    assert "googleapis" not in redoc.text


def test_the_decide_and_review_answers_are_the_sdks_types_with_their_descriptions(api: Api) -> None:
    from rewardloop import client
    from rewardloop.types.answers import Decided, ReviewQueueItem

    # One definition: the SDK reads back the very classes the service answers with.
    assert client.Decided is Decided and client.ReviewItem is ReviewQueueItem
    paths = api.client.get("/openapi.json").json()["paths"]
    schemas = api.client.get("/openapi.json").json()["components"]["schemas"]
    ok = paths["/v1/decide"]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok == {"$ref": "#/components/schemas/Decided"}
    # field docstrings are the OpenAPI descriptions
    assert schemas["Decided"]["properties"]["probabilities"]["description"] == "the full action distribution"
    assert (
        schemas["ReviewQueueItem"]["properties"]["actions"]["description"] == "the labels a reviewer can pick"
    )
    assert schemas["ReviewQueueItem"]["required"] == [f.name for f in dataclasses.fields(ReviewQueueItem)]
