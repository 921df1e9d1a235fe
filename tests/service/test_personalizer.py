"""The Azure Personalizer-compatible Rank/Reward routes, with the JSON of Microsoft's REST API v1.0
examples (azure-rest-api-specs, Personalizer/stable/v1.0/examples/Rank.json and Events_Reward.json),
served by a real ε-greedy router through the service's serving path."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from openapi_spec_validator import validate
from tests.service.conftest import Api, FakeRegistry, make_keys

from rewardloop.config import ProjectConfig
from rewardloop.learners.bandits import EpsilonGreedy
from rewardloop.loop.serving import request_rng
from rewardloop.service import DecideInput, DecideOutcome, create_app
from rewardloop.service.personalizer import condition, event_decision_id, hashed_features
from rewardloop.store import Store, read_decisions, read_feedback
from rewardloop.types import Decision

ARMS = ["NewsArticle", "SportsArticle", "EntertainmentArticle"]

#: Rank.json's request body, as Microsoft's docs give it.
RANK = {
    "contextFeatures": [{"timeOfDay": "Morning"}],
    "actions": [
        {"id": "NewsArticle", "features": [{"type": "News"}]},
        {"id": "SportsArticle", "features": [{"type": "Sports"}]},
        {"id": "EntertainmentArticle", "features": [{"type": "Entertainment"}]},
    ],
    "excludedActions": ["SportsArticle"],
    "eventId": "75269AD0-BFEE-4598-8196-C57383D38E10",
    "deferActivation": False,
}


@dataclasses.dataclass
class RouterProvider(FakeRegistry):
    """The fake registry's admin, and a real ε-greedy router (ε = 0.3, Entertainment best by its prior)
    as the ``news`` policy: p = (0.1, 0.1, 0.8) on any context."""

    router: EpsilonGreedy = dataclasses.field(
        default_factory=lambda: EpsilonGreedy(
            ARMS, dim=4, epsilon=0.3, priors={"EntertainmentArticle": (1.0, 10)}, random_state=0
        )
    )
    seen: list[DecideInput] = dataclasses.field(default_factory=list)

    def decide(self, request: DecideInput) -> DecideOutcome:
        if request.policy != "news":
            return super().decide(request)
        self.seen.append(request)
        d = self.router.decide(request.context, request_rng(request.idempotency_key or "x"))
        named = dataclasses.replace(
            d, policy="news", policy_version="1", idempotency_key=request.idempotency_key
        )
        return DecideOutcome(named)


@pytest.fixture
def pz(store: Store) -> Iterator[Api]:
    cfg = ProjectConfig()
    cfg.service.key_cache_seconds = 0.0
    cfg.service.personalizer_policy = "news"
    cfg.service.personalizer_features = 4
    provider = RouterProvider()
    app = create_app(store, config=cfg, provider=provider, admin=provider)
    with TestClient(app) as client:
        yield Api(client, store, provider, make_keys(store))


def _subscription(api: Api, who: str = "admin") -> dict[str, str]:
    return {"Ocp-Apim-Subscription-Key": api.keys[who]}


def test_rank_answers_microsofts_shape_and_logs_the_decision_with_its_propensity(pz: Api) -> None:
    answer = pz.client.post("/personalizer/v1.0/rank", json=RANK, headers=_subscription(pz))
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert set(body) == {"ranking", "eventId", "rewardActionId"}
    assert body["eventId"] == RANK["eventId"]
    ranking = {r["id"]: r["probability"] for r in body["ranking"]}
    # conditioned on the allowed actions: (0.1, 0.8) / 0.9; the excluded one has probability 0
    assert ranking == pytest.approx(
        {"EntertainmentArticle": 8 / 9, "NewsArticle": 1 / 9, "SportsArticle": 0.0}
    )
    assert body["rewardActionId"] in ("EntertainmentArticle", "NewsArticle")
    assert body["ranking"][0]["id"] == body["rewardActionId"]
    (logged,) = read_decisions(pz.store).decisions
    assert logged.id == event_decision_id("acme", RANK["eventId"])
    assert (logged.policy, logged.kind, logged.action) == ("news", "router", body["rewardActionId"])
    assert logged.action_dist == pytest.approx((1 / 9, 0.0, 8 / 9))
    assert logged.pscore == pytest.approx(ranking[body["rewardActionId"]])
    assert logged.metadata["project"] == "acme"
    assert logged.metadata["personalizer"]["excludedActions"] == ["SportsArticle"]
    # the context reached the router hashed into service.personalizer_features numbers, and as text
    (seen,) = pz.registry.seen  # type: ignore[attr-defined]
    assert seen.features == hashed_features(RANK["contextFeatures"], 4)
    assert seen.text == '[{"timeOfDay":"Morning"}]'


def test_reward_becomes_feedback_on_the_event(pz: Api) -> None:
    pz.client.post("/personalizer/v1.0/rank", json=RANK, headers=_subscription(pz))
    path = f"/personalizer/v1.0/events/{RANK['eventId']}/reward"
    answer = pz.client.post(path, json={"value": 1}, headers=_subscription(pz))  # Events_Reward.json
    assert (answer.status_code, answer.content) == (204, b"")
    (fb,) = read_feedback(pz.store)
    assert fb.decision_id == event_decision_id("acme", RANK["eventId"])
    assert (fb.kind, fb.value, fb.scale, fb.source) == ("rating", 1.0, (-1.0, 1.0), "implicit")


def test_a_rank_resent_with_its_event_id_answers_the_first_decision(pz: Api) -> None:
    first = pz.client.post("/personalizer/v1.0/rank", json=RANK, headers=_subscription(pz)).json()
    for _ in range(5):
        again = pz.client.post("/personalizer/v1.0/rank", json=RANK, headers=_subscription(pz))
        assert again.status_code == 201 and again.json() == first
    assert len(read_decisions(pz.store)) == 1


def test_without_an_event_id_one_is_made_and_rewards_find_it(pz: Api) -> None:
    body = {k: v for k, v in RANK.items() if k != "eventId"}
    answer = pz.client.post("/personalizer/v1.0/rank", json=body, headers=_subscription(pz)).json()
    assert len(answer["eventId"]) == 32
    path = f"/personalizer/v1.0/events/{answer['eventId']}/reward"
    assert pz.client.post(path, json={"value": -0.5}, headers=pz.h("client")).status_code == 204


def test_events_are_per_project(pz: Api) -> None:
    pz.client.post("/personalizer/v1.0/rank", json=RANK, headers=_subscription(pz))
    path = f"/personalizer/v1.0/events/{RANK['eventId']}/reward"
    other = pz.client.post(path, json={"value": 1}, headers=_subscription(pz, "intruder"))
    assert other.status_code == 404  # the intruder's project never ranked it (nor may it see acme's)
    assert other.json()["error"]["code"] == "ResourceNotFound"


def _error(pz: Api, path: str, body: Any, who: str | None = "admin") -> tuple[int, str | None, str]:
    headers = _subscription(pz, who) if who else {}
    answer = pz.client.post(path, json=body, headers=headers)
    problem = answer.json()
    assert answer.headers["content-type"] == "application/problem+json"
    assert problem["error"]["message"] == problem["detail"] and problem["error"]["target"] == problem["field"]
    return answer.status_code, problem["field"], problem["error"]["code"]


@pytest.mark.parametrize(
    ("body", "want"),
    [
        ({**RANK, "actions": []}, (400, "actions", "BadRequest")),
        ({**RANK, "actions": [{"features": []}]}, (400, "actions.0.id", "BadRequest")),
        ({**RANK, "excludedActions": ["Weather"]}, (400, "excludedActions.0", "BadRequest")),
        ({**RANK, "excludedActions": ARMS}, (400, "excludedActions", "BadRequest")),
        ({**RANK, "actions": [*RANK["actions"], {"id": "Weather"}]}, (400, "actions.3.id", "BadRequest")),
        ({**RANK, "actions": [RANK["actions"][0], RANK["actions"][0]]}, (400, "actions.1.id", "BadRequest")),
        ({**RANK, "eventId": "x" * 257}, (400, "eventId", "BadRequest")),
        ({**RANK, "contextFeature": []}, (400, "contextFeature", "BadRequest")),
    ],
)
def test_bad_rank_requests_are_400s_naming_the_field(pz: Api, body: Any, want: tuple[Any, ...]) -> None:
    assert _error(pz, "/personalizer/v1.0/rank", body) == want
    assert len(read_decisions(pz.store)) == 0


def test_bad_rewards_and_keys_are_refused(pz: Api) -> None:
    path = f"/personalizer/v1.0/events/{RANK['eventId']}/reward"
    assert _error(pz, path, {"value": 1}) == (404, "eventId", "ResourceNotFound")
    assert _error(pz, path, {"value": 2})[:2] == (400, "value")
    assert _error(pz, path, {"value": 1}, who=None)[0] == 401
    assert _error(pz, "/personalizer/v1.0/rank", RANK, who="reviewer")[0] == 403  # no decide scope
    assert read_feedback(pz.store) == []


def test_rank_without_a_configured_router_is_404(api: Api) -> None:
    assert _error(api, "/personalizer/v1.0/rank", RANK) == (404, None, "ResourceNotFound")


def test_conditioning_serves_the_conditioned_distribution() -> None:
    """The router draws from p; keeping an allowed choice and re-drawing an excluded one from p' gives
    exactly p' = (0.4, 0, 0.6) for p = (0.2, 0.5, 0.3) restricted to a and c."""
    p = (0.2, 0.5, 0.3)
    rng = np.random.default_rng(0)
    draws = {"a": 0, "b": 0, "c": 0}
    n = 20_000
    for _ in range(n):
        i = int(rng.choice(3, p=p))
        d = Decision(
            policy="r", policy_version="1", kind="router", actions=("a", "b", "c"), action="abc"[i],
            action_dist=p, pscore=p[i],
        )  # fmt: skip
        out = condition(d, ["a", "c"], rng)
        assert out.action_dist == pytest.approx((0.4, 0.0, 0.6))
        assert out.pscore == out.action_dist["abc".index(out.action)]
        draws[out.action] += 1
    assert draws["b"] == 0
    assert draws["a"] / n == pytest.approx(0.4, abs=0.012)  # 4 standard errors


def test_the_openapi_document_stays_valid_with_the_personalizer_routes(pz: Api) -> None:
    document = pz.client.get("/openapi.json").json()
    validate(document)
    rank = document["paths"]["/personalizer/v1.0/rank"]["post"]
    assert {"subscriptionKey": []} in rank["security"]
    assert set(rank["responses"]) >= {"201", "400", "401", "403", "404"}
    ref = rank["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    schema = document["components"]["schemas"][ref.rsplit("/", 1)[-1]]
    assert set(schema["properties"]) == {
        "contextFeatures",
        "actions",
        "excludedActions",
        "eventId",
        "deferActivation",
    }
