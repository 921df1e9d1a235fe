"""The overview's time range, policy and version selectors, its intervals, and the drill-down from a
panel to its decisions (``/decisions``): exact counts on a small seeded log, markup inert."""

from __future__ import annotations

import re
from datetime import timedelta

from tests.service.conftest import Api

from rewardloop.evaluation.intervals import mean_interval
from rewardloop.service import panels
from rewardloop.store import write_decisions, write_feedback
from rewardloop.types import Decision, Feedback, utcnow
from rewardloop.types.batches import DecisionBatch

LABELS = ("lights_on", "weather")


def seed(api: Api) -> list[Decision]:
    """intent v1: 4 decisions 10 days ago (3 judged: 2 right); intent v2: 6 in the last hour (4 judged:
    1 right, one <b>markup</b> text); a router arm with scores 1, 0, 1, 1 now."""
    now = utcnow()
    decisions, feedback = [], []

    def dec(version: str, hours_ago: float, action: str, text: str) -> Decision:
        return Decision(
            policy="intent", policy_version=version, kind="classifier", actions=LABELS, action=action,
            action_dist=(0.8, 0.2) if action == LABELS[0] else (0.2, 0.8), pscore=0.8, confidence=0.8,
            text=text, metadata={"project": "acme"}, created_at=now - timedelta(hours=hours_ago),
        )  # fmt: skip

    old = [dec("1", 240 + i, "lights_on", f"old {i}") for i in range(4)]
    new = [dec("2", 0.1 * (i + 1), "weather", "<b>new</b>" if i == 0 else f"new {i}") for i in range(6)]
    truth = {old[0].id: "lights_on", old[1].id: "lights_on", old[2].id: "weather"}
    truth |= {new[0].id: "lights_on", new[1].id: "lights_on", new[2].id: "lights_on", new[3].id: "weather"}
    decisions += old + new
    for d in decisions:
        if d.id in truth:
            feedback.append(Feedback(decision_id=d.id, kind="correction", label=truth[d.id], rater_id="r"))
    arms = ("rag", "sql")
    for i, score in enumerate((1.0, 0.0, 1.0, 1.0)):
        r = Decision(
            policy="router", policy_version="1", kind="router", actions=arms, action="rag",
            action_dist=(0.5, 0.5), pscore=0.5, text=f"q {i}", metadata={"project": "acme"},
        )  # fmt: skip
        decisions.append(r)
        feedback.append(Feedback(decision_id=r.id, kind="implicit", value=score, source="implicit"))
    write_decisions(api.store, decisions)
    write_feedback(api.store, feedback)
    return decisions


def sign_in(api: Api) -> None:
    token = api.csrf()
    r = api.client.post("/login", data={"key": api.keys["admin"], "csrf": token}, follow_redirects=False)
    assert r.status_code == 303


def number(html: str, element_id: str) -> int:
    found = re.search(rf'id="{element_id}"><a [^>]*>(\d+)</a>', html)
    assert found, element_id
    return int(found.group(1))


def test_the_range_policy_and_version_selectors_pick_the_decisions(api: Api) -> None:
    seed(api)
    sign_in(api)
    everything = api.client.get("/").text
    assert (number(everything, "n-decisions"), number(everything, "n-judged")) == (14, 7)
    day = api.client.get("/", params={"hours": 24}).text
    assert (number(day, "n-decisions"), number(day, "n-judged")) == (10, 4)
    v1 = api.client.get("/", params={"policy": "intent", "version": "1"}).text
    assert (number(v1, "n-decisions"), number(v1, "n-judged")) == (4, 3)
    assert '<option value="1" selected>1</option>' in v1 and '<option value="2" >2</option>' in v1
    # per-category accuracy of v2: lights_on 0/3, weather 1/1, each with its Wilson interval and n
    v2 = api.client.get("/", params={"policy": "intent", "version": "2"}).text
    assert '0.0% <span class="muted">[0.0%, 56.1%] n=3</span>' in v2
    assert '100.0% <span class="muted">[20.7%, 100.0%] n=1</span>' in v2
    bad = api.client.get("/", params={"hours": -1})
    assert bad.status_code == 422


def test_the_router_leaderboard_shows_the_mean_scores_interval(api: Api) -> None:
    seed(api)
    sign_in(api)
    html = api.client.get("/").text
    ci = mean_interval([1.0, 0.0, 1.0, 1.0])
    assert ci is not None and '0.750 <span class="muted">[0.000, 1.000]</span>' in html  # clipped
    rows = api.client.get("/v1/leaderboard", headers=api.h("admin")).json()["rows"]
    (rag,) = rows
    assert (rag["mean_score"], rag["low"], rag["high"]) == (0.75, 0.0, 1.0) and ci.low < 0 < 1 < ci.high


def test_a_panel_row_drills_down_to_its_decisions(api: Api) -> None:
    decisions = seed(api)
    sign_in(api)
    overview = api.client.get("/", params={"hours": 24}).text
    link = re.search(r'<a href="(/decisions\?[^"]*outcome=wrong[^"]*)">3</a>', overview)
    assert link, "the lights_on row's wrong count links to its decisions"
    page = api.client.get(link.group(1).replace("&amp;", "&")).text
    ids = re.findall(r'data-decision="([^"]+)"', page)
    new = [d for d in decisions if d.policy_version == "2"]
    assert ids == [new[0].id, new[1].id, new[2].id]  # newest first
    assert "&lt;b&gt;new&lt;/b&gt;" in page and "<b>new</b>" not in page
    unjudged = api.client.get("/decisions", params={"policy": "intent", "outcome": "unjudged"}).text
    assert len(re.findall(r"data-decision=", unjudged)) == 3  # 10 − 7 judged
    arm = api.client.get("/decisions", params={"policy": "router", "action": "rag"}).text
    assert len(re.findall(r"data-decision=", arm)) == 4
    assert api.client.get("/decisions", params={"outcome": "maybe"}).status_code == 422


def test_drill_down_filters_and_mean_interval_by_hand() -> None:
    ds = [
        Decision(policy="p", policy_version="1", kind="classifier", actions=("a", "b"), action=a,
                 action_dist=(0.6, 0.4) if a == "a" else (0.4, 0.6), pscore=0.6, text=str(i))
        for i, a in enumerate("aab")
    ]  # fmt: skip
    fb = {ds[0].id: [Feedback(decision_id=ds[0].id, kind="correction", label="a")]}
    fb[ds[2].id] = [Feedback(decision_id=ds[2].id, kind="correction", label="a")]
    batch = DecisionBatch(ds, fb)
    assert [r["text"] for r in panels.drill_down(batch)] == ["2", "1", "0"]
    assert [r["text"] for r in panels.drill_down(batch, outcome="wrong")] == ["2"]
    assert [r["text"] for r in panels.drill_down(batch, label="a", outcome="right")] == ["0"]
    assert [r["text"] for r in panels.drill_down(batch, action="a", outcome="unjudged")] == ["1"]
    # t-interval: mean 0.75, s = 0.5, t(3, 0.975) = 3.1824 → half-width 0.7956
    r = mean_interval([1.0, 0.0, 1.0, 1.0])
    assert r is not None and round(r.low, 4) == -0.0456 and round(r.high, 4) == 1.5456
    assert mean_interval([1.0]) is None
