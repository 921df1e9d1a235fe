"""The dashboard: server-rendered pages (Jinja2) with Plotly charts, plotly.js served from the installed
plotly package (no CDN, works offline).

A person signs in once with an API key (kept in an HttpOnly, SameSite=Strict cookie); the overview needs
the ``read`` scope (so does the raters page), the review page the ``review`` scope.

Nothing a client sent is ever written into a page unescaped: templates autoescape, and data for the
charts travels as JSON in a ``<script type="application/json">`` element (``<``, ``>``, ``&`` and
U+2028/9 escaped, so no stored string can close it) that a static script file reads — the pages carry
no inline script, and the Content-Security-Policy (``service/middleware.py``) forbids any. Every form
carries a CSRF token (``service/security.py``).
"""

from __future__ import annotations

import importlib.util
from functools import partial
from pathlib import Path
from typing import Annotated, Any, Literal, get_args
from urllib.parse import urlencode

import anyio.to_thread
import orjson
from fastapi import APIRouter, Form, HTTPException, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from markupsafe import Markup
from starlette.datastructures import FormData

from rewardloop.loop.review import REASON_WEIGHT
from rewardloop.service import panels, review_api
from rewardloop.service.raters_api import rater_figures
from rewardloop.service.scope import RANGES, WINDOW, Scope, ScopeDep
from rewardloop.service.security import COOKIE, check_key, csrf_ok, csrf_token, set_csrf_cookie
from rewardloop.service.state import AppState, StateDep
from rewardloop.store.apikeys import ApiKey
from rewardloop.store.experiments import ExperimentStoreError, variant_outcomes
from rewardloop.store.insights import policies_of_project, rewards_of_decisions
from rewardloop.store.review import ReviewAnswer
from rewardloop.types import DecisionKind
from rewardloop.types.answers import ReviewQueueItem

router = APIRouter(include_in_schema=False)

STATIC = Path(__file__).parent / "static"

# JSON inside an HTML <script> element: these must not appear raw (</script>, <!--, line separators).
_SCRIPT_ESCAPES = {
    ord("<"): "\\u003c",
    ord(">"): "\\u003e",
    ord("&"): "\\u0026",
    0x2028: "\\u2028",
    0x2029: "\\u2029",
}


def json_for_script(data: Any) -> Markup:
    """``data`` as JSON that is safe as the text of a ``<script type="application/json">`` element.

    >>> str(json_for_script({"p": "</script><b>"}))
    '{"p":"\\\\u003c/script\\\\u003e\\\\u003cb\\\\u003e"}'
    """
    return Markup(orjson.dumps(data).decode().translate(_SCRIPT_ESCAPES))


def _plotly_js() -> Path:
    spec = importlib.util.find_spec("plotly")
    if spec is None or spec.origin is None:
        raise HTTPException(404, "plotly is not installed (pip install 'rewardloop[service]')")
    return Path(spec.origin).parent / "package_data" / "plotly.min.js"


def _local(path: str) -> str:
    """A redirect target on this site only (``//host`` would leave it)."""
    return path if path.startswith("/") and not path.startswith("//") else "/"


def _signed_in(request: Request, state: AppState) -> ApiKey | None:
    secret = request.cookies.get(COOKIE)
    return check_key(state.store, state.keys, secret) if secret else None


def _page(state: AppState, request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
    token, new = csrf_token(request)
    response = state.templates.TemplateResponse(request, name, {**context, "csrf": token}, status_code=status)
    if new:
        set_csrf_cookie(response, request, token)
    return response


def _forged(state: AppState, request: Request, token: str | None) -> Response | None:
    """403 for a form post whose CSRF token does not match the cookie (a cross-site forgery)."""
    if csrf_ok(request, token):
        return None
    return _page(
        state,
        request,
        "error.html",
        403,
        key=None,
        message="this form is stale or was sent from another site (CSRF token mismatch): reload the page",
    )


def _gate(request: Request, state: AppState, scope: str) -> ApiKey | Response:
    key = _signed_in(request, state)
    if key is None:
        return RedirectResponse(f"/login?next={request.url.path}", status_code=303)
    if not key.allows(scope):
        return _page(
            state, request, "error.html", 403, key=key, message=f"this key lacks the {scope!r} scope"
        )
    return key


@router.get("/static/plotly.min.js")
def plotly_js() -> FileResponse:
    return FileResponse(
        _plotly_js(), media_type="application/javascript", headers={"Cache-Control": "max-age=86400"}
    )


@router.get("/static/review.js")
def review_js() -> FileResponse:
    """The review page's keyboard shortcuts."""
    return FileResponse(STATIC / "review.js", media_type="application/javascript")


@router.get("/static/dashboard.js")
def dashboard_js() -> FileResponse:
    """Draws the overview's charts from its JSON data element (the pages carry no inline script)."""
    return FileResponse(STATIC / "dashboard.js", media_type="application/javascript")


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, state: StateDep, next: str = "/") -> HTMLResponse:
    return _page(state, request, "login.html", next=_local(next), error=None)


