"""End to end in a real browser: Debian's Chromium, driven by Playwright, against a real server.

A person signs in, opens the review queue, picks the right label for the model's unsure guess, and sees
the resolution counted on the queue and on the overview; the correction is in the store. The dashboard
must load nothing from outside the machine (plotly.js is served locally), and runs under its
Content-Security-Policy (no violation reported).

Stored XSS (issue 13, item 1): markup a client stored in any string a page renders stays inert and is
shown literally, on every page.

Runs in the default test run; skips, saying why, where /usr/bin/chromium (``make browser`` installs it)
or the playwright package is missing. Set ``REWARDLOOP_SCREENSHOT=path.png`` to save the overview.
"""

from __future__ import annotations

import os
import random
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from rewardloop.config import ProjectConfig
from rewardloop.loop.review import ReviewPolicy
from rewardloop.service import create_app
from rewardloop.service.chart_labels import short_name
from rewardloop.store import Store, read_feedback, write_decisions, write_feedback
from rewardloop.store.apikeys import authenticate, create_api_key
from rewardloop.store.experiments import insert_experiment
from rewardloop.store.review import resolve_review_item
from rewardloop.types import Decision, Experiment, Feedback, set_decision_fields

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="no /usr/bin/chromium: run `make browser` (apt-get install chromium)"
)

INTENTS = {
    "lights_on": ["turn on the kitchen lights", "lights on in the hall", "switch the lamp on"],
    "lights_off": ["turn off the bedroom light", "lights off please", "kill the lights in the garage"],
    "weather": ["what's the weather tomorrow", "will it rain today", "how cold is it outside"],
    "timer": ["set a timer for ten minutes", "start a 5 minute timer", "timer for the pasta"],
}


def seed(store: Store, project: str, n: int = 300, seed: int = 0) -> None:
    """Synthetic traffic for the dashboard: a classifier in an A/B test, a router, feedback, a queue."""
    rng = random.Random(seed)
    labels = tuple(INTENTS)
    now = datetime.now(UTC)
    decisions, feedback = [], []
    for i in range(n):
        truth = rng.choice(labels)
        text = rng.choice(INTENTS[truth])
        variant = "challenger" if i % 4 == 0 else "champion"
        skill = 0.9 if variant == "challenger" else 0.8
        conf = min(0.99, max(0.3, rng.gauss(0.82, 0.12)))
        guess = truth if rng.random() < skill * (0.6 + 0.5 * conf) else rng.choice(labels)
        rest = (1 - conf) / (len(labels) - 1)
        dist = tuple(conf if a == guess else rest for a in labels)
        at = now - timedelta(minutes=rng.randint(1, 23 * 60))
        d = Decision(
            policy="intent", policy_version="2" if variant == "challenger" else "1", kind="classifier",
            actions=labels, action=guess, action_dist=dist, pscore=conf, confidence=conf,
            latency_ms=rng.lognormvariate(3.0, 0.4), text=text, metadata={"project": project},
            experiment="intent-v2", variant=variant, variant_share=0.25 if variant == "challenger" else 0.75,
            created_at=at,
        )  # fmt: skip
        decisions.append(d)
        if conf >= 0.7 and rng.random() < 0.6:
            feedback.append(
                Feedback(decision_id=d.id, kind="correction", label=truth, rater_id="agent",
                         created_at=at + timedelta(minutes=5))
            )  # fmt: skip
        arms = ("rag_agent", "sql_agent", "web_agent")
        arm = rng.choice(arms)
        r = Decision(
            policy="router", policy_version="1", kind="router", actions=arms, action=arm,
            action_dist=(1 / 3, 1 / 3, 1 / 3), pscore=1 / 3, latency_ms=rng.lognormvariate(4.0, 0.3),
            text=text, metadata={"project": project}, created_at=at,
        )  # fmt: skip
        decisions.append(r)
        quality = {"rag_agent": 0.8, "sql_agent": 0.55, "web_agent": 0.35}[arm]
        feedback.append(
            Feedback(decision_id=r.id, kind="implicit", value=float(rng.random() < quality),
                     source="implicit", created_at=at + timedelta(minutes=1))
        )  # fmt: skip
    write_decisions(store, decisions)
    write_feedback(store, feedback)
    judged = {f.decision_id for f in feedback}
    ReviewPolicy(confidence_below=0.7).enqueue(
        store, [(d, None) for d in decisions if d.kind == "classifier" and d.id not in judged]
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(store: Store) -> Iterator[str]:
    """Run the real app on ``store`` in a thread (uvicorn) until the generator is closed."""
    import uvicorn

    port = free_port()
    app = create_app(store, config=ProjectConfig())
    srv = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", loop="asyncio")
    )
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert srv.started, "the server did not start"
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(10)


