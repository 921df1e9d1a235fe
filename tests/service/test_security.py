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
    assert api.client.get("/v1/policies", headers=api.h("intruder")).json() == []
    assert api.client.get("/v1/experiments", headers=api.h("intruder")).json() == []
    assert api.registry.history == []
    # Its own project's admin can.
    ok = api.client.post("/v1/policies/intent/promote", json=body, headers=api.h("admin"))
    assert ok.status_code == 200


def test_logging_a_decision_under_another_projects_policy_does_not_take_it_over(
    api: Api, tmp_path: Path
) -> None:
    _register_intent(api, tmp_path)
    logged = {
        "policy": "intent",
        "policy_version": "1",
        "kind": "classifier",
        "actions": ["a", "b"],
        "action": "a",
        "action_dist": [0.5, 0.5],
        "pscore": 0.5,
    }
    assert api.client.post("/v1/decisions", json=logged, headers=api.h("intruder")).status_code == 404
    r = api.client.post("/v1/decide", json={"policy": "intent", "text": "x"}, headers=api.h("client"))
    assert r.status_code == 200
    move = api.client.post(
        "/v1/policies/intent/promote", json={"version": "2", "force": True}, headers=api.h("admin")
    )
    assert move.status_code == 200
