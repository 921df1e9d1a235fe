"""``rewardloop runs list|show``: the TrainingRuns the store recorded (every learner records one)."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer
from rich.table import Table

from rewardloop.cli.common import (
    ConfigOption,
    JsonFlag,
    console,
    fail,
    not_found,
    open_store,
    print_json,
    project,
)

if TYPE_CHECKING:
    from rewardloop.types import TrainingRun

app = typer.Typer(help="Training runs: what was trained on what data, with which config, and how it went.")

#: The shortest run-id prefix ``runs show`` accepts (``train`` prints the whole id).
MIN_PREFIX = 6


def run_to_dict(run: TrainingRun) -> dict[str, Any]:
    """A run as JSON-ready data (times as ISO-8601 text, the window as ``[start, end]``)."""
    out = dataclasses.asdict(run)
    out["data_window"] = [t.isoformat() if t is not None else None for t in run.data_window]
    for key in ("started_at", "finished_at"):
        out[key] = out[key].isoformat() if out[key] is not None else None
    return out


def _seconds(run: TrainingRun) -> str:
    if run.finished_at is None:
        return "-"
    return f"{(run.finished_at - run.started_at).total_seconds():.1f}"


@app.command("list")
def list_cmd(
    policy: Annotated[str | None, typer.Option("--policy", "-p", help="only this policy")] = None,
    learner: Annotated[str | None, typer.Option(help="only this learner")] = None,
    status: Annotated[
        Literal["running", "succeeded", "failed"] | None, typer.Option(help="only runs in this state")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="the newest N runs")] = 50,
    as_json: JsonFlag = False,
    config: ConfigOption = None,
) -> None:
    """The newest training runs first: id, policy, learner, status, examples, seconds, main metrics."""
    from rewardloop.store import read_runs

    store = open_store(project(config))
    try:
        runs = [r for r in read_runs(store, policy=policy, learner=learner) if status in (None, r.status)]
    finally:
        store.close()
    runs = runs[::-1][:limit]
    if as_json:
        print_json({"items": [run_to_dict(r) for r in runs]})
        return
    if not runs:
        console.print("no training runs" + (f" of {policy}" if policy else ""))
        return
    table = Table("run", "policy", "learner", "status", "started", "examples", "seconds", "metrics")
    for r in runs:
        shown = {k: v for k, v in r.metrics.items() if not k.startswith(("skipped/", "seconds", "n_samples"))}
        metrics = ", ".join(f"{k}={v:.4g}" for k, v in list(shown.items())[:3])
        table.add_row(
            r.id,
            r.policy,
            r.learner,
            r.status,
            f"{r.started_at:%Y-%m-%d %H:%M}",
            str(r.n_samples),
            _seconds(r),
            metrics,
        )
    console.print(table)


def find_run(runs: list[TrainingRun], ref: str) -> TrainingRun:
    """The run whose id is ``ref`` or starts with it (at least :data:`MIN_PREFIX` characters)."""
    exact = [r for r in runs if r.id == ref]
    if exact:
        return exact[0]
    if len(ref) < MIN_PREFIX:
        raise not_found(
            f"run: no run {ref!r} (give the id, or at least {MIN_PREFIX} of its first characters)"
        )
    matches = [r for r in runs if r.id.startswith(ref)]
    if not matches:
        raise not_found(f"run: no run {ref!r} (see `rewardloop runs list`)")
    if len(matches) > 1:
        raise fail(f"run: {ref!r} is the start of {len(matches)} run ids; give more of it")
    return matches[0]


@app.command("show")
def show_cmd(
    run_id: Annotated[str, typer.Argument(help="the run's id (or its first characters)")],
    as_json: JsonFlag = False,
    config: ConfigOption = None,
) -> None:
    """One run: its config, data window, examples, every metric, the artifact and its status."""
    from rewardloop.store import read_runs

    store = open_store(project(config))
    try:
        run = find_run(read_runs(store), run_id)
    finally:
        store.close()
    if as_json:
        print_json(run_to_dict(run))
        return
    start, end = run.data_window
    console.print(f"[bold]run[/bold] {run.id}  {run.status}", highlight=False)
    console.print(f"  policy    {run.policy}\n  learner   {run.learner}", highlight=False)
    console.print(
        f"  started   {run.started_at.isoformat()}  finished {run.finished_at or '-'}", highlight=False
    )
    console.print(f"  window    {start or '-'} .. {end or '-'}\n  examples  {run.n_samples}", highlight=False)
    console.print(f"  artifact  {run.artifact_path or '-'}", highlight=False)
    for key, value in sorted(run.metrics.items()):
        console.print(f"  {key}: {value:g}", highlight=False)
    training = run.config.get("training", {})
    if isinstance(training, dict) and training.get("from_labels"):
        console.print(f"  from labels  {training['from_labels']}", highlight=False)
