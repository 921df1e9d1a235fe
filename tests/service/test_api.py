"""The JSON API on SQLite and PostgreSQL: decide, log, feedback, review, stats, export, policies, keys."""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile

import pyarrow.parquet as pq
import pytest
from sqlalchemy import func, select

from rewardloop.store import read_decisions, read_feedback
from rewardloop.store.tables import ApiKeyRow, DecisionRow, FeedbackRow, ReviewItemRow

from .conftest import Api


def count(api: Api, table: type) -> int:
    with api.store.engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(table)))


def decide(api: Api, text: str, who: str = "client", **extra: object) -> dict:
    r = api.client.post("/v1/decide", json={"policy": "intent", "text": text, **extra}, headers=api.h(who))
    assert r.status_code == 200, r.text
    return r.json()


def test_decide_logs_with_project_and_queues_the_unsure(api: Api) -> None:
    sure = decide(api, "turn on the lights", unit_id="u1")
    unsure = decide(api, "is it dark")
    assert sure["action"] == "lights_on"
    assert sure["probabilities"] == {"lights_on": 0.9, "lights_off": 0.05, "weather": 0.05}
    assert sure["confidence"] == 0.9 and sure["queued_for_review"] is None
    assert unsure["queued_for_review"] == "low_confidence"
    stored = {d.id: d for d in read_decisions(api.store)}
    assert set(stored) == {sure["decision_id"], unsure["decision_id"]}
    assert stored[sure["decision_id"]].metadata["project"] == "acme"
    assert stored[sure["decision_id"]].variant == sure["variant"]
    with api.store.engine.connect() as conn:
        items = conn.execute(select(ReviewItemRow.decision_id, ReviewItemRow.priority)).all()
    # priority = weight(low_confidence) 1.0 + (1 - 0.5)
    assert items == [(unsure["decision_id"], pytest.approx(1.5))]


def test_decide_idempotency_key_logs_once(api: Api) -> None:
    a = decide(api, "is it dark", idempotency_key="req-1")
    b = decide(api, "is it dark", idempotency_key="req-1")
    assert a["decision_id"] == b["decision_id"]
    assert count(api, DecisionRow) == 1 and count(api, ReviewItemRow) == 1


def test_shadow_disagreement_is_queued_first(api: Api) -> None:
    api.registry.shadow = True
    out = decide(api, "turn on the lights")
    assert out["queued_for_review"] == "disagreement"
    assert count(api, DecisionRow) == 2  # the served decision and the shadow challenger's
    r = api.client.get("/v1/review", headers=api.h("reviewer")).json()
    assert r["items"][0]["reason"] == "disagreement"
    assert r["items"][0]["priority"] == pytest.approx(2.0 + 1 - 0.9)


def test_log_external_decision(api: Api) -> None:
    body = {
        "policy": "router",
        "policy_version": "7",
        "kind": "router",
        "actions": ["rag", "sql"],
        "action": "sql",
        "action_dist": [0.3, 0.7],
        "pscore": 0.7,
        "latency_ms": 12.5,
        "shadow_action": "rag",
    }
    r = api.client.post("/v1/decisions", json=body, headers=api.h("client"))
    assert r.status_code == 201, r.text
    assert r.json()["queued_for_review"] == "disagreement"
    (d,) = read_decisions(api.store)
    assert (d.id, d.action, d.pscore, d.metadata) == (
        r.json()["decision_id"],
        "sql",
        0.7,
        {"project": "acme"},
    )


def test_log_external_generator_answer(api: Api) -> None:
    """An answer generated outside the service is logged as a generator decision, propensity and all."""
    answer, other = "We open at 9.", "<other answers>"
    meta = {"sequence_logp": -1.2, "passages": ["The shop opens at 9."]}
    body = {"policy": "helper", "policy_version": "3", "kind": "generator", "text": "When do you open?"}
    body |= {"actions": [answer, other], "action": answer, "action_dist": [0.25, 0.75], "pscore": 0.25}
    r = api.client.post("/v1/decisions", json={**body, "metadata": meta}, headers=api.h("client"))
    assert r.status_code == 201, r.text
    (d,) = read_decisions(api.store)
    assert (d.kind, d.action, d.pscore, d.metadata["passages"]) == (
        "generator",
        answer,
        0.25,
        meta["passages"],
    )


