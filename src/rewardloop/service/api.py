"""The JSON API under ``/v1`` (but ``POST /v1/feedback``: :mod:`rewardloop.service.ingest`), plus
``/healthz`` and ``/metrics``.

Project scoping: every decision logged here carries ``metadata["project"]`` = the caller's project. A
policy belongs to the project that registered it, from registration on (a policy never registered: to
the project of its first decision); reads and writes touch only the caller's project.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import itertools
import os
import tempfile
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Annotated, Any, Literal

import anyio.to_thread
import orjson
from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.responses import FileResponse, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from starlette.background import BackgroundTask

from rewardloop.service import panels
from rewardloop.service.decision_writer import DecisionJob, Logged
from rewardloop.service.errors import BODY, KEYED, error_responses
from rewardloop.service.idempotency import scope_record_key
from rewardloop.service.paging import DEFAULT_PAGE_SIZE, PageSize, PageToken, page
from rewardloop.service.providers import DecideInput, RegistryProviders
from rewardloop.service.router_state import lineage_figures, live_leaderboard
from rewardloop.service.schemas import (
    AliasMoveResponse,
    DecideRequest,
    DecisionLogRequest,
    DecisionLogResponse,
    ExperimentModel,
    ExperimentPage,
    KeyCreateRequest,
    KeyCreateResponse,
    KeyModel,
    KeyPage,
    LeaderboardEntry,
    LeaderboardResponse,
    LiveArmEntry,
    OnlineLineageModel,
    PolicyModel,
    PolicyPage,
    PromoteRequest,
    RollbackRequest,
    StatsResponse,
)
from rewardloop.service.security import AdminKey, DecideKey, ExportKey, ReadKey
from rewardloop.service.state import AppState, StateDep
from rewardloop.store import GroupStats, read_decisions, store_stats
from rewardloop.store.apikeys import ApiKey, ApiKeyError, create_api_key, list_api_keys, revoke_api_key
from rewardloop.store.files import csv_safe
from rewardloop.store.insights import (
    EXPORT_COLUMNS,
    export_rows,
    policies_of_project,
    recent_decisions,
)
from rewardloop.store.review import (
    review_counts,
)
from rewardloop.types import Decision, RecordError, TimeWindow
from rewardloop.types.answers import Decided

# Two flat routers (the app includes both): nesting one in the other costs a level of route matching
# on every request. POST /v1/feedback is served below the router (service/ingest.py). Each route lists
# the errors it really gives beyond the key checks (401, 403) and the admission limit (503).
v1 = APIRouter(prefix="/v1", responses=error_responses(*KEYED))
router = APIRouter()


def _own_policy(state: AppState, key: ApiKey, policy: str) -> None:
    """404 unless the policy is the caller's project's (or is neither registered nor logged yet)."""
    owner = state.owner(policy)
    if owner is not None and owner != key.project:
        raise HTTPException(404, f"policy: no policy {policy!r} in this project")


async def _own_policy_async(state: AppState, key: ApiKey, policy: str) -> None:
    """:func:`_own_policy` for async routes: the store is read in a thread, and only on a cache miss."""
    owner = state.owners.get(policy)
    if owner is None:
        owner = await anyio.to_thread.run_sync(state.owner, policy)
    if owner is not None and owner != key.project:
        raise HTTPException(404, f"policy: no policy {policy!r} in this project")


def _stamp(decision: Decision, project: str) -> Decision:
    return dataclasses.replace(decision, metadata={**decision.metadata, "project": project})


# ---------------------------------------------------------------------------------------- decisions


@v1.post("/decide", responses=error_responses(*BODY, 404, 409), tags=["decisions"])
async def decide(body: DecideRequest, key: DecideKey, state: StateDep, http: Request) -> Decided:
    """Decide with the version the policy's alias points at, in the caller's experiment variant; the
    decision is logged (with its propensity) and queued for review when the review policy says so.
    A re-sent ``idempotency_key`` answers the first decision's id (and is not queued again)."""
    await _own_policy_async(state, key, body.policy)
    if "project" in body.metadata and body.metadata["project"] != key.project:
        raise HTTPException(422, "metadata.project: must be this key's project or absent")
    request = DecideInput(
        policy=body.policy,
        text=body.text,
        features=tuple(body.features) if body.features is not None else None,
        candidates=tuple(body.candidates) if body.candidates is not None else None,
        actions=tuple(body.actions) if body.actions is not None else None,
        metadata={**body.metadata, "project": key.project},
        unit_id=body.unit_id,
        idempotency_key=body.idempotency_key or scope_record_key(http.scope),
    )
    decision, logged, answer = await decide_and_log(state, key, request)
    return Decided.of(decision, logged.decision_id, logged.review_reason, answer, logged.answer_id)


