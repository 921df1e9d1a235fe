"""Set decisions through the service (issue 20, step 6): ``/v1/decide`` serves a set policy's set with
per-label probabilities and logs it, ``/v1/feedback`` takes missed / unnecessary / corrected sets, and a
reviewer ticks the right actions on the review page (or through ``/v1/review``)."""

from __future__ import annotations

import re

import pytest
import torch

from rewardloop.client import Client
from rewardloop.policies.classifier import ClassifierPolicy
from rewardloop.policies.multilabel import CategoryAndActions, MultiLabelPolicy
from rewardloop.store import read_decisions, read_feedback
from rewardloop.types import set_decision_fields

from .conftest import Api
from .test_providers import LABELS, wired  # noqa: F401  (the fixture)

ACTIONS = ["pay_invoice", "set_payment_reminder", "archive"]


def _set_policy(bias: tuple[float, ...], version: str = "1.0.0") -> MultiLabelPolicy:
    """A set policy that ignores the text: p_j = σ(bias_j) (a zero head on the encoder)."""
    policy = MultiLabelPolicy(ACTIONS, name="actions", version=version)
    with torch.no_grad():
        policy.head.weight.zero_()
        policy.head.bias.copy_(torch.tensor(bias))
    return policy


def _register(registry, name: str, folder, kind: str) -> None:
    registry.register(name, str(folder), kind, version="1.0.0")
    registry.activate(f"{name}@1.0.0")


def _post_feedback(http, headers, decision_id: str, kind: str, labels):
    return http.post(
        "/v1/feedback", json={"decision_id": decision_id, "kind": kind, "labels": labels}, headers=headers
    )


def test_decide_serves_and_logs_the_set_and_feedback_names_its_labels(wired, tmp_path):  # noqa: F811
    http, store, registry, _, client, _ = wired
    _register(registry, "actions", _set_policy((4.0, -4.0, 4.0)).save(tmp_path / "set"), "set")
    r = http.post("/v1/decide", json={"policy": "actions", "text": "invoice attached"}, headers=client)
    assert r.status_code == 200, r.text
    body = r.json()
    # ε-greedy (ε = 0.1) per label: 0.95 for a label above its threshold, 0.05 below
    assert body["kind"] == "set" and body["label_space"] == ACTIONS
    assert body["label_probs"] == pytest.approx([0.95, 0.05, 0.95])
    (d,) = read_decisions(store, policy="actions").decisions
    assert d.id == body["decision_id"]
    assert (list(d.label_space), list(d.chosen_set)) == (ACTIONS, body["chosen_set"])
    assert list(d.label_probs) == pytest.approx(body["label_probs"])
    assert body["action"] == d.action and body["probabilities"] == {
        d.action: d.pscore,
        "<other sets>": 1 - d.pscore,
    }

    chosen = set(body["chosen_set"])
    missed = [a for a in ACTIONS if a not in chosen][:1]
    unnecessary = [a for a in ACTIONS if a in chosen][:1]
    for kind, labels in (
        ("missed_actions", missed),
        ("unnecessary_actions", unnecessary),
        ("set_correction", ["pay_invoice"]),
    ):
        if labels:
            stored = _post_feedback(http, client, d.id, kind, labels)
            assert stored.status_code == 201, stored.text
    assert {(f.kind, f.labels) for f in read_feedback(store)} >= {("set_correction", ("pay_invoice",))}

    bad = _post_feedback(http, client, d.id, "missed_actions", ["pizza"])
    assert bad.status_code == 422 and bad.headers["content-type"] == "application/problem+json"
    assert bad.json()["field"] == "body.labels" and "'pizza' is not in the decision's label space" in bad.text
    if unnecessary:  # a chosen label cannot have been missed
        wrong = _post_feedback(http, client, d.id, "missed_actions", unnecessary)
        assert wrong.status_code == 422 and "it cannot have been missed" in wrong.json()["detail"]
    empty = _post_feedback(http, client, d.id, "missed_actions", [])
    assert empty.status_code == 422 and empty.json()["field"] == "body.labels"


def test_a_category_and_actions_policy_answers_its_label_and_its_set(wired, tmp_path):  # noqa: F811
    http, store, registry, _, client, _ = wired
    category = ClassifierPolicy(LABELS, name="email", version="1.0.0")
    with torch.no_grad():
        category.head.weight.zero_()
        category.head.bias.copy_(torch.tensor([0.0, 6.0, 0.0]))
    folder = CategoryAndActions(category, _set_policy((-4.0, 4.0, -4.0))).save(tmp_path / "both")
    _register(registry, "email", folder, "classifier")  # composite.json: served as category + actions
    body = http.post("/v1/decide", json={"policy": "email", "text": "pay me"}, headers=client).json()
    assert body["kind"] == "classifier" and set(body["probabilities"]) == set(LABELS)
    assert body["label_space"] == ACTIONS and body["label_probs"] == pytest.approx([0.05, 0.95, 0.05])
    (d,) = read_decisions(store, policy="email").decisions
    assert (d.action, list(d.chosen_set)) == (body["action"], body["chosen_set"])
    ok = _post_feedback(http, client, d.id, "set_correction", ["archive", "pay_invoice"])
    assert ok.status_code == 201, ok.text
    (f,) = read_feedback(store, decision_ids=[d.id])
    assert f.labels == ("archive", "pay_invoice")


