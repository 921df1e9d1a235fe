"""A generator as a router's arm, through the one serving path (RegistryProviders → ServingPath): the
router chooses, the arm's generator answers, both decisions are logged and name each other; the chat
endpoint serves a router over generators. Tiny random generators of the SmolLM2 architecture."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient

pytest.importorskip("gguf")

from tests.service._project import sqlite_project

from rewardloop.config import parse_config
from rewardloop.learners.bandits import BetaThompson
from rewardloop.loop.experiments import Experiments
from rewardloop.loop.quantize import register_quantized
from rewardloop.loop.serving import ServingPath
from rewardloop.policies.contract import DecisionContext
from rewardloop.policies.generator import GeneratorPolicy
from rewardloop.registry import Registry
from rewardloop.service import create_app
from rewardloop.store import Store, read_decisions
from rewardloop.store.apikeys import create_api_key
from rewardloop.types import Decision, answer_text

ARMS = ["small", "small-int8", "human"]
#: A prior that makes one arm win every Thompson draw (10,000 pseudo-observations each).
SURE = 10_000


def _router(tmp_path, favourite: str, version: str) -> str:
    priors = {arm: (0.999 if arm == favourite else 0.001, SURE) for arm in ARMS}
    return str(BetaThompson(arms=ARMS, priors=priors, random_state=0).save(tmp_path / f"router-{version}"))


@pytest.fixture
def wired(tmp_path, monkeypatch):
    arms = {"small": "helper", "small-int8": "helper@int8"}
    cfg = sqlite_project(
        tmp_path,
        monkeypatch,
        [
            {"name": "agents", "kind": "router", "labels": ARMS, "arm_policies": arms},
            {"name": "helper", "kind": "generator"},
        ],
    )
    store = Store.open(cfg.store.url)
    registry = Registry(store, tmp_path / "registry")
    tiny = GeneratorPolicy.random(seed=2, name="helper", version="1.0.0", max_new_tokens=4)
    registry.register("helper", tiny.save(tmp_path / "helper"), "generator", version="1.0.0")
    registry.activate("helper@1.0.0")
    register_quantized(registry, "helper@1.0.0", "int8-dynamic", "1.0.1")
    registry.set_alias("helper@1.0.1", "int8")
    registry.register("agents", _router(tmp_path, "small-int8", "1"), "router", version="1.0.0")
    registry.activate("agents@1.0.0")
    registry.register("agents", _router(tmp_path, "human", "2"), "router", version="1.0.1")
    _, client = create_api_key(store, "app", "default", [], "client")
    with TestClient(create_app(cfg)) as http:
        yield http, store, registry, cfg, {"Authorization": f"Bearer {client}"}
    store.close()


def _logged(store: Store, policy: str) -> list[Decision]:
    return list(read_decisions(store, policy=policy).decisions)


def test_the_arm_a_generator_answers_is_served_and_both_decisions_are_logged(wired) -> None:
    http, store, *_, client = wired
    r = http.post("/v1/decide", json={"policy": "agents", "text": "turn on the fan"}, headers=client)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["kind"] == "router" and body["action"] == "small-int8"
    (routed,) = _logged(store, "agents")
    (answer,) = _logged(store, "helper")
    # The int8 arm is the version its alias names, served as the generator it is.
    assert (answer.kind, answer.policy_version, answer.metadata["quantization"]) == (
        "generator",
        "1.0.1",
        "int8-dynamic",
    )
    assert body["decision_id"] == routed.id and body["answer_decision_id"] == answer.id
    assert body["answer"] == answer_text(answer)
    assert routed.metadata["answer_decision_id"] == answer.id
    assert answer.metadata["routed_by"] == routed.id and answer.metadata["routed_arm"] == "small-int8"
    assert answer.text == "turn on the fan" and answer.metadata["project"] == "default"
    # The router's own propensity is kept: the arm choice is what its OPE and learning read.
    assert (
        routed.pscore == pytest.approx(1.0) and routed.action_dist[ARMS.index("small-int8")] == routed.pscore
    )


def test_a_replayed_decide_answers_the_stored_answer_and_logs_nothing_new(wired) -> None:
    """A re-sent idempotency key answers the decisions stored the first time, the arm's answer
    included (the generator samples: a fresh draw could differ from what was logged)."""
    http, store, *_, client = wired
    body = {"policy": "agents", "text": "turn on the fan", "idempotency_key": "order-7"}
    first = http.post("/v1/decide", json=body, headers=client)
    assert first.status_code == 200, first.text
    first = first.json()
    again = http.post("/v1/decide", json=body, headers=client)
    assert again.status_code == 200, again.text
    again = again.json()
    assert (again["decision_id"], again["answer_decision_id"]) == (
        first["decision_id"],
        first["answer_decision_id"],
    )
    assert again["answer"] == first["answer"] and again["action"] == first["action"]
    assert len(_logged(store, "agents")) == 1 and len(_logged(store, "helper")) == 1


def test_an_arm_no_policy_answers_is_the_callers_and_the_chat_endpoint_says_so(wired) -> None:
    http, store, registry, *_, client = wired
    registry.promote("agents@1.0.1", force=True, reason="the human arm")
    r = http.post("/v1/decide", json={"policy": "agents", "text": "hi"}, headers=client)
    assert r.status_code == 200, r.text
    assert (
        r.json()["action"] == "human"
        and r.json()["answer"] is None
        and r.json()["answer_decision_id"] is None
    )
    chat = http.post(
        "/v1/chat/completions",
        json={"model": "agents", "messages": [{"role": "user", "content": "hi"}]},
        headers=client,
    )
    assert chat.status_code == 422 and "is a router policy, not a generator" in chat.text
    assert _logged(store, "helper") == []


def test_the_chat_endpoint_serves_a_router_over_generators(wired) -> None:
    openai = pytest.importorskip("openai")
    http, store, *_, client = wired
    r = http.post(
        "/v1/chat/completions",
        json={"model": "agents", "messages": [{"role": "user", "content": "Where is Paris?"}], "user": "u1"},
        headers=client,
    )
    assert r.status_code == 200, r.text
    info = r.json()["rewardloop"]
    (routed,) = _logged(store, "agents")
    (answer,) = _logged(store, "helper")
    assert info["decision_id"] == routed.id and info["answer_decision_id"] == answer.id
    assert info["answer_policy"] == "helper@1.0.1"
    assert r.json()["choices"][0]["message"]["content"] == answer_text(answer)
    assert r.json()["usage"]["completion_tokens"] == answer.metadata["completion_tokens"]
    # The official client reads it as any chat completion.
    parsed = openai.types.chat.ChatCompletion.model_validate(r.json())
    assert parsed.choices[0].message.content == answer_text(answer)


def test_the_champion_arm_follows_the_generators_experiment(wired, tmp_path) -> None:
    """An arm naming the bare policy is served by its champion and experiments (the same path as
    ``/v1/decide`` for the generator itself); an arm pinned to an alias is not part of them."""
    http, store, registry, cfg, client = wired
    registry.register("agents", _router(tmp_path, "small", "3"), "router", version="1.0.2")
    registry.promote("agents@1.0.2", force=True)
    exps = Experiments(store, registry, cfg.experiments)
    exps.start("int8-canary", "helper", "1.0.1", ramp=[0.5, 1.0], salt="s")
    for unit in ("u1", "u2", "u3", "u4"):
        r = http.post("/v1/decide", json={"policy": "agents", "text": "hi", "unit_id": unit}, headers=client)
        assert r.status_code == 200 and r.json()["action"] == "small"
    answers = _logged(store, "helper")
    assert len(answers) == 4 and {a.experiment for a in answers} == {"int8-canary"}
    by_variant = {"champion": "1.0.0", "challenger": "1.0.1"}
    assert all(a.policy_version == by_variant[a.variant or ""] for a in answers)


def test_arm_policies_are_checked_when_the_project_is_read() -> None:
    base = {"name": "agents", "kind": "router", "labels": ARMS}
    for policy, message in (
        (
            {**base, "kind": "classifier", "arm_policies": {"a": "helper"}},
            "only a router's arms name policies",
        ),
        ({**base, "arm_policies": {"small": "agents"}}, "must be another policy"),
        ({**base, "arm_policies": {"small": "helper@"}}, "must be another policy"),
    ):
        with pytest.raises(ValueError, match=message):
            parse_config({"policies": [policy]})


class _Fixed:
    """A stand-in policy answering with a fixed decision (one arm, or one answer)."""

    def __init__(self, decision: Decision) -> None:
        self.decision = decision

    def decide(self, context: DecisionContext, rng: np.random.Generator) -> Decision:
        return self.decision


def _one(policy: str, kind: str, action: str) -> Decision:
    """A decision with one action (probability 1)."""
    fields = {"actions": (action,), "action": action, "action_dist": (1.0,), "pscore": 1.0}
    return Decision(policy=policy, policy_version="0", kind=kind, **fields)  # type: ignore[arg-type]


def test_the_serving_path_routes_one_level_and_leaves_the_routers_draws_alone(sqlite_store: Store) -> None:
    registry = Registry(sqlite_store, "registry")
    exps = Experiments(sqlite_store, registry, parse_config({}).experiments)
    arm, gen = (_one("r", "router", "g"), _one("g", "generator", "ok"))

    def path(name: str, decision: Decision, arm_path=None) -> ServingPath:  # type: ignore[no-untyped-def]
        return ServingPath(
            name, exps, lambda: None, lambda: "1", lambda v: _Fixed(decision), arm_path=arm_path
        )  # type: ignore[arg-type,return-value]

    answer_path = path("g", gen)
    router = path("r", arm, lambda a: answer_path if a == "g" else None)
    rng = np.random.default_rng(5)
    served = router.serve(DecisionContext("x"), None, rng, idempotency_key="k1")
    assert (
        served.answer is not None
        and served.answer.policy == "g"
        and served.answer.idempotency_key == "k1/answer"
    )
    assert served.decision.metadata["answer_decision_id"] == served.answer.id
    assert rng.random() == np.random.default_rng(5).random()  # spawning the arm's generator drew nothing
    # A generator's own path has no arms; a router arm that names nothing is answered by the caller.
    assert path("g", gen).serve(DecisionContext("x"), None, rng).answer is None
    assert path("r", arm, lambda a: None).serve(DecisionContext("x"), None, rng).answer is None