async def decide_and_log(
    state: AppState,
    key: ApiKey,
    request: DecideInput,
    adjust: Callable[[Decision], Decision] | None = None,
) -> tuple[Decision, Logged, Decision | None]:
    """The one serving path for a caller: the provider decides (in a thread: inference must not hold
    up the event loop), the decision (and a shadow's) is stamped with the project and logged. ``adjust``
    may change the served decision before it is logged (the Personalizer route conditions it on the
    request's allowed actions). A replay (its idempotency key or id logged before) answers the decision
    stored then (and its answer's, when an arm is another policy), not this request's fresh draw: the
    caller acts on what the log says it was served. Returns the decision, how it was logged, and the
    answering policy's decision (None unless the chosen arm is another policy)."""
    outcome = await anyio.to_thread.run_sync(state.provider.decide, request)
    decision = _stamp(outcome.decision, key.project)
    if adjust is not None:
        decision = adjust(decision)
    shadow = None
    if outcome.shadow is not None:
        shadow = _stamp(outcome.shadow, key.project)
        shadow = dataclasses.replace(shadow, metadata={**shadow.metadata, "shadow_of": decision.id})
    answer = None if outcome.answer is None else _stamp(outcome.answer, key.project)
    logged = await state.decisions.submit(
        DecisionJob(
            decision, key.project, "decide", shadow, shadow.action if shadow is not None else None, answer
        )
    )
    if not logged.new:
        ids = [logged.decision_id] + ([logged.answer_id] if logged.answer_id is not None else [])
        stored = await anyio.to_thread.run_sync(lambda: read_decisions(state.store, ids=ids))
        by_id = {d.id: d for d in stored.decisions}
        decision = by_id[logged.decision_id]
        answer = by_id.get(logged.answer_id) if logged.answer_id is not None else None
    return decision, logged, answer


@v1.post("/decisions", status_code=201, responses=error_responses(*BODY, 404, 409), tags=["decisions"])
async def log_external_decision(
    body: DecisionLogRequest, key: DecideKey, state: StateDep, request: Request
) -> DecisionLogResponse:
    """Log a decision made elsewhere (same fields as the Decision record); it may enter the review queue.
    Re-sending the same ``idempotency_key`` logs it once and returns the first id."""
    await _own_policy_async(state, key, body.policy)
    if "project" in body.metadata and body.metadata["project"] != key.project:
        raise HTTPException(422, "metadata.project: must be this key's project or absent")
    if body.idempotency_key is None:  # the header's key, written with the decision (service/idempotency.py)
        body = body.model_copy(update={"idempotency_key": scope_record_key(request.scope)})
    decision = body.to_decision(key.project)  # RecordError → 422 naming the field
    logged = await state.decisions.submit(
        DecisionJob(decision, key.project, "log", shadow_action=body.shadow_action)
    )
    return DecisionLogResponse(decision_id=logged.decision_id, queued_for_review=logged.review_reason)


# ---------------------------------------------------------------------------------------- reading


