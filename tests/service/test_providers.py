"""The service wired to the real registry, experiments and classifier policy (RegistryProviders)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from tests.service._project import sqlite_project

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
    cfg = sqlite_project(
        tmp_path,
        monkeypatch,
        [{"name": "intent", "kind": "classifier", "labels": LABELS, "options": {"epsilon": 0.3}}],
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
    listed = http.get("/v1/policies", headers=admin).json()["items"]
    assert listed[0]["name"] == "intent" and listed[0]["versions"] == ["1.0.0", "1.0.1"]


def test_unknown_policy_is_404_and_missing_text_422(wired):
    http, *_, client, _ = wired
    assert http.post("/v1/decide", json={"policy": "nope", "text": "x"}, headers=client).status_code == 404
    r = http.post("/v1/decide", json={"policy": "intent"}, headers=client)
    assert r.status_code == 422 and "text" in r.text


# ------------------------------------------------------------------ one serving path, every kind


def _gated(tmp_path, version: str) -> str:
    """A classifier unsure of everything (p = 0.6, 0.2, 0.2) behind a gate that abstains below 0.7."""
    from tests.policies.test_contract import threshold_gate

    from rewardloop.policies.abstain import GatedClassifier

    policy = ClassifierPolicy(LABELS, name="intent", version=version)
    with torch.no_grad():
        policy.head.weight.zero_()
        policy.head.bias.copy_(torch.log(torch.tensor([0.6, 0.2, 0.2])))
    return str(GatedClassifier(policy, threshold_gate(0.7)).save(tmp_path / f"gated{version}"))


def test_abstain_gate_is_served_and_its_abstentions_queued_for_review(wired, tmp_path):
    from rewardloop.store.review import read_review_queue

    http, store, registry, _, client, _ = wired
    registry.register("gated", _gated(tmp_path, "1.0.0"), "classifier", version="1.0.0")
    registry.activate("gated@1.0.0")
    r = http.post("/v1/decide", json={"policy": "gated", "text": "lights?"}, headers=client)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["queued_for_review"] == "abstain"
    (d,) = read_decisions(store, policy="gated").decisions
    assert d.metadata["abstain_gate"] == "abstain"
    # ε-greedy (the default ε = 0.1) over 3 labels: 0.9 + 0.1/3 on the best, 0.1/3 on the others
    assert d.action_dist == pytest.approx((0.9 + 0.1 / 3, 0.1 / 3, 0.1 / 3))
    assert d.pscore == pytest.approx(d.action_dist[d.actions.index(d.action)])
    (entry,) = read_review_queue(store, "default")
    assert entry.item.decision_id == d.id and entry.item.reason == "abstain"


def test_reranker_draws_are_seeded_per_decision(wired, tmp_path):
    """The reranker used to draw with an unseeded generator; now a decision's draw follows its id."""
    from tests.rewards.test_embedding_reward_model import _synthetic

    from rewardloop.loop.serving import request_rng
    from rewardloop.policies.contract import DecisionContext
    from rewardloop.policies.reranker import Reranker
    from rewardloop.rewards import EmbeddingRewardModel

    http, store, registry, _, client, _ = wired
    prompts, answers, ratings = _synthetic(60)
    path = EmbeddingRewardModel(test_size=0).fit(prompts, answers, ratings).save(tmp_path / "rm")
    registry.register("rr", path, "reranker", version="1.0.0")
    registry.activate("rr@1.0.0")
    cands = ["awful sad day", "lovely happy day", "fine day"]
    r = http.post(
        "/v1/decide", json={"policy": "rr", "text": "How was it?", "candidates": cands}, headers=client
    )
    assert r.status_code == 200, r.text
    (d,) = read_decisions(store, policy="rr").decisions
    replay = Reranker.load(path).decide(
        DecisionContext(text="How was it?", candidates=tuple(cands)), request_rng(d.id)
    )
    assert (replay.action, replay.ranking) == (d.action, d.ranking)
    assert replay.action_dist == pytest.approx(d.action_dist) and d.ranking[0] == d.action


