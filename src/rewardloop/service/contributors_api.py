"""Contributors over HTTP: ``GET /v1/contributors`` and the dashboard's ``/contributors`` page.

Read scope, the caller's project only. Both show :func:`rewardloop.loop.contributions.contributors_view`:
the leaderboard of a time range (feedback time) and each policy's newest impact measurement, read from
its TrainingRuns — neither trains anything; ``rewardloop contributors impact`` measures.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel

from rewardloop.loop.contributions import ContributorRow, ImpactReport, contributors_view
from rewardloop.service.api import query_window
from rewardloop.service.dashboard import _gate, _page
from rewardloop.service.errors import KEYED, error_responses
from rewardloop.service.scope import RANGES
from rewardloop.service.security import ReadKey
from rewardloop.service.state import StateDep
from rewardloop.types import TimeWindow, utcnow

router = APIRouter(tags=["review"])


class ContributorsResponse(BaseModel):
    project: str
    since: datetime | None
    until: datetime | None
    items: list[ContributorRow]  # dataclasses: pydantic validates and documents them as they are
    impact: list[ImpactReport]


@router.get("/v1/contributors", responses=error_responses(*KEYED, 422))
def contributors(
    key: ReadKey,
    state: StateDep,
    since: Annotated[datetime | None, Query(description="feedback at or after this time")] = None,
    until: Annotated[datetime | None, Query(description="feedback before this time")] = None,
) -> ContributorsResponse:
    """The project's contributors (people: ``source="human"`` feedback with a rater id) in the range,
    most feedback first, each with the share of their label corrections that changed the model's
    answer (Wilson 95% interval and n); and each policy's newest impact measurement: the golden
    accuracy of the model retrained without a contributor's feedback, and the difference it makes
    (Newcombe's paired 95% interval, n, golden items fixed and broken)."""
    view = contributors_view(state.store, key.project, query_window(since, until))
    return ContributorsResponse(
        project=view.project, since=view.since, until=view.until, items=view.items, impact=view.impact
    )


@router.get("/contributors", response_class=HTMLResponse, response_model=None, include_in_schema=False)
def contributors_page(
    request: Request,
    state: StateDep,
    hours: Annotated[int, Query(ge=0, le=24 * 3650, description="the last this many hours (0: all)")] = 720,
) -> Response:
    key = _gate(request, state, "read")
    if isinstance(key, Response):
        return key
    since = utcnow() - timedelta(hours=hours) if hours else None
    view = contributors_view(state.store, key.project, TimeWindow(since))
    label = RANGES.get(hours, f"last {hours} hours")
    return _page(
        state, request, "contributors.html", key=key, view=view, hours=hours, ranges=RANGES, label=label
    )
