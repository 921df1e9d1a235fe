"""Security regressions of issue 13 at the HTTP layer (the browser ones are in test_browser.py)."""

from __future__ import annotations

from pathlib import Path

from rewardloop.registry import Registry

from .conftest import Api


def _register_intent(api: Api, tmp_path: Path, project: str = "acme") -> None:
    art = tmp_path / "art"
    art.mkdir(exist_ok=True)
    (art / "w.json").write_text("{}")
    Registry(api.store, tmp_path / "registry", project=project).register("intent", art, "classifier", "1.0.0")


def test_another_projects_admin_cannot_touch_a_registered_policy_before_any_decision(
    api: Api, tmp_path: Path
) -> None:
    _register_intent(api, tmp_path)
    body = {"version": "3", "force": True}
    assert (
        api.client.post("/v1/policies/intent/promote", json=body, headers=api.h("intruder")).status_code
        == 404
    )
    assert (
        api.client.post("/v1/policies/intent/rollback", json={}, headers=api.h("intruder")).status_code == 404
    )
    assert api.client.get("/v1/policies", headers=api.h("intruder")).json()["items"] == []
    assert api.client.get("/v1/experiments", headers=api.h("intruder")).json()["items"] == []
    assert api.registry.history == []
    # Its own project's admin can.
    ok = api.client.post("/v1/policies/intent/promote", json=body, headers=api.h("admin"))
    assert ok.status_code == 200


def test_logging_a_decision_under_another_projects_policy_does_not_take_it_over(
    api: Api, tmp_path: Path
) -> None:
    _register_intent(api, tmp_path)
    fields = ("policy", "policy_version", "kind", "actions", "action", "action_dist", "pscore")
    logged = dict(zip(fields, ("intent", "1", "classifier", ["a", "b"], "a", [0.5, 0.5], 0.5), strict=True))
    assert api.client.post("/v1/decisions", json=logged, headers=api.h("intruder")).status_code == 404
    r = api.client.post("/v1/decide", json={"policy": "intent", "text": "x"}, headers=api.h("client"))
    assert r.status_code == 200
    move = api.client.post(
        "/v1/policies/intent/promote", json={"version": "2", "force": True}, headers=api.h("admin")
    )
    assert move.status_code == 200


# -- item 1: headers, CSRF, JSON in script elements -----------------------------------------------


def test_every_answer_carries_the_browser_hardening_headers(api: Api) -> None:
    for path in ("/login", "/healthz", "/static/dashboard.js"):
        r = api.client.get(path)
        csp = r.headers["content-security-policy"]
        script_src = next(p for p in csp.split(";") if p.strip().startswith("script-src"))
        assert script_src.strip() == "script-src 'self'"  # no 'unsafe-inline', no 'unsafe-eval'
        assert "frame-ancestors 'none'" in csp
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers["x-content-type-options"] == "nosniff"
    page = api.client.get("/login").text
    assert "<script>" not in page and "onerror" not in page


def test_a_cross_site_login_post_is_refused_and_sets_no_session(api: Api) -> None:
    """A forged POST /login (no CSRF cookie: SameSite=Strict keeps the browser from sending it) would
    replace the victim's session with the attacker's key."""
    r = api.client.post("/login", data={"key": api.keys["intruder"]}, follow_redirects=False)
    assert r.status_code == 403 and "CSRF" in r.text
    assert "rl_key" not in r.cookies
    token = api.csrf()
    wrong = api.client.post("/login", data={"key": api.keys["intruder"], "csrf": token + "x"})
    assert wrong.status_code == 403 and "rl_key" not in api.client.cookies


def test_review_and_logout_forms_need_the_csrf_token(api: Api) -> None:
    from rewardloop.store import read_feedback

    r = api.client.post(
        "/v1/decide", json={"policy": "intent", "text": "is it dark"}, headers=api.h("client")
    )
    assert r.status_code == 200
    (item,) = api.client.get("/v1/review", headers=api.h("reviewer")).json()["items"]
    token = api.csrf()
    assert api.client.post("/login", data={"key": api.keys["reviewer"], "csrf": token}).status_code == 200
    answer = {"item": item["id"], f"label-{item['id']}": "weather"}
    forged = api.client.post("/review/bulk", data=answer, follow_redirects=False)
    assert forged.status_code == 403 and read_feedback(api.store) == []
    assert api.client.post("/logout", follow_redirects=False).status_code == 403
    ok = api.client.post("/review/bulk", data={**answer, "csrf": token}, follow_redirects=False)
    assert ok.status_code == 303 and "done=1" in ok.headers["location"]
    assert [f.label for f in read_feedback(api.store)] == ["weather"]
    out = api.client.post("/logout", data={"csrf": token}, follow_redirects=False)
    assert out.status_code == 303


def test_json_for_script_cannot_be_closed_by_a_stored_string() -> None:
    from rewardloop.service.dashboard import json_for_script

    payload = "</script><script>window.__pwned=1</script><!-- & \u2028\u2029"
    text = str(json_for_script({"policy": payload}))
    for raw in ("<", ">", "&", "\u2028", "\u2029"):
        assert raw not in text
    import json

    assert json.loads(text) == {"policy": payload}


# -- item 4: reviewer identity, /metrics --------------------------------------------------------------


def test_two_reviewer_keys_with_the_same_name_are_told_apart(api: Api) -> None:
    from rewardloop.store import read_feedback
    from rewardloop.store.apikeys import create_api_key

    ids, secrets = [], []
    for _ in range(2):
        k, secret = create_api_key(api.store, "sam", "acme", role="reviewer")
        ids.append(k.id)
        secrets.append(secret)
    for text in ("is it dark", "is it dark"):
        api.client.post("/v1/decide", json={"policy": "intent", "text": text}, headers=api.h("client"))
    items = api.client.get("/v1/review", headers=api.h("reviewer")).json()["items"]
    for item, secret in zip(items, secrets, strict=True):
        hdr = {"Authorization": f"Bearer {secret}"}
        claimed = api.client.post(f"/v1/review/{item['id']}/claim", headers=hdr).json()
        assert claimed["claimed_by"] in ids
        api.client.post(f"/v1/review/{item['id']}/resolve", json={"label": "weather"}, headers=hdr)
    assert sorted(f.rater_id for f in read_feedback(api.store)) == sorted(ids)


def test_metrics_shows_no_policy_names(api: Api) -> None:
    r = api.client.post("/v1/decide", json={"policy": "intent", "text": "x"}, headers=api.h("client"))
    assert r.status_code == 200
    text = api.client.get("/metrics").text
    assert "rewardloop_decisions_total" in text and "intent" not in text