def test_set_feedback_on_a_decision_without_a_set_is_refused(api: Api) -> None:
    d = api.client.post("/v1/decide", json={"policy": "intent", "text": "hi"}, headers=api.h("client")).json()
    assert d["label_space"] is None and d["chosen_set"] is None and d["label_probs"] is None
    r = _post_feedback(api.client, api.h("client"), d["decision_id"], "set_correction", ["weather"])
    assert r.status_code == 422 and r.json()["detail"] == "labels: the decision carries no set (label_space)"
    labelled = api.client.post(
        "/v1/feedback",
        json={"decision_id": d["decision_id"], "kind": "correction", "label": "weather", "labels": ["x"]},
        headers=api.h("client"),
    )
    assert labelled.status_code == 422 and labelled.json()["field"] == "body.labels"


def test_openapi_documents_the_set_fields(api: Api) -> None:
    schemas = api.client.get("/openapi.json").json()["components"]["schemas"]
    decided = schemas["Decided"]["properties"]
    assert {"label_space", "chosen_set", "label_probs"} <= set(decided)
    assert "each label's probability" in decided["label_probs"]["description"]
    feedback = schemas["FeedbackCreateRequest"]["properties"]
    assert {"missed_actions", "unnecessary_actions", "set_correction"} <= set(feedback["kind"]["enum"])
    assert "labels" in feedback and "labels" in schemas["ReviewResolveRequest"]["properties"]
    assert "set" in schemas["DecisionLogRequest"]["properties"]["kind"]["enum"]


# ------------------------------------------------------------------------------------------- review


def _log_set(api: Api, kind: str = "set", chosen=("pay_invoice",)) -> str:
    """Log an unsure decision with a set (confidence 0.5 < 0.7: queued for review); its id."""
    probs = [0.6 if a in chosen else 0.3 for a in ACTIONS]  # every label drawn as its likelier state
    if kind == "set":
        fields = {"policy": "actions", "policy_version": "1", "kind": "set"}
        fields |= {
            k: list(v) if isinstance(v, tuple) else v
            for k, v in set_decision_fields(ACTIONS, chosen, probs).items()
        }
    else:
        fields = {"policy": "intent", "policy_version": "1", "kind": "classifier", "actions": list(LABELS)}
        fields |= {"action": "lights_on", "action_dist": [0.2, 0.5, 0.3], "pscore": 0.5}
        fields |= {"label_space": ACTIONS, "chosen_set": list(chosen), "label_probs": probs}
    r = api.client.post(
        "/v1/decisions", json={**fields, "text": "<b>invoice</b>", "confidence": 0.5}, headers=api.h("client")
    )
    assert r.status_code == 201 and r.json()["queued_for_review"] == "low_confidence", r.text
    return str(r.json()["decision_id"])


def _sign_in(api: Api, who: str = "reviewer") -> str:
    token = api.csrf()
    signed = api.client.post(
        "/login", data={"key": api.keys[who], "next": "/review", "csrf": token}, follow_redirects=False
    )
    assert signed.status_code == 303
    return token


def _item_of(api: Api, decision_id: str) -> dict:
    items = api.client.get("/v1/review", headers=api.h("reviewer")).json()["items"]
    return next(i for i in items if i["decision_id"] == decision_id)


def test_the_review_page_shows_the_models_set_as_a_hint_with_no_box_ticked(api: Api) -> None:
    decision_id = _log_set(api, chosen=("pay_invoice", "archive"))
    _sign_in(api)
    page = api.client.get("/review")
    assert page.status_code == 200
    html = page.text
    assert "&lt;b&gt;invoice&lt;/b&gt;" in html  # the client's text stays escaped
    item = _item_of(api, decision_id)
    boxes = re.findall(rf'<input type="checkbox" name="labels-{item["id"]}" value="([^"]+)"([^>]*)>', html)
    assert [v for v, _ in boxes] == ACTIONS and all("checked" not in rest for _, rest in boxes)
    assert 'class="hint-set">pay_invoice, archive<' in html
    assert 'name="label-' not in html  # a set decision has no single label to pick
    assert f'name="set-{item["id"]}" value="1"' in html
    assert "script-src 'self';" in page.headers["content-security-policy"]
    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", html) == []  # no inline script
    assert (item["kind"], item["label_space"], item["chosen_set"]) == (
        "set",
        ACTIONS,
        ["pay_invoice", "archive"],
    )


