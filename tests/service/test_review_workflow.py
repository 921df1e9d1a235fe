"""The review workflow over HTTP, on SQLite and PostgreSQL: a reviewer's page claimed on open, claims
that lapse, skips, bulk answers with exact counts, overlap items answered by two reviewers and their
agreement (κ, α), answers of every kind, and the review page's HTML (nothing pre-selected, markup
inert)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update
from tests.service.conftest import Api

from rewardloop.loop.review import ReviewPolicy
from rewardloop.store import read_feedback, write_decisions
from rewardloop.store.apikeys import create_api_key
from rewardloop.store.tables import ReviewItemRow
from rewardloop.types import Decision, set_decision_fields, utcnow

LABELS = ("lights_on", "lights_off", "weather", "timer", "music", "alarm", "news")


def unsure(i: int, **kw: object) -> Decision:
    """A classifier decision queued for review (confidence 0.4), most probable first in LABELS order."""
    dist = (0.4, 0.2, 0.15, 0.1, 0.07, 0.05, 0.03)
    fields: dict[str, object] = {
        "policy": "intent", "policy_version": "1", "kind": "classifier", "actions": LABELS,
        "action": "lights_on", "action_dist": dist, "pscore": 0.4, "confidence": 0.4, "text": f"text {i}",
        "metadata": {"project": "acme"},
    }  # fmt: skip
    fields.update(kw)
    return Decision(**fields)  # type: ignore[arg-type]


def queue(api: Api, decisions: list[Decision], overlap: float = 0.0) -> None:
    write_decisions(api.store, decisions)
    ReviewPolicy(confidence_below=0.7, overlap_rate=overlap, budget_per_day=None).enqueue(
        api.store, [(d, None) for d in decisions]
    )


def second_reviewer(api: Api) -> str:
    api.keys["rev2"] = create_api_key(api.store, "rev2", "acme", role="reviewer")[1]
    return "rev2"


def page(api: Api, who: str, **params: object) -> dict:
    r = api.client.get("/v1/review/next", params=params, headers=api.h(who))
    assert r.status_code == 200, r.text
    return r.json()


def test_the_page_is_ten_items_claimed_on_open_and_others_see_the_rest(api: Api) -> None:
    queue(api, [unsure(i) for i in range(25)])
    second_reviewer(api)
    mine = page(api, "reviewer")
    assert (len(mine["items"]), mine["available"], mine["claimed"]) == (10, 25, 10)
    assert mine["counts"] == {"open": 15, "claimed": 10, "resolved": 0}
    assert {i["claimed_by"] for i in mine["items"]} == {api.key_id("reviewer")}
    # top-k: the model's 5 most probable labels, most probable first, with their probabilities
    assert mine["items"][0]["top_k"] == {
        "lights_on": 0.4,
        "lights_off": 0.2,
        "weather": 0.15,
        "timer": 0.1,
        "music": 0.07,
    }
    theirs = page(api, "rev2")
    assert (len(theirs["items"]), theirs["available"]) == (10, 15)
    assert not {i["id"] for i in mine["items"]} & {i["id"] for i in theirs["items"]}
    # opening my page again renews my claims: the same ten
    again = page(api, "reviewer")
    assert [i["id"] for i in again["items"]] == [i["id"] for i in mine["items"]]
    # paging: the next ten of what I may take
    nxt = page(api, "reviewer", offset=10)
    assert len(nxt["items"]) == 5 and nxt["available"] == 15


def test_a_claim_lapses_after_claim_minutes(api: Api) -> None:
    queue(api, [unsure(i) for i in range(3)])
    second_reviewer(api)
    item = page(api, "reviewer", limit=1)["items"][0]
    taken = api.client.post(f"/v1/review/{item['id']}/claim", headers=api.h("rev2"))
    assert taken.status_code == 409 and "claimed by" in taken.json()["detail"]
    past = utcnow() - timedelta(minutes=31)  # review.claim_minutes is 30
    with api.store.engine.begin() as conn:
        conn.execute(update(ReviewItemRow).where(ReviewItemRow.id == item["id"]).values(claimed_at=past))
    counts = api.client.get("/v1/review", headers=api.h("rev2")).json()["counts"]
    assert counts == {"open": 3, "claimed": 0, "resolved": 0}  # a lapsed claim counts as open
    taken = api.client.post(f"/v1/review/{item['id']}/claim", headers=api.h("rev2"))
    assert taken.status_code == 200 and taken.json()["claimed_by"] == api.key_id("rev2")
    # the first reviewer lost it: their answer is refused, nothing is written
    late = api.client.post(
        f"/v1/review/{item['id']}/resolve", json={"label": "weather"}, headers=api.h("reviewer")
    )
    assert late.status_code == 409 and read_feedback(api.store) == []


def test_skip_hides_the_item_from_the_skipper_only(api: Api) -> None:
    queue(api, [unsure(i) for i in range(2)])
    second_reviewer(api)
    first = page(api, "reviewer", limit=1)["items"][0]
    r = api.client.post(f"/v1/review/{first['id']}/skip", headers=api.h("reviewer"))
    assert r.status_code == 200 and (r.json()["status"], r.json()["claimed_by"]) == ("open", None)
    assert [i["id"] for i in page(api, "reviewer")["items"]] != [first["id"]]
    assert first["id"] not in {i["id"] for i in page(api, "reviewer")["items"]}
    assert first["id"] in {i["id"] for i in page(api, "rev2")["items"]}
    again = api.client.post(f"/v1/review/{first['id']}/skip", headers=api.h("reviewer"))
    assert again.status_code == 409 and "already skipped" in again.json()["detail"]
    assert api.client.post("/v1/review/nope/skip", headers=api.h("reviewer")).status_code == 404


def test_bulk_submit_answers_skips_and_reports_refusals_with_exact_counts(api: Api) -> None:
    queue(api, [unsure(i) for i in range(12)])
    items = page(api, "reviewer")["items"]
    answers = [{"item_id": i["id"], "label": "weather"} for i in items[:6]]
    answers += [{"item_id": items[6]["id"], "skip": True}, {"item_id": items[7]["id"], "skip": True}]
    answers += [{"item_id": items[8]["id"], "label": "pizza"}, {"item_id": "nope", "label": "weather"}]
    r = api.client.post("/v1/review/bulk", json={"answers": answers}, headers=api.h("reviewer"))
    assert r.status_code == 200, r.text
    out = r.json()
    assert (out["resolved"], out["answered"], out["skipped"]) == (6, 6, 2)
    assert [(f["item_id"], f["kind"]) for f in out["failed"]] == [
        (items[8]["id"], "invalid"),
        ("nope", "not_found"),
    ]
    # 12 items: 6 resolved; item 9 and 10 still mine (claimed); the two skipped and the 2 never shown open
    assert out["counts"] == {"open": 4, "claimed": 2, "resolved": 6}
    fb = read_feedback(api.store)
    assert len(fb) == 6 and {(f.kind, f.label) for f in fb} == {("correction", "weather")}
    left = page(api, "reviewer")
    assert left["available"] == 4  # 12 − 6 answered − 2 skipped
    too_many = [{"item_id": f"i{k}", "skip": True} for k in range(101)]
    assert (
        api.client.post("/v1/review/bulk", json={"answers": too_many}, headers=api.h("reviewer")).status_code
        == 422
    )


def test_overlap_items_need_two_reviewers_and_their_agreement_is_shown(api: Api) -> None:
    queue(api, [unsure(i) for i in range(4)], overlap=1.0)
    second_reviewer(api)
    first = page(api, "reviewer")
    assert {i["answers_needed"] for i in first["items"]} == {2}
    assert first["agreement"] == {"items": 0, "agreed": 0, "kappa": None, "alpha": None}
    ids = [i["id"] for i in first["items"]]
    mine = ["lights_on", "lights_on", "weather", "weather"]
    theirs = ["lights_on", "weather", "weather", "weather"]
    body = {"answers": [{"item_id": i, "label": x} for i, x in zip(ids, mine, strict=True)]}
    out = api.client.post("/v1/review/bulk", json=body, headers=api.h("reviewer")).json()
    assert (out["resolved"], out["answered"]) == (0, 4)  # each waits for a second reviewer
    assert out["counts"] == {"open": 4, "claimed": 0, "resolved": 0}
    assert page(api, "reviewer")["available"] == 0  # I answered them all
    second = page(api, "rev2")
    assert sorted(i["id"] for i in second["items"]) == sorted(ids)
    body = {"answers": [{"item_id": i, "label": x} for i, x in zip(ids, theirs, strict=True)]}
    out = api.client.post("/v1/review/bulk", json=body, headers=api.h("rev2")).json()
    assert (out["resolved"], out["answered"]) == (4, 4)
    # first answers (a, a, w, w) vs second (a, w, w, w): p_o = 3/4, p_e = (2·1 + 2·3)/16 = 1/2, κ = 1/2;
    # α: coincidences o_aa = 2, o_aw = o_wa = 1, o_ww = 4; n = 8, n_a = 3, n_w = 5;
    # D_o = 2/8, D_e = 2·3·5/(8·7) = 30/56, α = 1 − (1/4)/(30/56) = 1 − 7/15 = 8/15
    agreement = page(api, "reviewer")["agreement"]
    assert (agreement["items"], agreement["agreed"]) == (4, 3)
    assert agreement["kappa"] == pytest.approx(0.5) and agreement["alpha"] == pytest.approx(8 / 15)
    again = api.client.post(f"/v1/review/{ids[0]}/resolve", json={"label": "weather"}, headers=api.h("rev2"))
    assert again.status_code == 409


def test_answers_of_every_kind(api: Api) -> None:
    rerank = Decision(
        policy="answers", policy_version="1", kind="reranker", actions=("c1", "c2", "c3"), action="c2",
        action_dist=(0.3, 0.4, 0.3), pscore=0.4, confidence=0.4, ranking=("c2", "c3", "c1"),
        candidates=("first answer", "second answer", "third answer"), text="which answer?",
        metadata={"project": "acme"},
    )  # fmt: skip
    gen = Decision(
        policy="chat", policy_version="1", kind="generator", actions=("it is sunny",), action="it is sunny",
        action_dist=(1.0,), pscore=1.0, confidence=0.2, text="weather?", metadata={"project": "acme"},
    )  # fmt: skip
    space = ("pay", "file", "reply")
    sets = Decision(
        policy="actions", policy_version="1", kind="set", confidence=0.5, text="invoice due",
        metadata={"project": "acme"}, **set_decision_fields(space, ("pay",), (0.6, 0.3, 0.2)),
    )  # fmt: skip
    queue(api, [rerank, gen, sets])
    items = {i["kind"]: i for i in page(api, "reviewer")["items"]}
    assert items["reranker"]["pair"] == ["c2", "c3"] and items["generator"]["pair"] is None
    bad = [
        {"item_id": items["reranker"]["id"], "better": "c1"},  # not one of the two shown
        {"item_id": items["generator"]["id"]},  # nothing answered
        {"item_id": items["set"]["id"], "rating": 4},  # a rating is for answers
    ]
    out = api.client.post("/v1/review/bulk", json={"answers": bad}, headers=api.h("reviewer")).json()
    assert [f["message"].split(":")[0] for f in out["failed"]] == ["better", "rating", "rating"]
    good = [
        {"item_id": items["reranker"]["id"], "rating": 2, "better": "c3"},
        {"item_id": items["generator"]["id"], "rating": 5},
        {"item_id": items["set"]["id"], "labels": ["pay", "reply"]},
    ]
    out = api.client.post("/v1/review/bulk", json={"answers": good}, headers=api.h("reviewer")).json()
    assert (out["resolved"], out["failed"]) == (3, [])
    got = {(f.decision_id, f.kind): f for f in read_feedback(api.store)}
    assert got[(rerank.id, "rating")].value == 2.0 and got[(rerank.id, "rating")].scale == (1.0, 5.0)
    assert (got[(rerank.id, "preference")].preferred, got[(rerank.id, "preference")].rejected) == ("c3", "c2")
    assert got[(gen.id, "rating")].value == 5.0
    assert set(got[(sets.id, "set_correction")].labels or ()) == {"pay", "reply"}
    assert len(got) == 4


def sign_in(api: Api, who: str) -> str:
    token = api.csrf()
    r = api.client.post("/login", data={"key": api.keys[who], "csrf": token}, follow_redirects=False)
    assert r.status_code == 303
    return token


def test_the_review_page_preselects_nothing_and_one_submit_answers_the_page(api: Api) -> None:
    queue(api, [unsure(i) for i in range(12)])
    token = sign_in(api, "reviewer")
    html = api.client.get("/review").text
    assert (
        html.count('class="item"') == 10
        and " checked" not in html
        and "selected>" not in html.replace('<option value="">any</option>', "")
    )
    assert 'id="next"' in html and "Items 1–10 of 12" in html
    ids = [i["id"] for i in page(api, "reviewer")["items"]]
    form: dict[str, str | list[str]] = {"csrf": token, "back": "/review", "item": ids}
    for k, item_id in enumerate(ids):
        if k < 3:
            form[f"label-{item_id}"] = "weather"
        elif k == 3:
            form[f"other-{item_id}"] = "news"  # a label outside the top 5
        elif k == 4:
            form[f"skip-{item_id}"] = "1"
    r = api.client.post("/review/bulk", data=form, follow_redirects=False)
    assert r.status_code == 303 and "done=4" in r.headers["location"] and "skipped=1" in r.headers["location"]
    assert sorted(f.label or "" for f in read_feedback(api.store)) == [
        "news",
        "weather",
        "weather",
        "weather",
    ]
    html = api.client.get(r.headers["location"]).text
    assert 'id="count-resolved">4<' in html and "Saved 4 answer(s)" in html
    forged = api.client.post("/review/bulk", data={"csrf": "x", "item": ids[5], f"label-{ids[5]}": "weather"})
    assert forged.status_code == 403 and len(read_feedback(api.store)) == 4


def test_markup_in_a_queued_decision_is_inert_on_the_review_page(api: Api) -> None:
    evil = "<script>alert(1)</script>"
    labels = (f"a{evil}", "b")
    queue(
        api,
        [
            unsure(
                0,
                text=evil,
                actions=labels,
                action=labels[0],
                action_dist=(0.6, 0.4),
                pscore=0.6,
                confidence=0.6,
            )
        ],
    )
    sign_in(api, "reviewer")
    r = api.client.get("/review", params={"error": evil})
    assert evil not in r.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in r.text
    assert "script-src 'self'" in r.headers["content-security-policy"]


def test_the_sdk_skips_and_rates(api: Api) -> None:
    from rewardloop.client import Client

    answer = {
        "kind": "generator",
        "actions": ("fine",),
        "action": "fine",
        "action_dist": (1.0,),
        "pscore": 1.0,
    }
    gen = [unsure(i, policy="chat", confidence=0.2, **answer) for i in range(2)]
    queue(api, gen)
    sdk = Client(api_key=api.keys["reviewer"], http=api.client)
    first, second = page(api, "reviewer")["items"]
    skipped = sdk.skip(first["id"])
    assert (skipped.status, skipped.claimed_by) == ("open", None)
    done = sdk.rate(second["id"], rating=4)
    assert done.status == "resolved"
    (fb,) = read_feedback(api.store)
    assert (fb.kind, fb.value, fb.scale, fb.rater_id) == ("rating", 4.0, (1.0, 5.0), api.key_id("reviewer"))
