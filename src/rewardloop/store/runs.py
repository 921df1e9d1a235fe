"""TrainingRun rows: what was trained on what data, with which config, and how it went."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import UTC, datetime

from sqlalchemy import select, update

from rewardloop.store.engine import Store
from rewardloop.store.tables import TrainingRunRow
from rewardloop.types import TrainingRun, utcnow


def _aware(t: datetime | None) -> datetime | None:
    return None if t is None else (t if t.tzinfo else t.replace(tzinfo=UTC))


def start_run(store: Store, run: TrainingRun) -> TrainingRun:
    """Record a run as started (status ``running``); returns it."""
    with store.session() as s:
        s.add(
            TrainingRunRow(
                id=run.id,
                policy=run.policy,
                learner=run.learner,
                config=dict(run.config),
                window_start=run.data_window[0],
                window_end=run.data_window[1],
                n_samples=run.n_samples,
                metrics=dict(run.metrics),
                artifact_path=run.artifact_path,
                status=run.status,
                started_at=run.started_at,
                finished_at=run.finished_at,
            )
        )
    return run


def finish_run(
    store: Store,
    run: TrainingRun,
    metrics: Mapping[str, float],
    artifact_path: str | None = None,
    status: str = "succeeded",
) -> TrainingRun:
    """Record a run's outcome (``succeeded`` or ``failed``) with its metrics and artifact."""
    done = dataclasses.replace(
        run,
        metrics=dict(metrics),
        artifact_path=artifact_path or run.artifact_path,
        status=status,  # type: ignore[arg-type]
        finished_at=utcnow(),
    )
    with store.session() as s:
        s.execute(
            update(TrainingRunRow)
            .where(TrainingRunRow.id == run.id)
            .values(
                metrics=dict(done.metrics),
                artifact_path=done.artifact_path,
                status=done.status,
                finished_at=done.finished_at,
            )
        )
    return done


def _from_row(r: TrainingRunRow) -> TrainingRun:
    return TrainingRun(
        id=r.id,
        policy=r.policy,
        learner=r.learner,
        config=r.config or {},
        data_window=(_aware(r.window_start), _aware(r.window_end)),
        n_samples=r.n_samples,
        metrics=r.metrics or {},
        artifact_path=r.artifact_path,
        status=r.status,  # type: ignore[arg-type]
        started_at=_aware(r.started_at),  # type: ignore[arg-type]
        finished_at=_aware(r.finished_at),
    )


def read_runs(store: Store, policy: str | None = None, learner: str | None = None) -> list[TrainingRun]:
    """Training runs, oldest first."""
    query = select(TrainingRunRow).order_by(TrainingRunRow.started_at)
    if policy is not None:
        query = query.where(TrainingRunRow.policy == policy)
    if learner is not None:
        query = query.where(TrainingRunRow.learner == learner)
    with store.session() as s:
        return [_from_row(r) for r in s.scalars(query)]


def get_run(store: Store, run_id: str) -> TrainingRun | None:
    with store.session() as s:
        row = s.get(TrainingRunRow, run_id)
        return _from_row(row) if row is not None else None


__all__ = ["finish_run", "get_run", "read_runs", "start_run"]
