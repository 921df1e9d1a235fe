"""TrainingRun rows: what was trained on what data, with which config, and how it went."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from sqlalchemy import select, update

from rewardloop.store.engine import Store
from rewardloop.store.rows import aware, read_records, record_from_row, row_values
from rewardloop.store.tables import TrainingRunRow
from rewardloop.types import TrainingRun, utcnow


def start_run(store: Store, run: TrainingRun) -> TrainingRun:
    """Record a run as started (status ``running``); returns it."""
    with store.session() as s:
        values = row_values(run)
        values["window_start"], values["window_end"] = values.pop("data_window")
        s.add(TrainingRunRow(**values))
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
    window = (aware(r.window_start), aware(r.window_end))
    return record_from_row(TrainingRun, r, config=r.config or {}, metrics=r.metrics or {}, data_window=window)


def read_runs(store: Store, policy: str | None = None, learner: str | None = None) -> list[TrainingRun]:
    """Training runs, oldest first."""
    query = select(TrainingRunRow).order_by(TrainingRunRow.started_at)
    return read_records(
        store, query, _from_row, (TrainingRunRow.policy, policy), (TrainingRunRow.learner, learner)
    )


def get_run(store: Store, run_id: str) -> TrainingRun | None:
    with store.session() as s:
        row = s.get(TrainingRunRow, run_id)
        return _from_row(row) if row is not None else None


__all__ = ["finish_run", "get_run", "read_runs", "start_run"]