@contextmanager
def csp_page(sync_api: Any, violations: list[str], **page_options: Any) -> Iterator[Any]:
    """A Chromium page that records Content-Security-Policy violations in ``violations``."""
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        try:
            page = browser.new_page(**page_options)
            page.on("console", lambda m: violations.append(m.text) if "Content Security" in m.text else None)
            yield page
        finally:
            browser.close()


@pytest.fixture
def server(sqlite_store: Store) -> Iterator[tuple[str, str, Store]]:
    seed(sqlite_store, "acme")
    _, key = create_api_key(sqlite_store, "ann", "acme", role="admin")
    for base in serve(sqlite_store):
        yield base, key, sqlite_store


def test_a_reviewer_resolves_an_item_and_sees_it_counted(server: tuple[str, str, Store]) -> None:
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the package only)")
    base, key, store = server
    outside: list[str] = []
    violations: list[str] = []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.on("request", lambda r: None if r.url.startswith(base) else outside.append(r.url))
            page.on("console", lambda m: violations.append(m.text) if "Content Security" in m.text else None)
            page.goto(f"{base}/")  # not signed in: sent to the login page
            assert "/login" in page.url
            page.fill("input[name=key]", key)
            page.click("button[type=submit]")
            page.wait_for_selector("#fig-calibration .main-svg")  # plotly.js drew the chart
            resolved_before = int(page.inner_text("#review-resolved"))
            assert resolved_before == 0
            if os.environ.get("REWARDLOOP_SCREENSHOT"):
                page.wait_for_timeout(500)
                page.screenshot(path=os.environ["REWARDLOOP_SCREENSHOT"], full_page=True)

            page.click("text=Review queue")
            open_before = int(page.inner_text("#count-open"))
            assert open_before > 0
            first = page.locator(".item").first
            item_id = first.get_attribute("data-item")
            radios = first.locator("input[type=radio]")
            assert radios.count() == 4 and not any(radios.nth(i).is_checked() for i in range(4))  # no anchor
            right = radios.nth(1).get_attribute("value")  # the person disagrees with the model's top guess
            radios.nth(1).check()
            page.click("#save")
            page.wait_for_selector("#done")
            assert int(page.inner_text("#count-resolved")) == 1
            # a page's ten are claimed as it opens: the reloaded page keeps the nine left and claims one more
            assert int(page.inner_text("#count-open")) == open_before - 1
            assert int(page.inner_text("#count-claimed")) == 10
            assert page.locator(f'[data-item="{item_id}"]').count() == 0

            page.click("text=Overview")
            page.wait_for_selector("#review-resolved")
            assert int(page.inner_text("#review-resolved")) == 1
        finally:
            browser.close()
    assert outside == [] and violations == []
    (fb,) = [f for f in read_feedback(store) if f.rater_id == authenticate(store, key).id]
    assert (fb.kind, fb.label, fb.source) == ("correction", right, "human")


# ----------------------------------------------------------------------------------- stored XSS

SCRIPT = "</script><script>window.__pwned=1</script>"
IMG = "<img src=x onerror=window.__pwned=1>"


def tagged(tag: str, payload: str) -> str:
    """A payload that also says which field it was stored in (to find it on the page)."""
    return f"{tag}{payload}"


#: Every stored string a page renders, each carrying a payload.
HOSTILE = {
    "project": tagged("pj", IMG),
    "key": tagged("key", SCRIPT),
    "policy": tagged("pol", SCRIPT),
    "version": tagged("v", IMG),
    "label_a": tagged("la", IMG),
    "label_b": tagged("lb", SCRIPT),
    "text": tagged("tx", SCRIPT + IMG),
    "rater": tagged("r", IMG),
    "experiment": tagged("ex", SCRIPT),
    "variant": tagged("va", IMG),
    "arm": tagged("arm", SCRIPT),
    "router": tagged("rt", IMG),
}