FEEDBACK_KINDS = [
    {"kind": "rating", "value": 4, "scale": [1, 5], "rater_id": "ann"},
    {"kind": "correction", "label": "weather"},
    {"kind": "preference", "preferred": "lights_on", "rejected": "weather"},
    {"kind": "multilevel", "scores": {"retrieval": 0.8, "reasoning": 0.6}, "scale": [0, 1], "value": 0.7},
    {"kind": "implicit", "value": 1, "source": "implicit"},
]


@pytest.mark.parametrize("body", FEEDBACK_KINDS, ids=[b["kind"] for b in FEEDBACK_KINDS])
def test_feedback_every_kind_is_stored(api: Api, body: dict) -> None:
    d = decide(api, "turn on the lights")
    r = api.client.post(
        "/v1/feedback", json={"decision_id": d["decision_id"], **body}, headers=api.h("client")
    )
    assert r.status_code == 201, r.text
    (f,) = read_feedback(api.store)
    assert (f.id, f.decision_id, f.kind) == (r.json()["id"], d["decision_id"], body["kind"])


def test_feedback_with_a_client_id_is_stored_once(api: Api) -> None:
    d = decide(api, "turn on the lights")
    body = {"decision_id": d["decision_id"], "kind": "implicit", "value": 1, "id": "fb-1"}
    for _ in range(2):
        assert api.client.post("/v1/feedback", json=body, headers=api.h("client")).status_code == 201
    assert count(api, FeedbackRow) == 1


# Bad requests: (who, method, path, body or raw text, status, words the message must contain)
BAD = [
    ("client", "post", "/v1/feedback", "{not json", 400, "malformed JSON"),
    (
        "client",
        "post",
        "/v1/feedback",
        {"decision_id": "nope", "kind": "implicit", "value": 1},
        404,
        "decision_id",
    ),
    ("client", "post", "/v1/feedback", {"decision_id": "D", "kind": "thumbs"}, 422, "body.kind"),
    (
        "client",
        "post",
        "/v1/feedback",
        {"decision_id": "D", "kind": "rating", "value": 9, "scale": [1, 5]},
        422,
        "body.value",
    ),
    ("client", "post", "/v1/feedback", {"decision_id": "D", "kind": "rating", "value": 3}, 422, "body.scale"),
    (
        "client",
        "post",
        "/v1/feedback",
        {"decision_id": "D", "kind": "implicit", "value": 1, "colour": "red"},
        422,
        "body.colour",
    ),
    (
        "client",
        "post",
        "/v1/feedback",
        {"decision_id": "D", "kind": "implicit", "value": 1, "authority": 3},
        422,
        "body.authority",
    ),
    (
        "intruder",
        "post",
        "/v1/feedback",
        {"decision_id": "D", "kind": "implicit", "value": 1},
        404,
        "no decision",
    ),
    (
        "reviewer",
        "post",
        "/v1/feedback",
        {"decision_id": "D", "kind": "implicit", "value": 1},
        403,
        "lacks the 'feedback' scope",
    ),
    (
        None,
        "post",
        "/v1/feedback",
        {"decision_id": "D", "kind": "implicit", "value": 1},
        401,
        "missing API key",
    ),
    ("bogus", "post", "/v1/feedback", {"decision_id": "D", "kind": "implicit", "value": 1}, 401, "invalid"),
    (
        "client",
        "post",
        "/v1/feedback",
        {"decision_id": "D", "kind": "implicit", "value": 1, "comment": "x" * 30_000},
        413,
        "too large",
    ),
    (
        "client",
        "post",
        "/v1/decisions",
        {
            "policy": "p",
            "policy_version": "1",
            "kind": "router",
            "actions": ["a", "b"],
            "action": "a",
            "action_dist": [0.5, 0.6],
            "pscore": 0.5,
        },
        422,
        "body.action_dist",
    ),
    (
        "client",
        "post",
        "/v1/decisions",
        {
            "policy": "p",
            "policy_version": "1",
            "kind": "router",
            "actions": ["a", "b"],
            "action": "a",
            "action_dist": [0.5, 0.5],
            "pscore": 0.5,
            "metadata": {"project": "x"},
        },
        422,
        "metadata.project",
    ),
    ("client", "post", "/v1/decide", {"policy": "nope", "text": "hi"}, 404, "no policy 'nope'"),
    # Another project re-using this project's decision id: refused, and the decision is not re-queued.
    (
        "intruder",
        "post",
        "/v1/decisions",
        {
            "policy": "p2",
            "policy_version": "1",
            "kind": "router",
            "actions": ["a", "b"],
            "action": "a",
            "action_dist": [0.5, 0.5],
            "pscore": 0.5,
            "id": "D",
        },
        409,
        "already used",
    ),
    ("client", "post", "/v1/decide", {"policy": ""}, 422, "body.policy"),
    ("client", "post", "/v1/policies/intent/promote", {"version": "2"}, 403, "lacks the 'admin' scope"),
    ("client", "get", "/v1/export", None, 403, "lacks the 'export' scope"),
    ("client", "get", "/v1/keys", None, 403, "lacks the 'admin' scope"),
    ("intruder", "post", "/v1/policies/intent/promote", {"version": "2"}, 404, "no policy 'intent'"),
    ("reviewer", "post", "/v1/review/nope/resolve", {"label": "weather"}, 404, "no review item"),
    ("admin", "post", "/v1/policies/intent/promote", {"version": "9"}, 404, "no version '9'"),
    ("client", "get", "/v1/stats", None, 403, "lacks the 'read' scope"),
]