@router.post("/login", response_model=None)
def login(
    request: Request,
    state: StateDep,
    key: Annotated[str, Form()],
    next: Annotated[str, Form()] = "/",
    csrf: Annotated[str | None, Form()] = None,
) -> Response:
    if (forged := _forged(state, request, csrf)) is not None:
        return forged
    found = check_key(state.store, state.keys, key.strip())
    if found is None:
        return _page(state, request, "login.html", 401, next=_local(next), error="invalid or revoked API key")
    response = RedirectResponse(_local(next), status_code=303)
    response.set_cookie(
        COOKIE, key.strip(), httponly=True, samesite="strict", secure=request.url.scheme == "https"
    )
    return response


@router.post("/logout", response_model=None)
def logout(request: Request, state: StateDep, csrf: Annotated[str | None, Form()] = None) -> Response:
    if (forged := _forged(state, request, csrf)) is not None:
        return forged
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE)
    return response


def _experiments(state: AppState, key: ApiKey) -> list[dict[str, Any]]:
    """The A/B panel: each of the project's experiments with the statistic it decides on."""
    cfg = state.config.experiments
    out = []
    for e in state.admin.experiments():
        if state.owner(e.policy) != key.project:
            continue
        try:
            outcomes = variant_outcomes(state.store, e.name, spec=cfg.reward_spec, success_at=cfg.success_at)
        except ExperimentStoreError:  # several reward specs and none configured: no statistic to show
            outcomes = {}
        out.append(panels.experiment_panel(e.name, e.status, e.variants, outcomes, e.verdict, cfg.success_at))
    return out


@router.get("/", response_class=HTMLResponse, response_model=None)
def overview(request: Request, state: StateDep, scope: ScopeDep) -> Response:
    """The overview of the selected time range, policy and version; every rate with its 95% interval
    and n; each panel's rows lead to their decisions (``/decisions``)."""
    key = _gate(request, state, "read")
    if isinstance(key, Response):
        return key
    batch, capped = scope.read(state.store, key.project)
    cfg = state.config.experiments
    estimates = panels.accuracy_estimates(
        batch, state.review, rewards_of_decisions(state.store, batch.ids), cfg.reward_spec, cfg.success_at
    )
    acc = panels.accuracy(batch)
    cal = panels.calibration(batch, state.config.evaluation.n_bins)
    lat = panels.latency(batch)
    vol = panels.feedback_volume(batch)
    ab = _experiments(state, key)
    figs = panels.figures(acc, cal, lat, vol, ab)
    wrong = panels.misclassifications(batch, limit=12)
    return _page(
        state,
        request,
        "dashboard.html",
        key=key,
        scope=scope,
        capped=capped,
        window=WINDOW,
        **_selectors(state, key.project, scope),
        acc=acc,
        estimates=estimates,
        cal=cal,
        lat=lat,
        vol=vol,
        ab=ab,
        wrong=wrong,
        explored=sum(panels.explored(j.decision) for j in panels.judged(batch) if not j.correct),
        board=panels.leaderboard(batch),
        counts=review_api.counts_of(state, key.project),
        figures=json_for_script(figs),
    )


def _selectors(state: AppState, project: str, scope: Scope) -> dict[str, Any]:
    """The choices of the range, policy and version selectors (versions: the selected policy's)."""
    versions = policies_of_project(state.store, project, scope.policy) if scope.policy is not None else []
    return {"ranges": RANGES, "policies": policies_of_project(state.store, project), "versions": versions}


#: Outcomes the decisions page filters on.
OUTCOMES = ("wrong", "right", "judged", "unjudged")
#: Decisions a drill-down page lists.
DRILL_PAGE = 50