def test_ticking_the_right_actions_writes_a_set_correction_with_the_reviewers_authority(api: Api) -> None:
    api.client.app.state.rl.config.review.reviewer_authority = 0.9
    decision_id = _log_set(api)
    item = _item_of(api, decision_id)
    token = _sign_in(api)
    i = item["id"]
    form = {"csrf": token, "item": i, f"set-{i}": "1", f"labels-{i}": ["archive", "set_payment_reminder"]}
    form[f"comment-{i}"] = "both"
    r = api.client.post("/review/bulk", data=form, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/review?done=1&skipped=0"
    (f,) = read_feedback(api.store, decision_ids=[decision_id])
    assert (f.kind, f.labels, f.rater_id, f.authority, f.source, f.comment) == (
        "set_correction",
        ("archive", "set_payment_reminder"),
        api.key_id("reviewer"),
        0.9,
        "human",
        "both",
    )
    assert _item_of_all(api, item["id"])["feedback_id"] == f.id


def _item_of_all(api: Api, item_id: str) -> dict:
    items = api.client.get("/v1/review?status=resolved", headers=api.h("reviewer")).json()["items"]
    return next(i for i in items if i["id"] == item_id)


def test_no_box_ticked_is_the_empty_set_and_a_forged_or_bad_form_writes_nothing(api: Api) -> None:
    decision_id = _log_set(api)
    item = _item_of(api, decision_id)
    token = _sign_in(api)
    i = item["id"]
    forged = api.client.post("/review/bulk", data={"item": i, f"set-{i}": "1", f"labels-{i}": ["archive"]})
    assert forged.status_code == 403 and "CSRF" in forged.text
    bad = api.client.post(
        "/review/bulk",
        data={"csrf": token, "item": i, f"set-{i}": "1", f"labels-{i}": ["pizza"]},
        follow_redirects=True,
    )
    assert "labels: &#39;pizza&#39; is not in the decision&#39;s label space" in bad.text
    # nothing ticked and "none applies" not ticked: not answered (the item stays the reviewer's)
    blank = api.client.post(
        "/review/bulk", data={"csrf": token, "item": i, f"set-{i}": "1"}, follow_redirects=False
    )
    assert blank.status_code == 303 and "done=0" in blank.headers["location"]
    assert read_feedback(api.store, decision_ids=[decision_id]) == []
    form = {"csrf": token, "item": i, f"set-{i}": "1", f"none-{i}": "1"}
    empty = api.client.post("/review/bulk", data=form, follow_redirects=False)
    assert empty.status_code == 303 and "done=1" in empty.headers["location"]
    (f,) = read_feedback(api.store, decision_ids=[decision_id])
    assert (f.kind, f.labels) == ("set_correction", ())


def test_a_category_and_actions_review_writes_the_label_and_the_set(api: Api) -> None:
    decision_id = _log_set(api, kind="classifier", chosen=("archive",))
    item = _item_of(api, decision_id)
    token = _sign_in(api)
    html = api.client.get("/review").text
    i = item["id"]
    assert f'name="label-{i}"' in html and 'value="archive"' in html
    form = {
        "csrf": token,
        "item": i,
        f"label-{i}": "weather",
        f"set-{i}": "1",
        f"labels-{i}": ["pay_invoice"],
    }
    assert api.client.post("/review/bulk", data=form, follow_redirects=False).status_code == 303
    rows = {f.kind: f for f in read_feedback(api.store, decision_ids=[decision_id])}
    assert (rows["correction"].label, rows["set_correction"].labels) == ("weather", ("pay_invoice",))
    assert _item_of_all(api, item["id"])["feedback_id"] == rows["correction"].id


def test_the_review_api_resolves_a_set_with_labels(api: Api) -> None:
    decision_id = _log_set(api)
    item = _item_of(api, decision_id)
    url = f"/v1/review/{item['id']}/resolve"
    labelled = api.client.post(url, json={"label": "pay_invoice"}, headers=api.h("reviewer"))
    assert labelled.status_code == 422 and labelled.json()["field"] == "label"
    unknown = api.client.post(url, json={"labels": ["pizza"]}, headers=api.h("reviewer"))
    assert unknown.status_code == 422 and unknown.json()["field"] == "labels"
    repeated = api.client.post(url, json={"labels": ["archive", "archive"]}, headers=api.h("reviewer"))
    assert repeated.status_code == 422 and repeated.json()["field"] == "labels"
    done = Client(api_key=api.keys["reviewer"], http=api.client).resolve(item["id"], labels=["archive"])
    assert done.status == "resolved" and (done.kind, done.chosen_set) == ("set", ["pay_invoice"])
    (f,) = read_feedback(api.store, decision_ids=[decision_id])
    assert (f.kind, f.labels, f.rater_id) == ("set_correction", ("archive",), api.key_id("reviewer"))