@v1.get("/stats", responses=error_responses(404, 422), tags=["insight"])
def stats(
    key: ReadKey, state: StateDep, policy: Annotated[str | None, Query(max_length=200)] = None
) -> StatsResponse:
    """Decisions per policy and version, feedback coverage, feedback per kind and source, exploration
    health (share logged without randomness, effective sample size) and the review queue, for the
    caller's project."""
    if policy is not None:
        _own_policy(state, key, policy)
        names = [policy]
    else:
        names = policies_of_project(state.store, key.project)
    groups: list[GroupStats] = []
    by_kind: dict[str, int] = {}
    by_source: dict[str, int] = {}
    for name in names:
        s = store_stats(state.store, name)
        groups.extend(s.groups)
        for k, v in s.feedback_by_kind.items():
            by_kind[k] = by_kind.get(k, 0) + v
        for k, v in s.feedback_by_source.items():
            by_source[k] = by_source.get(k, 0) + v
    n = sum(g.decisions for g in groups)
    served = state.provider.states if isinstance(state.provider, RegistryProviders) else None
    online = [
        OnlineLineageModel(**dataclasses.asdict(x)) for x in lineage_figures(state.store, names, served)
    ]
    return StatsResponse(
        project=key.project,
        decisions=n,
        coverage=sum(g.with_feedback for g in groups) / n if n else 0.0,
        groups=groups,
        feedback_by_kind=by_kind,
        feedback_by_source=by_source,
        review=review_counts(state.store, key.project),
        online=online,
    )


@v1.get("/leaderboard", responses=error_responses(404, 422), tags=["insight"])
def leaderboard(
    key: ReadKey,
    state: StateDep,
    kind: Annotated[Literal["router", "classifier", "reranker"], Query()] = "router",
    policy: Annotated[str | None, Query(max_length=200)] = None,
    window: Annotated[int, Query(ge=1, le=200_000, description="most recent decisions considered")] = 50_000,
) -> LeaderboardResponse:
    """Per policy and action (an arm, an expert, an agent): decisions, judged, mean feedback score in
    [0, 1], mean latency — best first, over the most recent ``window`` decisions. Routers learned
    online (``rewardloop learn``) also get ``live``: each arm's pulls and mean reward in the latest
    published state, the figures the router decides on."""
    if policy is not None:
        _own_policy(state, key, policy)
    batch = recent_decisions(state.store, key.project, limit=window, policy=policy)
    names = [policy] if policy is not None else policies_of_project(state.store, key.project)
    live = [LiveArmEntry(**r) for r in live_leaderboard(state.store, names)] if kind == "router" else []
    rows = [LeaderboardEntry(**r) for r in panels.leaderboard(batch, (kind,))]
    return LeaderboardResponse(rows=rows, live=live)


# ------------------------------------------------------------------------------------------- export


def query_window(since: datetime | None, until: datetime | None) -> TimeWindow:
    """The ``since``/``until`` query parameters as a window; a 422 naming ``query.until`` when the
    window is reversed."""
    try:
        return TimeWindow(since, until)
    except RecordError as err:
        raise HTTPException(422, f"query.{err.field}: {err.reason}") from None


def _jsonl(rows: Iterator[dict[str, Any]]) -> Iterator[bytes]:
    for row in rows:
        yield orjson.dumps(row) + b"\n"


def _csv(rows: Iterator[dict[str, Any]]) -> Iterator[str]:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(EXPORT_COLUMNS))
    writer.writeheader()
    for n, row in enumerate(rows, 1):
        if row["scores"] is not None:
            row = {**row, "scores": orjson.dumps(row["scores"]).decode()}
        writer.writerow({k: csv_safe(v) for k, v in row.items()})  # no spreadsheet formulas
        if n % 1000 == 0:
            yield buf.getvalue()
            buf.seek(0)
            buf.truncate()
    yield buf.getvalue()


