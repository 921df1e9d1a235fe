"""``GET /v1/contributors`` and the ``/contributors`` page on the real app and store: the leaderboard
of a range, the newest impact measurement read from its TrainingRuns with exact intervals, the caller's
project only, and the page's markup inert."""

from __future__ import annotations

from datetime import timedelta

import pytest
from tests.loop.test_contributions import _decision, _fb
from tests.service.conftest import Api
from tests.service.test_dashboard_scope import sign_in

from rewardloop.evaluation.intervals import paired_difference_interval, wilson_interval
from rewardloop.loop.contributions import IMPACT_KEY
from rewardloop.store import finish_run, start_run, write_decisions, write_feedback
from rewardloop.types import TrainingRun, utcnow

HOSTILE = '<img src=x onerror="window.__pwned=1">'


def _seed(api: Api) -> None:
    now = utcnow()
    ds = [_decision(f"t{i}", now) for i in range(4)]
    write_decisions(api.store, ds)
    fb = [
        _fb(ds[0], "ann", "weather", now),
        _fb(ds[1], "ann", "lights_on", now),
        _fb(ds[2], HOSTILE, "weather", now),
        _fb(ds[3], "old", "weather", now - timedelta(days=3)),
    ]
    write_feedback(api.store, fb)


def _measure(api: Api) -> None:
    """A recorded measurement: the reference 7 of 8 golden right; without ann 5 of 8 (a=5, b=2, c=0,
    d=1); the hostile rater skipped."""
    info = {"measurement": "m1", "role": "all", "top_k": 2, "skipped": {HOSTILE: "too few"}}
    ref = TrainingRun(policy="intent", learner="supervised", n_samples=4, config={IMPACT_KEY: info})
    start_run(api.store, ref)
    finish_run(api.store, ref, {"golden_accuracy": 7 / 8, "golden_n": 8.0, "golden_correct": 7.0})
    run = TrainingRun(
        policy="intent", learner="supervised", n_samples=2,
        config={IMPACT_KEY: {"measurement": "m1", "role": "without", "contributor": "ann", "removed": 2}},
    )  # fmt: skip
    start_run(api.store, run)
    metrics = {"golden_accuracy": 5 / 8, "golden_n": 8.0, "golden_correct": 5.0}
    metrics |= {"impact/a": 5.0, "impact/b": 2.0, "impact/c": 0.0, "impact/d": 1.0}
    finish_run(api.store, run, metrics)


def test_contributors_api_leaderboard_and_impact(api: Api) -> None:
    _seed(api)
    _measure(api)
    since = (utcnow() - timedelta(days=1)).isoformat()
    r = api.client.get("/v1/contributors", params={"since": since}, headers=api.h("admin"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert [(x["rank"], x["totals"]["rater"], x["totals"]["feedback"]) for x in body["items"]] == [
        (1, "ann", 2),
        (2, HOSTILE, 1),
    ]  # "old" gave feedback before the range
    w = wilson_interval(1, 2)
    assert body["items"][0]["changed"] == pytest.approx(
        {"value": 0.5, "low": w.low, "high": w.high, "n": 2, "successes": 1}
    )
    (rep,) = body["impact"]
    assert (rep["measurement"], rep["examples"]) == ("m1", 4)
    assert (rep["accuracy"]["successes"], rep["accuracy"]["n"]) == (7, 8)
    ann, skipped = rep["contributors"]
    d = paired_difference_interval(5, 2, 0, 1)
    assert ann["contributor"] == "ann" and ann["accuracy"]["successes"] == 5
    assert ann["delta"] == pytest.approx(
        {"value": 0.25, "low": d.low, "high": d.high, "n": 8, "fixed": 2, "broken": 0}
    )
    assert (skipped["contributor"], skipped["skipped"], skipped["delta"]) == (HOSTILE, "too few", None)
    # another project's key sees none of it
    other = api.client.get("/v1/contributors", headers=api.h("intruder")).json()
    assert (other["items"], other["impact"]) == ([], [])
    assert api.client.get("/v1/contributors").status_code == 401
    bad = api.client.get("/v1/contributors", params={"since": "yesterday"}, headers=api.h("admin"))
    assert bad.status_code == 422


def test_contributors_page_renders_the_figures_with_markup_inert(api: Api) -> None:
    _seed(api)
    _measure(api)
    sign_in(api)
    page = api.client.get("/contributors?hours=24")
    assert page.status_code == 200
    html = page.text
    assert HOSTILE not in html and "&lt;img src=x onerror=" in html
    assert 'data-contributor="ann"' in html and "+25.0 pts" in html and "fixed 2, broken 0" in html
    assert "87.5%" in html and "n=8" in html  # the reference's golden accuracy
    assert 'data-contributor="old"' not in html  # outside the last 24 hours
    assert "old" in api.client.get("/contributors?hours=0").text
    assert "default-src" in page.headers["content-security-policy"]