def test_bad_requests_get_4xx_with_a_clear_message_and_change_nothing(api: Api) -> None:
    # One test walks the whole table: each case is independent (nothing it sends is stored).
    d = decide(api, "turn on the lights")
    decide(api, "is it dark")
    before = [count(api, t) for t in (DecisionRow, FeedbackRow, ReviewItemRow, ApiKeyRow)]
    aliases = dict(api.registry.aliases)
    for who, method, path, body, status, words in BAD:
        case = f"{method.upper()} {path} as {who} with {str(body)[:80]!r}"
        headers = {"Authorization": f"Bearer {api.keys.get(who, 'rl_bogus')}"} if who else {}
        if isinstance(body, dict):
            body = json.loads(json.dumps(body).replace('"D"', json.dumps(d["decision_id"])))
            r = api.client.request(method, path, json=body, headers=headers)
        elif isinstance(body, str):
            r = api.client.request(
                method, path, content=body, headers={**headers, "content-type": "application/json"}
            )
        else:
            r = api.client.request(method, path, headers=headers)
        assert r.status_code == status, (case, r.text)
        assert words in r.json()["detail"], (case, r.json())
        assert [count(api, t) for t in (DecisionRow, FeedbackRow, ReviewItemRow, ApiKeyRow)] == before, case
        assert api.registry.aliases == aliases, case


def test_chunked_oversized_body_is_refused(api: Api) -> None:
    d = decide(api, "turn on the lights")
    payload = json.dumps(
        {"decision_id": d["decision_id"], "kind": "implicit", "value": 1, "comment": "y" * 30_000}
    )

    def chunks():
        data = payload.encode()
        for i in range(0, len(data), 4096):
            yield data[i : i + 4096]

    r = api.client.post(
        "/v1/feedback", content=chunks(), headers={**api.h("client"), "content-type": "application/json"}
    )
    assert r.status_code == 413 and "20000 bytes" in r.json()["detail"]
    assert count(api, FeedbackRow) == 0