@v1.get(
    "/export",
    tags=["export"],
    responses={
        **error_responses(404, 422),
        200: {
            "description": "one row per feedback, joined with its decision",
            "content": {"application/x-ndjson": {}, "text/csv": {}, "application/vnd.apache.parquet": {}},
        },
    },
)
def export(
    key: ExportKey,
    state: StateDep,
    format: Annotated[Literal["jsonl", "csv", "parquet"], Query()] = "jsonl",
    policy: Annotated[str | None, Query(max_length=200)] = None,
    since: Annotated[datetime | None, Query(description="feedback at or after (ISO-8601)")] = None,
    until: Annotated[datetime | None, Query(description="feedback before (ISO-8601)")] = None,
) -> Response:
    """The caller's project's feedback joined with its decisions (columns: ``EXPORT_COLUMNS``)."""
    window = query_window(since, until)
    if policy is not None:
        _own_policy(state, key, policy)
    rows = export_rows(state.store, key.project, policy=policy, window=window)
    name = f"rewardloop-{key.project}-feedback"
    if format == "jsonl":
        return StreamingResponse(
            _jsonl(rows),
            media_type="application/x-ndjson",
            headers={"Content-Disposition": f'attachment; filename="{name}.jsonl"'},
        )
    if format == "csv":
        return StreamingResponse(
            _csv(rows),
            media_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
        )
    path = _parquet_file(rows)
    return FileResponse(
        path,
        media_type="application/vnd.apache.parquet",
        headers={"Content-Disposition": f'attachment; filename="{name}.parquet"'},
        background=BackgroundTask(os.unlink, path),
    )


def _parquet_file(rows: Iterator[dict[str, Any]]) -> str:
    """The rows as a temporary Parquet file, written a row group of ``PARQUET_GROUP_ROWS`` at a time so
    an export holds one group in memory, not the table; the caller deletes the file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from rewardloop.store import files

    schema = _parquet_schema(pa)
    fd, path = tempfile.mkstemp(prefix="rewardloop-export-", suffix=".parquet")
    os.close(fd)
    try:
        with pq.ParquetWriter(path, schema) as writer:
            while group := list(itertools.islice(rows, files.PARQUET_GROUP_ROWS)):
                for row in group:
                    row["scores"] = (
                        orjson.dumps(row["scores"]).decode() if row["scores"] is not None else None
                    )
                writer.write_table(pa.Table.from_pylist(group, schema=schema))
    except BaseException:
        os.unlink(path)
        raise
    return path


def _parquet_schema(pa: Any) -> Any:
    floats = {"value", "scale_low", "scale_high", "authority", "confidence", "pscore"}
    return pa.schema([(c, pa.float64() if c in floats else pa.string()) for c in EXPORT_COLUMNS])


# ------------------------------------------------------------------------------ policies, experiments


@v1.get("/policies", tags=["policies"], responses=error_responses(400, 422))
def policies(
    key: ReadKey, state: StateDep, limit: PageSize = DEFAULT_PAGE_SIZE, page_token: PageToken = None
) -> PolicyPage:
    """The registry's policies of this project, by name, a page at a time (``next_page_token``)."""
    mine = [p for p in state.admin.list_policies() if state.owner(p.name) == key.project]
    shown, token = page(mine, lambda p: (p.name,), "policies", page_token, limit)
    items = [
        PolicyModel(name=p.name, kind=p.kind, aliases=dict(p.aliases), versions=list(p.versions))
        for p in shown
    ]
    return PolicyPage(items=items, next_page_token=token)


@v1.post("/policies/{policy}/promote", responses=error_responses(*BODY, 404, 409), tags=["policies"])
def promote(policy: str, body: PromoteRequest, key: AdminKey, state: StateDep) -> AliasMoveResponse:
    """Point an alias (default ``champion``) at a version; refused (409) when the gate fails, unless
    ``force`` (recorded as forced)."""
    _own_policy(state, key, policy)
    move = state.admin.promote(
        policy, body.version, body.alias, f"key:{key.id} ({key.name})", body.reason, body.force
    )
    return AliasMoveResponse(**dataclasses.asdict(move))


