"""``GET /v1/raters``: how far each rater agrees with the golden set, the audit sample and the others.

Read scope, the caller's project only. Figures and the suggested authority are those of
:func:`rewardloop.evaluation.raters.rate_raters`; the golden set file of ``evaluation.golden`` (matched
by text) and ``source="golden"`` feedback are the truth, ``review.audit_rate``'s hashed draw the audit
sample.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel

from rewardloop.evaluation.golden import GoldenError, load_golden
from rewardloop.evaluation.raters import RaterReport, overall_alpha, pairwise_kappa, rate_stored_raters
from rewardloop.service.api import _own_policy
from rewardloop.service.security import ReadKey
from rewardloop.service.state import AppState, StateDep
from rewardloop.store.insights import policies_of_project
from rewardloop.store.raters import RaterLabels, read_rater_labels
from rewardloop.types.records import utcnow

router = APIRouter(prefix="/v1", tags=["review"])


class PairModel(BaseModel):
    a: str
    b: str
    kappa: float


class RatersResponse(BaseModel):
    project: str
    days: float
    raters: list[RaterReport]  # a dataclass: pydantic validates and documents it as is
    pairs: list[PairModel]
    alpha: float | None


def _golden_texts(state: AppState) -> dict[str, str] | None:
    path = state.config.evaluation.golden
    if path is None:
        return None
    try:
        return {item.text: item.label for item in load_golden(path).items}
    except (GoldenError, OSError) as err:
        raise HTTPException(500, f"evaluation.golden: {err}") from None


def rater_figures(
    state: AppState, project: str, policy: str | None, days: float, min_items: int
) -> RatersResponse:
    """The figures of :class:`RatersResponse` (the dashboard's raters page shows the same)."""
    names = [policy] if policy is not None else policies_of_project(state.store, project)
    since = utcnow() - timedelta(days=days)
    parts = [read_rater_labels(state.store, policy=name, since=since) for name in names]
    data = RaterLabels(
        [x for p in parts for x in p.labels],
        {k: v for p in parts for k, v in p.golden.items()},
        {k: v for p in parts for k, v in p.texts.items()},
    )
    review = state.review
    rate = review.audit_rate
    reports = rate_stored_raters(
        data,
        golden_texts=_golden_texts(state),
        in_audit=(lambda i: review.audit_draw(i) < rate) if rate > 0 else None,
        min_items=min_items,
    )
    rows = [(x.rater, x.decision_id, x.label) for x in data.labels]
    pairs = [PairModel(a=a, b=b, kappa=k) for (a, b), k in pairwise_kappa(rows, min_items).items()]
    return RatersResponse(
        project=project,
        days=days,
        raters=reports,
        pairs=pairs,
        alpha=overall_alpha(rows),
    )


@router.get("/raters")
def raters(
    key: ReadKey,
    state: StateDep,
    policy: Annotated[str | None, Query(max_length=200)] = None,
    days: Annotated[float, Query(gt=0, le=3650)] = 30.0,
    min_items: Annotated[int, Query(ge=1, le=10_000)] = 10,
) -> RatersResponse:
    """Per rater: agreement with the golden set, the audit sample and the other raters (Cohen's κ
    pairwise, Krippendorff's α overall) and the authority it suggests, least reliable last."""
    if policy is not None:
        _own_policy(state, key, policy)
    return rater_figures(state, key.project, policy, days, min_items)
