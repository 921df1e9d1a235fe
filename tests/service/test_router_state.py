"""Workers serve the router states `rewardloop learn` publishes: picked up within the bounded staleness
(PostgreSQL: NOTIFY; SQLite: polling), named on every decision, shown live by /v1/stats and
/v1/leaderboard; a decision replays exactly from the state it names."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from tests.loop._online import ARMS, POLICY, SPEC, champion, decisions, thumbs

from rewardloop.config import parse_config
from rewardloop.loop.online_learner import STATE_KEY, OnlineLearner, published_router
from rewardloop.loop.serving import request_rng
from rewardloop.policies.contract import DecisionContext
from rewardloop.service import create_app
from rewardloop.service.router_state import LiveRouter, RouterStates
from rewardloop.store import Store, read_decisions, write_feedback
from rewardloop.store.apikeys import create_api_key
from rewardloop.types import Feedback

POLL_S = 0.2


def _wait(predicate, seconds: float = 10.0) -> float:  # type: ignore[no-untyped-def]
    start = time.monotonic()
    while not predicate():
        assert time.monotonic() - start < seconds, "not picked up in time"
        time.sleep(0.01)
    return time.monotonic() - start


@pytest.fixture
def served(store: Store, tmp_path: Path):  # type: ignore[no-untyped-def]
    registry = champion(store, tmp_path)
    cfg = parse_config(
        {
            "policies": [{"name": POLICY, "kind": "router", "labels": ARMS}],
            "experiments": {"registry_root": str(registry.root)},
            "online": {"poll_s": POLL_S},
        }
    )
    _, key = create_api_key(store, "app", "default", ["decide", "feedback", "read"])
    with TestClient(create_app(store, config=cfg)) as http:
        yield http, registry, {"Authorization": f"Bearer {key}"}


def _decide(http: TestClient, headers: dict[str, str]) -> str:
    r = http.post("/v1/decide", json={"policy": POLICY, "features": [0.5, -1.0, 0.2]}, headers=headers)
    assert r.status_code == 200, r.text
    return str(r.json()["decision_id"])


def _states(store: Store) -> dict[str, int | None]:
    return {d.id: d.metadata.get(STATE_KEY) for d in read_decisions(store, policy=POLICY)}


def _state_of(store: Store, decision_id: str) -> int | None:
    """The state a served decision names, once its (asynchronous) write has landed."""
    _wait(lambda: decision_id in _states(store))
    return _states(store)[decision_id]


def test_workers_decide_with_the_latest_published_state_and_name_it(served, store: Store):
    http, registry, headers = served
    first = _decide(http, headers)
    assert _state_of(store, first) is None  # no learner yet: the artifact, no state named
    learner = OnlineLearner(store, registry, POLICY, SPEC, publish_every=10)
    thumbs(store, decisions(store, 30))
    learner.run(until_idle=True)
    assert learner.lineage.state_version == 3
    # Within the bounded staleness the worker serves state 3 and names it.
    waited = _wait(lambda: _state_of(store, _decide(http, headers)) == 3)
    assert waited < POLL_S + 2.0
    # Feedback on the served decisions flows into the next states too.
    served_ids = [i for i, s in _states(store).items() if s == 3]
    write_feedback(
        store,
        [Feedback(decision_id=i, kind="rating", value=1.0, scale=(-1.0, 1.0)) for i in served_ids],
    )
    assert learner.lineage.state_version == 3  # that learner instance is done; the log is not
    OnlineLearner(store, registry, POLICY, SPEC, publish_every=1000).run(until_idle=True)
    _wait(lambda: _state_of(store, _decide(http, headers)) == 4)


def test_a_logged_decision_replays_exactly_from_the_state_it_names(served, store: Store):
    http, registry, headers = served
    thumbs(store, decisions(store, 40))
    OnlineLearner(store, registry, POLICY, SPEC, publish_every=15).run(until_idle=True)
    _wait(lambda: _state_of(store, _decide(http, headers)) == 3)
    for d in read_decisions(store, policy=POLICY):
        state = d.metadata.get(STATE_KEY)
        if state is None or d.features is None:
            continue
        router = published_router(store, POLICY, "1.0.0", state)
        again = router.decide(DecisionContext(features=d.features), request_rng(d.id))
        assert again.action == d.action and again.action_dist == d.action_dist


def test_stats_and_leaderboard_show_the_live_figures(served, store: Store):
    http, registry, headers = served
    thumbs(store, decisions(store, 20))
    _decide(http, headers)  # the worker loads the router (and watches its lineage)
    OnlineLearner(store, registry, POLICY, SPEC).run(until_idle=True)
    _wait(lambda: _state_of(store, _decide(http, headers)) == 1)
    stats = http.get("/v1/stats", headers=headers).json()
    (online,) = stats["online"]
    assert (online["policy"], online["version"], online["state_version"]) == (POLICY, "1.0.0", 1)
    assert online["rewards"] == 20 and online["events"] == 20 and online["served_state"] == 1
    board = http.get("/v1/leaderboard", params={"policy": POLICY}, headers=headers).json()
    live = board["live"]
    assert sorted(r["arm"] for r in live) == sorted(ARMS)
    assert sum(r["pulls"] for r in live) == 20 and {r["state_version"] for r in live} == {1}
    router = published_router(store, POLICY, "1.0.0")
    by_arm = {row.arm: row for row in router.leaderboard()}
    for r in live:
        if r["pulls"]:
            assert r["mean_reward"] == pytest.approx(by_arm[r["arm"]].mean)


def test_the_watcher_swaps_only_newer_states_and_stops(store: Store, tmp_path: Path):
    registry = champion(store, tmp_path)
    thumbs(store, decisions(store, 10))
    OnlineLearner(store, registry, POLICY, SPEC).run(until_idle=True)
    states = RouterStates(store, poll_s=0.05)
    live = states.serve(POLICY, "1.0.0", published_router(store, POLICY, "1.0.0", 0))
    assert isinstance(live, LiveRouter) and live.state_version == 1
    assert states.refresh() == 0  # already on the latest
    states.close()
    assert states._thread is not None and not states._thread.is_alive()
