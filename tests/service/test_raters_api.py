"""``GET /v1/raters``: per-rater agreement and the suggested authority, for the caller's project only."""

from __future__ import annotations

from tests.service.conftest import Api
from tests.service.test_api import decide

from rewardloop.store import write_feedback
from rewardloop.store.raters import read_rater_labels
from rewardloop.types.records import Feedback


def _label(api: Api) -> list[str]:
    """12 decisions with golden truth ("weather"); ann and cy always agree with it, bob on 6 of 12."""
    ids = [decide(api, f"is it dark {i}")["decision_id"] for i in range(12)]
    rows = []
    for i, d in enumerate(ids):
        rows.append(Feedback(decision_id=d, kind="correction", label="weather", source="golden"))
        rows.append(Feedback(decision_id=d, kind="correction", label="weather", rater_id="ann"))
        rows.append(Feedback(decision_id=d, kind="correction", label="weather", rater_id="cy"))
        rows.append(
            Feedback(
                decision_id=d, kind="correction", label="weather" if i % 2 else "lights_on", rater_id="bob"
            )
        )
    write_feedback(api.store, rows)
    return ids


def test_raters_ranks_the_unreliable_rater_last(api: Api) -> None:
    _label(api)
    r = api.client.get("/v1/raters", params={"min_items": 5}, headers=api.h("reviewer"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert [x["rater"] for x in body["raters"]] == ["ann", "cy", "bob"]
    bob = body["raters"][-1]
    assert (bob["golden_n"], bob["golden_accuracy"], bob["basis"]) == (12, 0.5, "truth")
    # bob against the truth: p_o = .5; golden is all "weather", so p_e = .5 and κ = 0
    assert bob["truth_kappa"] == 0.0 and bob["suggested_authority"] == 0.0
    assert body["raters"][0]["suggested_authority"] == 1.0
    assert {(p["a"], p["b"]) for p in body["pairs"]} == {("ann", "bob"), ("ann", "cy"), ("bob", "cy")}
    assert body["project"] == "acme" and body["alpha"] is not None


def test_raters_is_project_scoped_and_checks_its_input(api: Api) -> None:
    _label(api)
    other = api.client.get("/v1/raters", headers=api.h("intruder"))
    assert other.status_code == 200 and other.json()["raters"] == []
    assert (
        api.client.get("/v1/raters", params={"policy": "intent"}, headers=api.h("intruder")).status_code
        == 404
    )
    assert api.client.get("/v1/raters").status_code == 401
    bad = api.client.get("/v1/raters", params={"days": 0}, headers=api.h("reviewer"))
    assert bad.status_code == 422


def test_read_rater_labels_keeps_the_latest_and_sets_golden_apart(api: Api) -> None:
    ids = _label(api)
    write_feedback(
        api.store, [Feedback(decision_id=ids[0], kind="correction", label="lights_off", rater_id="ann")]
    )
    data = read_rater_labels(api.store, policy="intent")
    assert len(data.labels) == 36 and len(data.golden) == 12
    assert next(x.label for x in data.labels if x.rater == "ann" and x.decision_id == ids[0]) == "lights_off"
    assert data.texts[ids[0]] == "is it dark 0"


def test_raters_page_marks_the_unreliable_rater(api: Api) -> None:
    _label(api)
    api.client.cookies.set("rl_key", api.keys["reviewer"])
    page = api.client.get("/raters", params={"min_items": 5})
    assert page.status_code == 200 and "<script>" not in page.text.split("</head>")[1]
    rows = page.text.split('<tr data-rater="')[1:]
    assert [r.split('"')[0] for r in rows] == ["ann", "cy", "bob"]
    assert 'class="err"' in rows[2] and "(unreliable)" in rows[2] and "(unreliable)" not in rows[0]
    assert "50.0% (12)" in rows[2]
    assert api.client.get("/raters", params={"days": -1}).status_code == 422
    api.client.cookies.clear()
    assert api.client.get("/raters", follow_redirects=False).headers["location"] == "/login?next=/raters"