def seed_hostile(store: Store) -> str:
    """A client's decisions, feedback, review items and an experiment, every string hostile."""
    h = HOSTILE
    project, labels = h["project"], (h["label_a"], h["label_b"])
    now = datetime.now(UTC)
    decisions, feedback = [], []
    for i in range(6):
        sure = i < 3
        d = Decision(
            policy=h["policy"], policy_version=h["version"], kind="classifier", actions=labels,
            action=labels[0], action_dist=(0.9, 0.1) if sure else (0.55, 0.45), pscore=0.9 if sure else 0.55,
            confidence=0.9 if sure else 0.55, latency_ms=5.0, text=h["text"], metadata={"project": project},
            experiment=h["experiment"], variant=h["variant"], variant_share=0.5,
            created_at=now - timedelta(minutes=10 - i),
        )  # fmt: skip
        decisions.append(d)
        if sure:
            feedback.append(
                Feedback(decision_id=d.id, kind="correction", label=labels[1], rater_id=h["rater"])
            )
        r = Decision(
            policy=h["router"], policy_version=h["version"], kind="router", actions=(h["arm"], "b"),
            action=h["arm"], action_dist=(0.5, 0.5), pscore=0.5, latency_ms=7.0, text=h["text"],
            metadata={"project": project}, created_at=now - timedelta(minutes=10 - i),
        )  # fmt: skip
        decisions.append(r)
        feedback.append(Feedback(decision_id=r.id, kind="implicit", value=1.0, rater_id=h["rater"]))
    write_decisions(store, decisions)
    write_feedback(store, feedback)
    ReviewPolicy(confidence_below=0.7).enqueue(
        store, [(d, None) for d in decisions if d.kind == "classifier"]
    )
    insert_experiment(
        store,
        Experiment(
            name=h["experiment"], policy=h["policy"],
            variants={"champion": h["version"], "challenger": h["label_b"]},
            shares={"champion": 0.5, "challenger": 0.5}, salt="s", ramp=(0.5, 1.0),
            verdict={"last": {"action": "hold", "reasons": [h["text"]], "sequential": {"p_value": 0.5}}},
        ),
    )  # fmt: skip
    _, key = create_api_key(store, h["key"], project, role="admin")
    return key


def test_markup_in_every_stored_string_stays_inert_on_every_page(sqlite_store: Store) -> None:
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the package only)")
    key = seed_hostile(sqlite_store)
    violations: list[str] = []
    for base in serve(sqlite_store):
        with sync_api.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.on("dialog", lambda d: d.dismiss())
                page.on(
                    "console", lambda m: violations.append(m.text) if "Content Security" in m.text else None
                )
                page.goto(f"{base}/login?next=/{SCRIPT}")
                page.fill("input[name=key]", key)
                page.click("button[type=submit]")
                page.goto(f"{base}/", wait_until="load")
                assert page.evaluate("window.__pwned") is None, "a stored string ran as script on /"
                page.wait_for_selector("#fig-ab .main-svg")
                body = page.inner_text("body")
                # (A decision's variant and the rater id are stored but / does not show them; /raters shows
                # the rater id, checked below.)
                for field in set(HOSTILE) - {"variant", "rater"}:
                    assert HOSTILE[field] in body, f"{field} is not shown literally on /"
                charts = " ".join(page.locator(".main-svg text").all_text_contents())
                # (an axis shows a long name shortened: its first characters, literally)
                assert short_name(HOSTILE["label_b"]) in charts and short_name(HOSTILE["policy"]) in charts
                assert page.evaluate("window.__pwned") is None
                for path in ("/review", f"/review?error={IMG}", f"/review?done={SCRIPT}"):
                    page.goto(f"{base}{path}")
                    page.wait_for_selector(".item")
                    body = page.inner_text("body")
                    for field in ("project", "key", "policy", "label_a", "label_b", "text"):
                        assert HOSTILE[field] in body, f"{field} is not shown literally on {path}"
                    assert page.evaluate("window.__pwned") is None, path
                page.goto(f"{base}/review?error={IMG}")
                assert IMG in page.inner_text(".err")
                assert page.evaluate("window.__pwned") is None
                page.goto(f"{base}/raters?min_items=1")  # the raters page shows rater ids
                page.wait_for_selector("#raters")
                assert HOSTILE["rater"] in page.inner_text("#raters"), (
                    "rater is not shown literally on /raters"
                )
                assert page.evaluate("window.__pwned") is None, "/raters"
            finally:
                browser.close()
    assert violations == []


# ------------------------------------------------------------------------------ sets (issue 20)


