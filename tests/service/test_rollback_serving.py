"""Issue 13, item 12: after a rollback, what every worker serves follows the champion alias at once."""

from __future__ import annotations

from fastapi.testclient import TestClient

from rewardloop.loop.experiments import Experiments
from rewardloop.service import create_app

from .test_providers import _policy, wired  # noqa: F401  (the fixture)


def _served(http: TestClient, headers: dict[str, str], n: int = 30) -> set[str]:
    return {
        http.post(
            "/v1/decide", json={"policy": "intent", "text": "hi", "unit_id": f"u{i}"}, headers=headers
        ).json()["policy_version"]
        for i in range(n)
    }


def test_a_rollback_stops_the_experiment_and_every_worker_serves_the_alias(wired, tmp_path):  # noqa: F811
    http, store, registry, cfg, client, admin = wired
    registry.register("intent", _policy(tmp_path, 0, "1.0.2"), "classifier", version="1.0.2")
    registry.promote("intent@1.0.1", force=True)
    Experiments(store, registry, cfg.experiments).start("ab", "intent", "1.0.2", ramp=[0.5, 1.0], salt="s")
    with TestClient(create_app(cfg)) as other_worker:  # its own caches (ttl 2 s)
        assert _served(other_worker, client) == {"1.0.1", "1.0.2"}
        back = http.post("/v1/policies/intent/rollback", json={"reason": "errors up"}, headers=admin)
        assert back.status_code == 200, back.text
        assert (back.json()["to_version"], back.json()["stopped"]) == ("1.0.0", ["ab"])
        assert _served(other_worker, client) == {"1.0.0"}
        assert _served(http, client) == {"1.0.0"}
    (exp,) = Experiments(store, registry).list(policy="intent")
    assert (
        exp.status == "stopped" and "rolled back 1.0.1 → 1.0.0: errors up" in exp.verdict["log"][-1]["reason"]
    )