def test_review_claim_resolve_writes_feedback_with_reviewer_authority(api: Api) -> None:
    api.client.app.state.rl.config.review.reviewer_authority = 0.9
    d = decide(api, "is it dark")
    queue = api.client.get("/v1/review", headers=api.h("reviewer")).json()
    (item,) = queue["items"]
    assert (item["text"], item["action"], item["confidence"]) == ("is it dark", "lights_on", 0.5)
    assert item["actions"] == ["lights_on", "lights_off", "weather"]
    assert queue["counts"] == {"open": 1, "claimed": 0, "resolved": 0}
    claimed = api.client.post(f"/v1/review/{item['id']}/claim", headers=api.h("reviewer")).json()
    assert (claimed["status"], claimed["claimed_by"]) == ("claimed", api.key_id("reviewer"))
    # Someone else cannot take it over.
    other = api.client.post(
        f"/v1/review/{item['id']}/resolve", json={"label": "weather"}, headers=api.h("admin")
    )
    assert other.status_code == 409 and f"claimed by {api.key_id('reviewer')!r}" in other.json()["detail"]
    bad = api.client.post(
        f"/v1/review/{item['id']}/resolve", json={"label": "pizza"}, headers=api.h("reviewer")
    )
    assert bad.status_code == 422 and bad.json()["field"] == "label"
    assert count(api, FeedbackRow) == 0
    done = api.client.post(
        f"/v1/review/{item['id']}/resolve", json={"label": "lights_off"}, headers=api.h("reviewer")
    ).json()
    assert done["status"] == "resolved"
    (f,) = read_feedback(api.store)
    assert (f.id, f.decision_id, f.kind, f.label, f.rater_id, f.authority, f.source) == (
        done["feedback_id"],
        d["decision_id"],
        "correction",
        "lights_off",
        api.key_id("reviewer"),
        0.9,
        "human",
    )
    again = api.client.post(
        f"/v1/review/{item['id']}/resolve", json={"label": "weather"}, headers=api.h("reviewer")
    )
    assert again.status_code == 409 and count(api, FeedbackRow) == 1
    stats = api.client.get("/v1/stats", headers=api.h("admin")).json()
    assert stats["review"] == {"open": 0, "claimed": 0, "resolved": 1}


def test_projects_are_isolated(api: Api) -> None:
    decide(api, "is it dark")
    mine = api.client.get("/v1/stats", headers=api.h("admin")).json()
    theirs = api.client.get("/v1/stats", headers=api.h("intruder")).json()
    assert mine["decisions"] == 1 and theirs["decisions"] == 0
    assert api.client.get("/v1/review", headers=api.h("intruder")).json()["items"] == []
    item = api.client.get("/v1/review", headers=api.h("reviewer")).json()["items"][0]
    r = api.client.post(f"/v1/review/{item['id']}/claim", headers=api.h("intruder"))
    assert r.status_code == 404
    assert api.client.get("/v1/export", headers=api.h("intruder")).text == ""
    assert api.client.get("/v1/policies", headers=api.h("intruder")).json()["items"] == []
    assert api.client.get("/v1/stats?policy=intent", headers=api.h("intruder")).status_code == 404
    # Another project cannot log decisions under this project's policy either.
    r = api.client.post("/v1/decide", json={"policy": "intent", "text": "x"}, headers=api.h("intruder"))
    assert r.status_code == 404


def test_stats_counts_and_coverage(api: Api) -> None:
    a = decide(api, "turn on the lights")
    decide(api, "lights please")
    api.client.post(
        "/v1/feedback",
        json={"decision_id": a["decision_id"], "kind": "correction", "label": "lights_on"},
        headers=api.h("client"),
    )
    s = api.client.get("/v1/stats", headers=api.h("admin")).json()
    assert s["decisions"] == 2 and s["coverage"] == 0.5
    assert s["feedback_by_kind"] == {"correction": 1} and s["feedback_by_source"] == {"human": 1}


def test_export_jsonl_csv_parquet_agree(api: Api) -> None:
    ids = []
    for text, label in (("turn on the lights", "lights_on"), ("is it dark", "weather")):
        d = decide(api, text)
        r = api.client.post(
            "/v1/feedback",
            json={"decision_id": d["decision_id"], "kind": "correction", "label": label},
            headers=api.h("client"),
        )
        ids.append(r.json()["id"])
    jl = [json.loads(line) for line in api.client.get("/v1/export", headers=api.h("admin")).text.splitlines()]
    rows = list(
        csv.DictReader(io.StringIO(api.client.get("/v1/export?format=csv", headers=api.h("admin")).text))
    )
    pq_bytes = api.client.get("/v1/export?format=parquet", headers=api.h("admin")).content
    table = pq.read_table(io.BytesIO(pq_bytes)).to_pylist()
    assert sorted(r["feedback_id"] for r in jl) == sorted(ids)
    assert (
        [r["feedback_id"] for r in rows]
        == [r["feedback_id"] for r in jl]
        == [r["feedback_id"] for r in table]
    )
    assert [r["label"] for r in jl] == ["lights_on", "weather"]

    assert [r["action"] for r in table] == ["lights_on", "lights_on"]
    assert api.client.get("/v1/export?format=xml", headers=api.h("admin")).status_code == 422


