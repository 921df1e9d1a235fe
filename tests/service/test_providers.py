"""The service wired to the real registry, experiments and classifier policy (RegistryProviders)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

from rewardloop.config import parse_config
from rewardloop.loop.experiments import Experiments
from rewardloop.policies.classifier import ClassifierPolicy
from rewardloop.registry import Registry
from rewardloop.service import create_app
from rewardloop.store import Store, read_decisions
from rewardloop.store.apikeys import create_api_key

LABELS = ["lights_off", "lights_on", "weather"]


def _policy(tmp_path, bias: int, version: str) -> str:
    torch.manual_seed(0)
    policy = ClassifierPolicy(LABELS, name="intent", version=version)
    with torch.no_grad():
        policy.head.weight.zero_()
        policy.head.bias.copy_(torch.tensor([0.0, 0.0, 0.0]))
        policy.head.bias[bias] = 4.0  # always confident in one label
    return str(policy.save(tmp_path / f"v{version}"))


@pytest.fixture
def wired(tmp_path, monkeypatch):
    torch.set_num_threads(1)
    monkeypatch.chdir(tmp_path)
    cfg = parse_config(
        {
            "store": {"url": f"sqlite:///{tmp_path / 'rl.db'}"},
            "policies": [
                {"name": "intent", "kind": "classifier", "labels": LABELS, "options": {"epsilon": 0.3}}
            ],
            "experiments": {"registry_root": str(tmp_path / "registry")},
        }
    )
    store = Store.open(cfg.store.url)
    registry = Registry(store, tmp_path / "registry")
    registry.register("intent", _policy(tmp_path, 1, "1.0.0"), "classifier", version="1.0.0")
    registry.activate("intent@1.0.0")
    registry.register(
        "intent", _policy(tmp_path, 2, "1.0.1"), "classifier", version="1.0.1", parent_version="1.0.0"
    )
    _, admin = create_api_key(store, "ops", "default", [], "admin")
    _, client = create_api_key(store, "app", "default", [], "client")
    app = create_app(cfg)
    with TestClient(app) as http:
        yield (
            http,
            store,
            registry,
            cfg,
            {"Authorization": f"Bearer {client}"},
            {"Authorization": f"Bearer {admin}"},
        )


def test_decide_serves_the_champion_with_a_logged_propensity(wired):
    http, store, _, _, client, _ = wired
    r = http.post("/v1/decide", json={"policy": "intent", "text": "turn on the lights"}, headers=client)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["policy_version"] == "1.0.0"
    (d,) = read_decisions(store).decisions
    # ε-greedy with ε = 0.3 over 3 labels: the best label 0.7 + 0.1, each other 0.1
    assert d.action_dist == pytest.approx((0.1, 0.8, 0.1))
    assert d.pscore == pytest.approx(0.8 if d.action == "lights_on" else 0.1)


def test_experiment_assignment_and_admin_moves(wired):
    http, store, registry, cfg, client, admin = wired
    Experiments(store, registry, cfg.experiments).start("ab", "intent", "1.0.1", ramp=[0.5, 1.0], salt="s")
    versions = {
        http.post(
            "/v1/decide", json={"policy": "intent", "text": "hi", "unit_id": f"u{i}"}, headers=client
        ).json()["policy_version"]
        for i in range(40)
    }
    assert versions == {"1.0.0", "1.0.1"}
    logged = read_decisions(store, experiment="ab")
    assert {d.variant_share for d in logged} == {0.5}
    assert np.mean([d.variant == "challenger" for d in logged]) == pytest.approx(0.5, abs=0.25)

    refused = http.post("/v1/policies/intent/promote", json={"version": "1.0.1"}, headers=admin)
    assert refused.status_code == 409 and "gate" in refused.text
    forced = http.post("/v1/policies/intent/promote", json={"version": "1.0.1", "force": True}, headers=admin)
    assert forced.status_code == 200, forced.text
    assert registry.aliases("intent")["champion"] == "1.0.1"
    back = http.post("/v1/policies/intent/rollback", json={}, headers=admin)
    assert back.status_code == 200, back.text
    assert registry.aliases("intent")["champion"] == "1.0.0"
    listed = http.get("/v1/policies", headers=admin).json()
    assert listed[0]["name"] == "intent" and listed[0]["versions"] == ["1.0.0", "1.0.1"]


def test_unknown_policy_is_404_and_missing_text_422(wired):
    http, *_, client, _ = wired
    assert http.post("/v1/decide", json={"policy": "nope", "text": "x"}, headers=client).status_code == 404
    r = http.post("/v1/decide", json={"policy": "intent"}, headers=client)
    assert r.status_code == 422 and "text" in r.text