@router.get("/decisions", response_class=HTMLResponse, response_model=None)
def decisions_page(
    request: Request,
    state: StateDep,
    scope: ScopeDep,
    action: Annotated[str | None, Query(max_length=1000, description="the model chose this")] = None,
    label: Annotated[str | None, Query(max_length=1000, description="the feedback's right label")] = None,
    outcome: Annotated[Literal["wrong", "right", "judged", "unjudged"] | None, Query()] = None,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> Response:
    """A panel's decisions, newest first: those of the scope that match the action the model chose,
    the right label from feedback and the outcome — what a row of the overview leads to."""
    key = _gate(request, state, "read")
    if isinstance(key, Response):
        return key
    batch, capped = scope.read(state.store, key.project)
    rows = panels.drill_down(batch, action=action, label=label, outcome=outcome)
    shown = rows[offset : offset + DRILL_PAGE]
    more = {"action": action, "label": label, "outcome": outcome}
    return _page(
        state,
        request,
        "decisions.html",
        key=key,
        scope=scope,
        capped=capped,
        window=WINDOW,
        **_selectors(state, key.project, scope),
        rows=shown,
        total=len(rows),
        offset=offset,
        filters=more,
        outcomes=OUTCOMES,
        prev_url=f"/decisions?{scope.query(**more, offset=max(0, offset - DRILL_PAGE))}" if offset else None,
        next_url=f"/decisions?{scope.query(**more, offset=offset + DRILL_PAGE)}"
        if offset + DRILL_PAGE < len(rows)
        else None,
    )


@router.get("/review", response_class=HTMLResponse, response_model=None)
def review_page(
    request: Request,
    state: StateDep,
    flt: review_api.QueueFilterDep,
    offset: Annotated[int, Query(ge=0)] = 0,
    done: str | None = None,
    skipped: str | None = None,
    error: str | None = None,
) -> Response:
    """A reviewer's page of ten items, claimed as it opens, answered with one submit (or the keys of
    ``static/review.js``); filters by policy, reason and kind; paging."""
    key = _gate(request, state, "review")
    if isinstance(key, Response):
        return key
    entries, available, _ = review_api.open_page(state, key, flt, review_api.PAGE_SIZE, offset)
    query = {k: v for k, v in (("policy", flt.policy), ("reason", flt.reason), ("kind", flt.kind)) if v}

    def at(o: int) -> str:
        return "/review?" + urlencode({**query, "offset": o}) if o else "/review?" + urlencode(query)

    more = offset + len(entries) < available
    return _page(
        state,
        request,
        "review.html",
        key=key,
        entries=[ReviewQueueItem.of(e.item, e.decision) for e in entries],
        available=available,
        offset=offset,
        flt=flt,
        policies=policies_of_project(state.store, key.project),
        reasons=list(REASON_WEIGHT),
        kinds=list(get_args(DecisionKind)),
        back=at(offset),
        prev_url=at(max(0, offset - review_api.PAGE_SIZE)) if offset else None,
        next_url=at(offset + review_api.PAGE_SIZE) if more else None,
        counts=review_api.counts_of(state, key.project),
        agreement=review_api.agreement_of(state, key.project),
        claim_minutes=state.config.review.claim_minutes,
        done=done,
        skipped=skipped,
        error=error,
    )


def _rating(raw: str | None) -> int | None:
    """A rating field's value (``1``–``5``); anything else is refused by the answer's check."""
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError:
        return 0


def _field(form: FormData, item_id: str, name: str) -> str | None:
    value = form.get(f"{name}-{item_id}")
    return value if isinstance(value, str) and value else None


def page_answers(form: FormData) -> list[tuple[str, bool, ReviewAnswer]]:
    """The bulk form's (item id, skip, answer) for every item on the page that was answered or
    skipped; an item left blank is left alone (it stays claimed until the claim lapses).

    Fields per item ``ID``: ``label-ID`` (a top-k radio) or ``other-ID`` (the other labels' select),
    ``set-ID`` (the set was shown) with ``labels-ID`` (the ticked actions) or ``none-ID`` ("none
    applies": the empty set), ``rating-ID``, ``better-ID``, ``skip-ID``, ``comment-ID``."""
    out = []
    for item_id in form.getlist("item"):
        if not isinstance(item_id, str):
            continue
        one = partial(_field, form, item_id)
        if one("skip"):
            out.append((item_id, True, ReviewAnswer()))
            continue
        label = one("label") or one("other")
        ticked = [v for v in form.getlist(f"labels-{item_id}") if isinstance(v, str)]
        labels = ticked if one("set") and (ticked or one("none")) else None
        rating, better = _rating(one("rating")), one("better")
        if label is None and labels is None and rating is None and better is None:
            continue  # not answered (the empty set is answered with "none applies")
        out.append((item_id, False, ReviewAnswer(label, labels, rating, better, one("comment"))))
    return out


@router.post("/review/bulk", response_model=None)
async def review_bulk(request: Request, state: StateDep) -> Response:
    """The review page's one submit: every answered item is stored (each on its own), skipped items
    are skipped; then back to the page with what was saved and what was refused."""
    key = _gate(request, state, "review")
    if isinstance(key, Response):
        return key
    form = await request.form()
    token = form.get("csrf")
    if (forged := _forged(state, request, token if isinstance(token, str) else None)) is not None:
        return forged
    answers = page_answers(form)
    out = await anyio.to_thread.run_sync(review_api.answer_page, state, key, answers)
    back = form.get("back")
    target = _local(back) if isinstance(back, str) and back.startswith("/review") else "/review"
    params: dict[str, str] = {"done": str(out.answered), "skipped": str(out.skipped)}
    if out.failed:
        params["error"] = "; ".join(f.message for f in out.failed)[:300]
    sep = "&" if "?" in target else "?"
    return RedirectResponse(f"{target}{sep}{urlencode(params)}", status_code=303)


#: Raters whose suggested authority is below this are marked unreliable on the raters page.
UNRELIABLE_BELOW = 0.8


@router.get("/raters", response_class=HTMLResponse, response_model=None)
def raters_page(
    request: Request,
    state: StateDep,
    days: Annotated[float, Query(gt=0, le=3650)] = 30.0,
    min_items: Annotated[int, Query(ge=1, le=10_000)] = 10,
) -> Response:
    key = _gate(request, state, "read")
    if isinstance(key, Response):
        return key
    data = rater_figures(state, key.project, None, days, min_items)
    return _page(
        state, request, "raters.html", key=key, data=data, min_items=min_items, flag_below=UNRELIABLE_BELOW
    )