def test_exploration_options_are_checked_where_they_are_read(wired):
    from rewardloop.loop.serving import exploration_for
    from rewardloop.policies.contract import Exploration, PolicyInputError

    assert exploration_for("classifier", {"epsilon": 0.3}) == Exploration("epsilon", 0.3)
    assert exploration_for("reranker", {"temperature": 0.5}) == Exploration("sample", temperature=0.5)
    assert exploration_for("router", {}) is None
    with pytest.raises(PolicyInputError, match=r"options\.epsilon: a router explores by its own algorithm"):
        exploration_for("router", {"epsilon": 0.2})


# ------------------------------------------------------------- readiness and concurrent first requests


def test_readyz_answers_once_the_champions_are_loaded(wired):
    import time

    http, *_ = wired
    assert http.get("/healthz").status_code == 200
    for _ in range(200):
        r = http.get("/readyz")
        if r.status_code == 200:
            break
        time.sleep(0.05)
    assert r.status_code == 200, r.text
    assert r.json() == {"status": "ready", "loaded": ["intent@1.0.0"], "failed": []}


class _SlowWarm:
    """A provider whose warm-up waits for the test: /readyz must say 503 meanwhile, /healthz 200."""

    def __init__(self, release, result):
        self.release = release
        self.result = result

    def decide(self, request):
        raise AssertionError("not called")

    def warm(self):
        assert self.release.wait(10)
        return self.result


@pytest.mark.parametrize(
    ("result", "status", "body"),
    [
        ((["p@1"], []), 200, {"status": "ready", "loaded": ["p@1"], "failed": []}),
        (
            ([], ["p@2: OSError: gone"]),
            503,
            {"status": "failed", "loaded": [], "failed": ["p@2: OSError: gone"]},
        ),
    ],
)
def test_readyz_is_503_while_warming_and_names_what_failed(tmp_path, result, status, body):
    import threading
    import time

    from rewardloop.service.providers import Unwired

    release = threading.Event()
    cfg = parse_config({"store": {"url": f"sqlite:///{tmp_path / 'rl.db'}"}})
    app = create_app(cfg, provider=_SlowWarm(release, result), admin=Unwired())
    with TestClient(app) as http:
        warming = http.get("/readyz")
        assert warming.status_code == 503 and warming.json()["status"] == "warming"
        assert http.get("/healthz").status_code == 200
        release.set()
        for _ in range(100):
            r = http.get("/readyz")
            if r.json()["status"] != "warming":
                break
            time.sleep(0.05)
        assert (r.status_code, r.json()) == (status, body)


def test_concurrent_first_decides_on_a_fresh_worker_all_succeed(wired, tmp_path):
    """Issue 13 item 17: the first concurrent /v1/decide requests of a fresh worker got 500s."""
    from concurrent.futures import ThreadPoolExecutor

    http, store, registry, _, client, _ = wired
    registry.register("intent2", _policy(tmp_path, 0, "2.0.0"), "classifier", version="2.0.0")
    registry.activate("intent2@2.0.0")  # registered after start-up: not warmed, loaded on first use

    def call(i):
        body = {"policy": "intent2", "text": f"request {i}"}
        return http.post("/v1/decide", json=body, headers=client).status_code

    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(call, range(16)))
    assert codes == [200] * 16
    assert len(read_decisions(store, policy="intent2")) == 16


def test_the_shared_encoder_is_built_once_under_concurrent_first_calls(monkeypatch):
    """The lazy loader's second line of defence: concurrent first callers wait for one build."""
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    from rewardloop.encoders import minilm

    built = []

    class SlowEncoder:
        def __init__(self, backend: str = "torch"):
            time.sleep(0.2)  # an import of transformers and a weights load
            built.append(threading.get_ident())

    monkeypatch.setattr(minilm, "MiniLMEncoder", SlowEncoder)
    monkeypatch.setattr(minilm, "_DEFAULT", [])
    with ThreadPoolExecutor(8) as pool:
        encoders = list(pool.map(lambda _: minilm.default_encoder(), range(8)))
    assert len(built) == 1 and all(e is encoders[0] for e in encoders)
