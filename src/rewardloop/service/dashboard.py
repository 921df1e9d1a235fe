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
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

import orjson
from fastapi import APIRouter, Form, HTTPException, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from markupsafe import Markup

from rewardloop.service import panels
from rewardloop.service.raters_api import rater_figures
from rewardloop.service.security import COOKIE, check_key, csrf_ok, csrf_token, set_csrf_cookie
from rewardloop.service.state import AppState, StateDep
from rewardloop.store.apikeys import ApiKey
from rewardloop.store.experiments import ExperimentStoreError, variant_outcomes
from rewardloop.store.insights import recent_decisions, rewards_of_decisions
from rewardloop.store.review import ReviewError, read_review_queue, review_counts

router = APIRouter(include_in_schema=False)

#: Decisions the overview summarises (the most recent ones); enough for the charts, cheap to read.
WINDOW = 5000

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
def overview(request: Request, state: StateDep) -> Response:
    key = _gate(request, state, "read")
    if isinstance(key, Response):
        return key
    batch = recent_decisions(state.store, key.project, limit=WINDOW)
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
        window=WINDOW,
        acc=acc,
        estimates=estimates,
        cal=cal,
        lat=lat,
        vol=vol,
        ab=ab,
        wrong=wrong,
        explored=sum(panels.explored(j.decision) for j in panels.judged(batch) if not j.correct),
        board=panels.leaderboard(batch),
        counts=review_counts(state.store, key.project),
        figures=json_for_script(figs),
    )


@router.get("/review", response_class=HTMLResponse, response_model=None)
def review_page(
    request: Request, state: StateDep, done: str | None = None, error: str | None = None
) -> Response:
    key = _gate(request, state, "review")
    if isinstance(key, Response):
        return key
    entries = read_review_queue(state.store, key.project, ("open", "claimed"), limit=50)
    return _page(
        state,
        request,
        "review.html",
        key=key,
        entries=entries,
        counts=review_counts(state.store, key.project),
        done=done,
        error=error,
    )


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


@router.post("/review/{item_id}", response_model=None)
def review_resolve(
    item_id: str,
    request: Request,
    state: StateDep,
    label: Annotated[str | None, Form()] = None,
    labels: Annotated[list[str] | None, Form()] = None,
    has_set: Annotated[str | None, Form(alias="set")] = None,
    comment: Annotated[str | None, Form()] = None,
    csrf: Annotated[str | None, Form()] = None,
) -> Response:
    """Resolve an item from the review form: the right label (a select), and for a decision with a
    set the ticked actions (``labels``; the form's ``set`` field says the set was shown, so no box
    ticked is the empty set, not no answer)."""
    key = _gate(request, state, "review")
    if isinstance(key, Response):
        return key
    if (forged := _forged(state, request, csrf)) is not None:
        return forged
    chosen = (labels or []) if has_set else None
    try:
        state.resolve_review(item_id, key, label or None, chosen, comment or None)
    except ReviewError as err:
        return RedirectResponse(f"/review?{urlencode({'error': str(err)[:300]})}", status_code=303)
    return RedirectResponse(f"/review?done={item_id}", status_code=303)
