"""End to end in Chromium: chart labels that fit on the overview (long label names are neither clipped
nor run off the chart, and stay whole where the page lists them), and the contributors page used with
the keyboard only, under the Content-Security-Policy, with markup in a rater id inert.

Skips like ``test_browser.py`` where /usr/bin/chromium or the playwright package is missing.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from tests.loop.test_contributions import _decision
from tests.service.test_browser import CHROMIUM, csp_page, serve

from rewardloop.loop.contributions import IMPACT_KEY
from rewardloop.store import Store, finish_run, start_run, write_decisions, write_feedback
from rewardloop.store.apikeys import create_api_key
from rewardloop.types import Decision, Feedback, TrainingRun

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="no /usr/bin/chromium: run `make browser` (apt-get install chromium)"
)

#: Intent names as long as real ones get (banking77's longest is 48 characters).
LONG = (
    "card_payment_not_recognised_by_the_merchant_abroad",
    "transfer_not_received_by_recipient_after_three_days",
    "verify_my_identity_with_a_passport_photo_upload",
    "lights_on",
)
HOSTILE = '<img src=x onerror="window.__pwned=1">'


def _sign_in(page: object, base: str, key: str, target: str) -> None:
    """Sign in with the keyboard only: the key field has the focus, Enter submits."""
    page.goto(f"{base}/login?next={target}")  # type: ignore[attr-defined]
    page.focus("input[name=key]")  # type: ignore[attr-defined]
    page.keyboard.type(key)  # type: ignore[attr-defined]
    page.keyboard.press("Enter")  # type: ignore[attr-defined]


def seed_long_labels(store: Store) -> None:
    now = datetime.now(UTC)
    decisions, feedback = [], []
    for i in range(80):
        truth = LONG[i % len(LONG)]
        guess = truth if i % 3 else LONG[(i + 1) % len(LONG)]
        d = Decision(
            policy="a_policy_with_a_rather_long_descriptive_name_v2", policy_version="1", kind="classifier",
            actions=LONG, action=guess, action_dist=tuple(0.7 if a == guess else 0.1 for a in LONG),
            pscore=0.7, confidence=0.7, latency_ms=5.0, text=f"request {i}", metadata={"project": "acme"},
            created_at=now - timedelta(minutes=i + 1),
        )  # fmt: skip
        decisions.append(d)
        feedback.append(Feedback(decision_id=d.id, kind="correction", label=truth, rater_id="ann"))
    write_decisions(store, decisions)
    write_feedback(store, feedback)


def test_chart_labels_fit_inside_their_charts(sqlite_store: Store) -> None:
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the package only)")
    seed_long_labels(sqlite_store)
    _, key = create_api_key(sqlite_store, "ann", "acme", role="admin")
    violations: list[str] = []
    for base in serve(sqlite_store):
        for width in (1400, 900):  # two panels a row, and one
            with csp_page(sync_api, violations, viewport={"width": width, "height": 1000}) as page:
                _sign_in(page, base, key, "/")
                page.wait_for_selector("#fig-accuracy .xtick text")
                for fig in ("accuracy", "latency", "calibration", "volume"):
                    svg = page.locator(f"#fig-{fig} .main-svg").first.bounding_box()
                    ticks = page.locator(f"#fig-{fig} .xtick text, #fig-{fig} .gtitle")
                    assert ticks.count() >= 1, fig
                    for i in range(ticks.count()):
                        box = ticks.nth(i).bounding_box()
                        assert box is not None
                        inside = (
                            box["x"] >= svg["x"] - 0.5
                            and box["y"] >= svg["y"] - 0.5
                            and box["x"] + box["width"] <= svg["x"] + svg["width"] + 0.5
                            and box["y"] + box["height"] <= svg["y"] + svg["height"] + 0.5
                        )
                        text = ticks.nth(i).text_content()
                        assert inside, f"{fig} width {width}: tick {text!r} {box} leaves the chart {svg}"
                shown = " ".join(page.locator("#fig-accuracy .xtick text").all_text_contents())
                assert "lights_on" in shown and "…" in shown  # short names whole, long ones shortened
                # the page lists the full names where it has room: the misclassifications table
                table = page.inner_text("#wrong")
                assert all(name in table for name in LONG[:3])
                # no table cell runs past the edge of its panel
                overflow = page.evaluate(
                    "[...document.querySelectorAll('.panel')].filter(p => p.scrollWidth > p.clientWidth + 1)"
                    ".map(p => p.querySelector('h2')?.textContent || p.firstElementChild?.id)"
                )
                assert overflow == [], f"width {width}: panels wider than their box: {overflow}"
    assert violations == []


def _measured(store: Store) -> None:
    info = {"measurement": "m1", "role": "all", "top_k": 1, "skipped": {}}
    ref = TrainingRun(policy="intent", learner="supervised", n_samples=4, config={IMPACT_KEY: info})
    start_run(store, ref)
    finish_run(store, ref, {"golden_accuracy": 0.875, "golden_n": 8.0, "golden_correct": 7.0})
    info = {"measurement": "m1", "role": "without", "contributor": "ann", "removed": 2}
    run = TrainingRun(policy="intent", learner="supervised", n_samples=2, config={IMPACT_KEY: info})
    start_run(store, run)
    paired = {"impact/a": 5.0, "impact/b": 2.0, "impact/c": 0.0, "impact/d": 1.0}
    finish_run(store, run, {"golden_accuracy": 0.625, "golden_n": 8.0, "golden_correct": 5.0, **paired})


def test_the_contributors_page_with_the_keyboard_only(sqlite_store: Store) -> None:
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the package only)")
    now = datetime.now(UTC)
    ds = [_decision(f"t{i}", now) for i in range(3)]
    write_decisions(sqlite_store, ds)
    write_feedback(
        sqlite_store,
        [
            Feedback(decision_id=ds[0].id, kind="correction", label="weather", rater_id="ann"),
            Feedback(decision_id=ds[1].id, kind="correction", label="weather", rater_id=HOSTILE),
            Feedback(decision_id=ds[2].id, kind="correction", label="weather", rater_id="old",
                     created_at=now - timedelta(days=60)),
        ],
    )  # fmt: skip
    _measured(sqlite_store)
    _, key = create_api_key(sqlite_store, "ann", "acme", role="admin")
    violations: list[str] = []
    for base in serve(sqlite_store):
        with csp_page(sync_api, violations, viewport={"width": 1200, "height": 900}) as page:
            page.on("dialog", lambda d: d.dismiss())
            _sign_in(page, base, key, "/contributors")
            page.wait_for_selector("#board")
            rows = page.locator("#board tr[data-contributor]")
            assert rows.count() == 2  # the last 30 days: "old" is outside
            assert HOSTILE in page.inner_text("#board") and page.evaluate("window.__pwned") is None
            impact = page.inner_text(".impact")
            assert "+25.0 pts" in impact and "fixed 2, broken 0" in impact and "n=8" in impact
            # keyboard only: Tab to the range selector, pick "all time", Tab to Show, Enter
            for _ in range(30):
                page.keyboard.press("Tab")
                if page.evaluate("document.activeElement.name") == "hours":
                    break
            assert page.evaluate("document.activeElement.name") == "hours"
            page.keyboard.press("End")  # the last choice: all time
            page.keyboard.press("Tab")
            assert page.evaluate("document.activeElement.textContent") == "Show"
            page.keyboard.press("Enter")
            page.wait_for_url("**/contributors?hours=0")
            page.wait_for_selector("#board")
            assert page.locator("#board tr[data-contributor]").count() == 3
            assert page.locator('#board tr[data-contributor="old"]').count() == 1
            assert page.evaluate("window.__pwned") is None
    assert violations == []
