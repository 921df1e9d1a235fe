"""Project-scoped reads for the service: which project a decision or policy belongs to, recent
decisions with their feedback for the dashboard, and the rows of an export.

A decision belongs to the project named by ``metadata["project"]``; a decision logged without one
belongs to :data:`DEFAULT_PROJECT`. The service stamps the caller's project on every decision it logs.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, String, and_, func, select

from rewardloop.store.engine import Store
from rewardloop.store.repository import decision_from_row, feedback_from_row, time_window
from rewardloop.store.tables import DecisionRow, FeedbackRow, RewardRow
from rewardloop.types import DecisionBatch, Feedback, TimeWindow, to_utc

DEFAULT_PROJECT = "default"

#: Ids per ``IN (...)`` list.
_CHUNK = 5000


def project_of_decision() -> ColumnElement[str]:
    """SQL expression: the project of a row of ``decisions`` (JSON ``meta.project``, else the default)."""
    return func.coalesce(DecisionRow.meta["project"].as_string(), DEFAULT_PROJECT, type_=String)


def decision_projects(store: Store, ids: Iterable[str]) -> dict[str, str]:
    """For each id that is a stored decision, its project (ids not stored are absent)."""
    wanted = list(dict.fromkeys(ids))
    found: dict[str, str] = {}
    with store.engine.connect() as conn:
        for start in range(0, len(wanted), _CHUNK):
            chunk = wanted[start : start + _CHUNK]
            query = select(DecisionRow.id, project_of_decision()).where(DecisionRow.id.in_(chunk))
            found.update({i: p for i, p in conn.execute(query)})
    return found


def project_of_policy(store: Store, policy: str) -> str | None:
    """The project of the policy's first logged decision, or None when it has logged none."""
    query = (
        select(project_of_decision())
        .where(DecisionRow.policy == policy)
        .order_by(DecisionRow.created_at)
        .limit(1)
    )
    with store.engine.connect() as conn:
        return conn.scalar(query)


def policies_of_project(store: Store, project: str, policy: str | None = None) -> list[str]:
    """The policies that logged decisions for ``project``, by name; with ``policy``, that policy's
    versions instead (the dashboard's version selector)."""
    column = DecisionRow.policy if policy is None else DecisionRow.policy_version
    query = select(column).where(project_of_decision() == project).group_by(column).order_by(column)
    if policy is not None:
        query = query.where(DecisionRow.policy == policy)
    with store.engine.connect() as conn:
        return list(conn.scalars(query))


def recent_decisions(
    store: Store,
    project: str,
    *,
    limit: int = 20_000,
    policy: str | None = None,
    since: datetime | None = None,
) -> DecisionBatch:
    """The project's most recent decisions (up to ``limit``, oldest first) with their feedback."""
    conds: list[Any] = [
        project_of_decision() == project,
        *time_window(store, DecisionRow.created_at, TimeWindow(since)),
    ]
    if policy is not None:
        conds.append(DecisionRow.policy == policy)
    query = (
        select(DecisionRow.__table__)
        .where(and_(*conds))
        .order_by(DecisionRow.created_at.desc(), DecisionRow.id.desc())
        .limit(limit)
    )
    with store.engine.connect() as conn:
        decisions = [decision_from_row(r) for r in conn.execute(query)]
        decisions.reverse()
        feedback: dict[str, list[Feedback]] = {}
        ids = [d.id for d in decisions]
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            fq = (
                select(FeedbackRow.__table__)
                .where(FeedbackRow.decision_id.in_(chunk))
                .order_by(FeedbackRow.created_at, FeedbackRow.id)
            )
            for r in conn.execute(fq):
                feedback.setdefault(r.decision_id, []).append(feedback_from_row(r))
    return DecisionBatch(decisions, feedback)


def rewards_of_decisions(store: Store, ids: Iterable[str]) -> dict[tuple[str, int], dict[str, float]]:
    """The compiled rewards of these decisions: ``{(spec, spec_version): {decision_id: value}}``."""
    wanted = list(dict.fromkeys(ids))
    out: dict[tuple[str, int], dict[str, float]] = {}
    with store.engine.connect() as conn:
        for start in range(0, len(wanted), _CHUNK):
            chunk = wanted[start : start + _CHUNK]
            query = select(RewardRow.spec, RewardRow.spec_version, RewardRow.decision_id, RewardRow.value)
            for spec, version, decision_id, value in conn.execute(
                query.where(RewardRow.decision_id.in_(chunk))
            ):
                out.setdefault((spec, int(version)), {})[decision_id] = float(value)
    return out


#: The columns of an export row, in order: the feedback, then the decision it is about; each with the
#: stored column it is read from.
_EXPORTED: dict[str, Any] = {
    "feedback_id": FeedbackRow.id,
    "decision_id": FeedbackRow.decision_id,
    "feedback_kind": FeedbackRow.kind,
    "value": FeedbackRow.value,
    "scale_low": FeedbackRow.scale_low,
    "scale_high": FeedbackRow.scale_high,
    "label": FeedbackRow.label,
    "preferred": FeedbackRow.preferred,
    "rejected": FeedbackRow.rejected,
    "scores": FeedbackRow.scores,
    "rater_id": FeedbackRow.rater_id,
    "authority": FeedbackRow.authority,
    "source": FeedbackRow.source,
    "comment": FeedbackRow.comment,
    "feedback_at": FeedbackRow.created_at,
    "policy": DecisionRow.policy,
    "policy_version": DecisionRow.policy_version,
    "decision_kind": DecisionRow.kind,
    "action": DecisionRow.action,
    "confidence": DecisionRow.confidence,
    "pscore": DecisionRow.pscore,
    "text": DecisionRow.text,
    "experiment": DecisionRow.experiment,
    "variant": DecisionRow.variant,
    "decided_at": DecisionRow.created_at,
}
EXPORT_COLUMNS = tuple(_EXPORTED)


def export_rows(
    store: Store,
    project: str,
    *,
    policy: str | None = None,
    window: TimeWindow = TimeWindow(),
    batch_size: int = 2000,
) -> Iterator[dict[str, Any]]:
    """Feedback rows of the project's decisions joined with their decision, oldest feedback first.

    ``window`` bounds the feedback's own time. Rows stream in batches, so an export
    of millions of rows holds only ``batch_size`` of them in memory.
    """
    f, d = FeedbackRow, DecisionRow
    conds: list[Any] = [project_of_decision() == project, *time_window(store, f.created_at, window)]
    if policy is not None:
        conds.append(d.policy == policy)
    query = (
        select(*_EXPORTED.values())
        .join(d, d.id == f.decision_id)
        .where(and_(*conds))
        .order_by(f.created_at, f.id)
    )
    with store.engine.connect() as conn:
        result = conn.execution_options(yield_per=batch_size).execute(query)
        for row in result:
            out = dict(zip(EXPORT_COLUMNS, row, strict=True))
            for key in ("feedback_at", "decided_at"):
                t = to_utc(out[key])
                out[key] = t.isoformat() if t is not None else None
            yield out


__all__ = [
    "DEFAULT_PROJECT",
    "EXPORT_COLUMNS",
    "decision_projects",
    "export_rows",
    "policies_of_project",
    "project_of_decision",
    "project_of_policy",
    "recent_decisions",
    "rewards_of_decisions",
]