def test_a_reviewer_ticks_the_right_actions_of_a_set_hostile_labels_inert(sqlite_store: Store) -> None:
    """The set form in a browser: the model's set is a hint, no box is ticked; the ticked actions are
    stored as a set_correction; labels carrying markup are shown literally and never run."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the package only)")
    space = ("pay_invoice", tagged("act", IMG), tagged("act2", SCRIPT))
    d = Decision(
        policy="actions", policy_version="1", kind="set", confidence=0.5, text="invoice due friday",
        metadata={"project": "acme"}, **set_decision_fields(space, ("pay_invoice",), (0.6, 0.3, 0.2)),
    )  # fmt: skip
    write_decisions(sqlite_store, [d])
    ReviewPolicy(confidence_below=0.7).enqueue(sqlite_store, [(d, None)])
    _, key = create_api_key(sqlite_store, "ann", "acme", role="reviewer")
    violations: list[str] = []
    for base in serve(sqlite_store):
        with csp_page(sync_api, violations) as page:
            page.goto(f"{base}/login?next=/review")
            page.fill("input[name=key]", key)
            page.click("button[type=submit]")
            item = page.locator(".item").first
            assert item.locator(".hint-set").inner_text() == "pay_invoice"
            boxes = item.locator("input[type=checkbox][data-choice]")
            assert boxes.count() == 3 and not any(boxes.nth(i).is_checked() for i in range(3))
            assert space[1] in item.inner_text() and space[2] in item.inner_text()
            item.locator(f'input[data-choice][value="{space[1]}"]').check()
            item.locator("input[data-choice][value=pay_invoice]").check()
            page.click("#save")
            page.wait_for_selector("#done")
            assert int(page.inner_text("#count-resolved")) == 1
            assert page.evaluate("window.__pwned") is None
    assert violations == []
    (fb,) = read_feedback(sqlite_store)
    assert (fb.kind, set(fb.labels or ()), fb.rater_id) == (
        "set_correction",
        {"pay_invoice", space[1]},
        authenticate(sqlite_store, key).id,
    )


# ------------------------------------------------------------------- bulk review with the keyboard


def test_a_reviewer_reviews_a_bulk_page_with_the_keyboard_only(sqlite_store: Store) -> None:
    """Ten overlap items a first reviewer (bob) answered; ann opens the page, answers eight with
    ``1`` (the first choice shown), one with ``2``, skips one with ``s`` and saves with Enter — no
    mouse. The counts and the reviewers' agreement (κ, α) move."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the package only)")
    from rewardloop.store.review_work import reviewer_queue

    labels = ("lights_on", "lights_off", "weather", "timer")
    decisions = [
        Decision(
            policy="intent",
            policy_version="1",
            kind="classifier",
            actions=labels,
            action="lights_on",
            action_dist=(0.4, 0.3, 0.2, 0.1),
            pscore=0.4,
            confidence=0.4,
            text=f"request {i}",
            metadata={"project": "acme"},
            created_at=datetime.now(UTC) - timedelta(minutes=30 - i),
        )
        for i in range(10)
    ]
    write_decisions(sqlite_store, decisions)
    ReviewPolicy(confidence_below=0.7, overlap_rate=1.0).enqueue(sqlite_store, [(d, None) for d in decisions])
    _, bob_key = create_api_key(sqlite_store, "bob", "acme", role="reviewer")
    bob = authenticate(sqlite_store, bob_key)
    assert bob is not None
    entries, _ = reviewer_queue(sqlite_store, "acme", bob.id, limit=10)
    for k, e in enumerate(entries):  # bob: the model's guess on the first seven, lights_off on the rest
        resolve_review_item(
            sqlite_store, e.item.id, "acme", reviewer=bob.id, label=labels[0] if k < 7 else labels[1]
        )
    _, key = create_api_key(sqlite_store, "ann", "acme", role="reviewer")
    violations: list[str] = []
    for base in serve(sqlite_store):
        with csp_page(sync_api, violations, viewport={"width": 1400, "height": 1000}) as page:
            page.goto(f"{base}/login?next=/review")
            page.focus("input[name=key]")
            page.keyboard.type(key)
            page.keyboard.press("Enter")
            page.wait_for_selector("#bulk")
            assert page.locator(".item").count() == 10
            assert int(page.inner_text("#count-open")) == 0 and int(page.inner_text("#count-claimed")) == 10
            assert int(page.inner_text("#agreement-items")) == 0
            assert page.inner_text("#agreement-kappa") == "–"
            assert page.locator("input:checked").count() == 0  # nothing pre-selected
            for _ in range(8):
                page.keyboard.press("1")  # the first choice, then on to the next item
            page.keyboard.press("2")
            page.keyboard.press("s")
            assert page.locator(".item.skipped").count() == 1
            page.keyboard.press("Enter")
            page.wait_for_selector("#done")
            assert "Saved 9 answer(s) as feedback, skipped 1" in page.inner_text("#done")
            assert int(page.inner_text("#count-resolved")) == 9
            assert int(page.inner_text("#count-open")) == 1  # the skipped one, for someone else
            assert page.locator(".item").count() == 0
            # ann: lights_on ×8, lights_off ×1; bob: lights_on ×7, lights_off ×2 on the same nine
            assert int(page.inner_text("#agreement-items")) == 9
            assert int(page.inner_text("#agreement-agreed")) == 8
            # first answers (bob) a×7 b×2, second (ann) a×8 b×1: p_o = 8/9, p_e = (7·8 + 2·1)/81 = 58/81,
            # κ = (72/81 − 58/81)/(23/81) = 14/23 = 0.61
            assert page.inner_text("#agreement-kappa") == "0.61"
    assert violations == []