@v1.post("/policies/{policy}/rollback", responses=error_responses(*BODY, 404, 409), tags=["policies"])
def rollback(policy: str, body: RollbackRequest, key: AdminKey, state: StateDep) -> AliasMoveResponse:
    """Move the alias back to the version it pointed at before."""
    _own_policy(state, key, policy)
    move = state.admin.rollback(policy, body.alias, f"key:{key.id} ({key.name})", body.reason)
    return AliasMoveResponse(**dataclasses.asdict(move))


@v1.get("/experiments", tags=["policies"], responses=error_responses(400, 422))
def experiments(
    key: ReadKey, state: StateDep, limit: PageSize = DEFAULT_PAGE_SIZE, page_token: PageToken = None
) -> ExperimentPage:
    """Experiments on this project's policies, by name, a page at a time (``next_page_token``):
    variants, shares, stage, verdict, and per variant what the store observed (decisions, judged,
    accuracy)."""
    mine = [e for e in state.admin.experiments() if state.owner(e.policy) == key.project]
    shown, token = page(mine, lambda e: (e.name,), "experiments", page_token, limit)
    out = []
    for e in shown:
        batch = recent_decisions(state.store, key.project, policy=e.policy)
        observed = {
            r["variant"]: {k: float(r[k]) for k in ("decisions", "judged", "accuracy") if r[k] is not None}
            for r in panels.ab_results(batch)
            if r["experiment"] == e.name
        }
        out.append(ExperimentModel(**dataclasses.asdict(e), observed=observed))
    return ExperimentPage(items=out, next_page_token=token)


# ---------------------------------------------------------------------------------------------- keys


def _key_model(k: ApiKey) -> KeyModel:
    return KeyModel.model_validate(k, from_attributes=True)


@v1.post("/keys", status_code=201, responses=error_responses(*BODY), tags=["keys"])
def create_key(body: KeyCreateRequest, key: AdminKey, state: StateDep) -> KeyCreateResponse:
    """Create a key in the caller's project; the secret is in this answer only."""
    created, secret = create_api_key(state.store, body.name, key.project, body.scopes, body.role)
    return KeyCreateResponse(**_key_model(created).model_dump(), secret=secret)


@v1.get("/keys", tags=["keys"], responses=error_responses(400, 422))
def list_keys(
    key: AdminKey, state: StateDep, limit: PageSize = DEFAULT_PAGE_SIZE, page_token: PageToken = None
) -> KeyPage:
    """The project's active keys (never their secrets), oldest first, a page at a time."""
    keys = list_api_keys(state.store, key.project)
    shown, token = page(keys, lambda k: (k.created_at.isoformat(), k.id), "keys", page_token, limit)
    return KeyPage(items=[_key_model(k) for k in shown], next_page_token=token)


@v1.delete("/keys/{key_id}", responses=error_responses(404), tags=["keys"])
def revoke_key(key_id: str, key: AdminKey, state: StateDep) -> KeyModel:
    """Revoke a key of the project (other workers stop accepting it within `key_cache_seconds`)."""
    try:
        revoked = revoke_api_key(state.store, key_id, key.project)
    except ApiKeyError as err:
        raise HTTPException(404, str(err)) from None
    state.keys.clear()
    return _key_model(revoked)


# ------------------------------------------------------------------------------------------ operations


@router.get("/healthz", tags=["operations"], responses=error_responses(503))
def healthz(state: StateDep) -> dict[str, str]:
    """Liveness and store reachability (no key needed)."""
    try:
        with state.store.engine.connect() as conn:
            conn.execute(text("select 1"))
    except Exception as err:
        raise HTTPException(503, f"store unreachable: {type(err).__name__}") from None
    return {"status": "ok", "store": state.store.dialect}


@router.get("/metrics", tags=["operations"], response_class=Response)
def metrics(state: StateDep) -> Response:
    """Prometheus metrics: requests and latency per route, decisions (by variant and source), feedback,
    review queue moves — aggregated over projects, so that no key is needed and no project's policy
    names are shown."""
    return Response(generate_latest(state.metrics.exposition_registry()), media_type=CONTENT_TYPE_LATEST)