def test_export_refuses_a_window_that_ends_before_it_starts(api: Api) -> None:
    answer = api.client.get(
        "/v1/export?since=2026-03-02T00:00:00Z&until=2026-03-01T00:00:00Z", headers=api.h("admin")
    )
    assert answer.status_code == 422
    assert answer.json()["detail"] == (
        "query.until: 2026-03-01 00:00:00+00:00 is before since (2026-03-02 00:00:00+00:00)"
    )


def test_parquet_export_is_written_a_row_group_at_a_time(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    """Regression (issue 13 item 10): the HTTP Parquet export built the whole table in memory; it now
    writes row groups of ``PARQUET_GROUP_ROWS`` into a temporary file that is deleted once sent."""
    from rewardloop.store import files

    monkeypatch.setattr(files, "PARQUET_GROUP_ROWS", 2)
    for i in range(5):
        d = decide(api, f"turn on the lights {i}")
        api.client.post(
            "/v1/feedback",
            json={"decision_id": d["decision_id"], "kind": "correction", "label": "lights_on"},
            headers=api.h("client"),
        )
    made: list[str] = []
    real_mkstemp = tempfile.mkstemp
    monkeypatch.setattr(
        tempfile,
        "mkstemp",
        lambda **kw: made.append(real_mkstemp(**kw)[1]) or (os.open(made[-1], os.O_RDWR), made[-1]),
    )
    answer = api.client.get("/v1/export?format=parquet", headers=api.h("admin"))
    assert answer.status_code == 200
    parquet = pq.ParquetFile(io.BytesIO(answer.content))
    assert parquet.metadata.num_rows == 5 and parquet.num_row_groups == 3  # 2 + 2 + 1
    assert made and not any(os.path.exists(p) for p in made)  # the temporary file is gone


def test_leaderboard_ranks_router_arms_by_feedback(api: Api) -> None:
    def log(action: str, dist: list[float]) -> str:
        body = {
            "policy": "r",
            "policy_version": "1",
            "kind": "router",
            "actions": ["rag", "sql"],
            "action": action,
            "action_dist": dist,
            "pscore": dist[["rag", "sql"].index(action)],
            "latency_ms": 10.0,
        }
        return api.client.post("/v1/decisions", json=body, headers=api.h("client")).json()["decision_id"]

    for action, value in (("rag", 1), ("rag", 0), ("sql", 1), ("sql", 1)):
        did = log(action, [0.5, 0.5])
        api.client.post(
            "/v1/feedback",
            json={"decision_id": did, "kind": "implicit", "value": value},
            headers=api.h("client"),
        )
    rows = api.client.get("/v1/leaderboard", headers=api.h("admin")).json()["rows"]
    assert [(r["action"], r["decisions"], r["mean_score"]) for r in rows] == [
        ("sql", 2, 1.0),
        ("rag", 2, 0.5),
    ]


def test_policies_promote_rollback_experiments(api: Api) -> None:
    decide(api, "turn on the lights", unit_id="a")
    assert (
        api.client.get("/v1/policies", headers=api.h("admin")).json()["items"][0]["aliases"]["champion"]
        == "1"
    )
    api.registry.gate_passes = False
    refused = api.client.post("/v1/policies/intent/promote", json={"version": "3"}, headers=api.h("admin"))
    assert refused.status_code == 409 and "gate failed" in refused.json()["detail"]
    forced = api.client.post(
        "/v1/policies/intent/promote", json={"version": "3", "force": True}, headers=api.h("admin")
    ).json()
    assert (forced["from_version"], forced["to_version"], forced["forced"]) == ("1", "3", True)
    back = api.client.post("/v1/policies/intent/rollback", json={}, headers=api.h("admin")).json()
    assert (back["from_version"], back["to_version"]) == ("3", "1")
    admin = f"key:{api.key_id('admin')} (admin)"
    assert api.registry.history == [f"{admin}:champion:1->3", f"{admin}:champion:3->1 rollback"]
    (exp,) = api.client.get("/v1/experiments", headers=api.h("admin")).json()["items"]
    assert exp["name"] == "intent-ab" and sum(v["decisions"] for v in exp["observed"].values()) == 1


def test_keys_create_list_revoke(api: Api) -> None:
    r = api.client.post("/v1/keys", json={"name": "app", "role": "client"}, headers=api.h("admin"))
    assert r.status_code == 201
    new = r.json()
    assert (
        new["project"] == "acme"
        and new["scopes"] == ["decide", "feedback"]
        and new["secret"].startswith("rl_")
    )
    with api.store.engine.connect() as conn:
        stored = conn.scalar(select(ApiKeyRow.key_hash).where(ApiKeyRow.id == new["id"]))
    assert new["secret"] not in stored and len(stored) == 64
    hdr = {"Authorization": f"Bearer {new['secret']}"}
    assert (
        api.client.post("/v1/decide", json={"policy": "intent", "text": "x"}, headers=hdr).status_code == 200
    )
    assert api.client.delete(f"/v1/keys/{new['id']}", headers=api.h("admin")).status_code == 200
    assert (
        api.client.post("/v1/decide", json={"policy": "intent", "text": "x"}, headers=hdr).status_code == 401
    )
    # The other project's admin cannot see or revoke this project's keys.
    assert all(
        k["project"] == "other" for k in api.client.get("/v1/keys", headers=api.h("intruder")).json()["items"]
    )
    admin_id = next(
        k["id"]
        for k in api.client.get("/v1/keys", headers=api.h("admin")).json()["items"]
        if k["name"] == "admin"
    )
    assert api.client.delete(f"/v1/keys/{admin_id}", headers=api.h("intruder")).status_code == 404
    bad = api.client.post("/v1/keys", json={"name": "x", "scopes": ["fly"]}, headers=api.h("admin"))
    assert bad.status_code == 422 and "unknown scope 'fly'" in bad.json()["detail"]


def test_health_metrics_openapi(api: Api) -> None:
    assert api.client.get("/healthz").json() == {"status": "ok", "store": api.store.dialect}
    d = decide(api, "is it dark")
    fb = {"decision_id": d["decision_id"], "kind": "implicit", "value": 1}
    assert api.client.post("/v1/feedback", json=fb, headers=api.h("client")).status_code == 201
    text = api.client.get("/metrics").text
    assert 'rewardloop_http_requests_total{method="POST",route="/v1/feedback",status="201"} 1.0' in text
    assert 'rewardloop_feedback_total{kind="implicit"} 1.0' in text
    assert 'rewardloop_decisions_total{source="decide",variant="champion"} 1.0' in text
    assert "intent" not in text  # no project's policy names without a key (issue 13, item 4)
    assert 'rewardloop_review_enqueued_total{reason="low_confidence"} 1.0' in text
    assert 'route="/v1/decide"' in text
    spec = api.client.get("/openapi.json").json()
    assert {"/v1/decide", "/v1/feedback", "/v1/review/{item_id}/resolve", "/v1/export"} <= set(spec["paths"])
    assert "FeedbackCreateRequest" in spec["components"]["schemas"]
    body = spec["paths"]["/v1/feedback"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/FeedbackCreateRequest"}


def test_login_redirects_only_within_the_site(api: Api) -> None:
    token = api.csrf()
    r = api.client.post(
        "/login",
        data={"key": api.keys["admin"], "next": "//evil.example/x", "csrf": token},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == "/"
    bad = api.client.post("/login", data={"key": "rl_nope", "csrf": token}, follow_redirects=False)
    assert bad.status_code == 401
    api.client.cookies.clear()
    assert api.client.get("/", follow_redirects=False).headers["location"] == "/login?next=/"
    api.client.cookies.set("rl_key", api.keys["admin"])
    page = api.client.get("/")
    assert page.status_code == 200 and "calibration" in page.text
    api.client.cookies.set("rl_key", api.keys["client"])
    denied = api.client.get("/review")
    assert denied.status_code == 403 and "lacks the &#39;review&#39; scope" in denied.text
