"""``rewardloop contributors board|impact``: who gave the loop its feedback, and what it is worth.

``board`` reads: the leaderboard of a time range and each policy's newest impact measurement.
``impact`` measures: the training section's learner retrained without each of the top-k
contributors' feedback, scored on the golden set, every fit recorded as a TrainingRun
(:mod:`rewardloop.loop.contributions`). Run it on demand or from a scheduled job; ``board``, the
dashboard's contributors page and ``GET /v1/contributors`` only read its runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from rewardloop.cli.common import (
    ConfigOption,
    JsonFlag,
    Sets,
    Since,
    Until,
    console,
    open_store,
    print_json,
    project,
    window_option,
)

if TYPE_CHECKING:
    from rewardloop.loop.contributions import ContributorRow, ImpactReport

app = typer.Typer(
    help="Contributors: a leaderboard over a time range, and the measured impact of their feedback."
)

ProjectName = Annotated[str, typer.Option("--project", help="the project whose contributors to show")]


def share(r: dict[str, Any] | None) -> str:
    """A share as ``0.667 [0.208, 0.939] n=3`` (``-`` when there is nothing to measure)."""
    if r is None:
        return "-"
    return f"{r['value']:.3f} [{r['low']:.3f}, {r['high']:.3f}] n={r['n']}"


def difference(d: dict[str, Any] | None) -> str:
    if d is None:
        return "-"
    return f"{d['value']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}] n={d['n']} (+{d['fixed']}/-{d['broken']})"


def _board_table(rows: list[ContributorRow]) -> Table:
    table = Table("#", "contributor", "feedback", "corrections", "changed the model's answer", "decisions",
                  "reviews", "last")  # fmt: skip
    for r in rows:
        t = r.totals
        table.add_row(
            str(r.rank), t.rater, str(t.feedback), str(t.corrections), share(r.changed), str(t.decisions),
            str(t.reviews), t.last_at.strftime("%Y-%m-%d %H:%M"),
        )  # fmt: skip
    return table


def _print_impact(report: ImpactReport) -> None:
    console.print(
        f"[bold]impact on {report.policy}[/bold] (measured {report.measured_at:%Y-%m-%d %H:%M} UTC, "
        f"{report.learner}, reference run {report.reference_run[:12]}: {report.examples} examples, "
        f"golden accuracy {share(report.accuracy)})",
        highlight=False,
    )
    table = Table("contributor", "rows removed", "examples left", "golden accuracy without",
                  "impact (with − without)", "note")  # fmt: skip
    for i in report.contributors:
        examples = str(i.examples) if i.examples is not None else "-"
        table.add_row(
            i.contributor, str(i.removed), examples, share(i.accuracy), difference(i.delta), i.skipped or ""
        )
    console.print(table)


@app.command("board")
def board(
    project_name: ProjectName = "default",
    since: Since = None,
    until: Until = None,
    as_json: JsonFlag = False,
    config: ConfigOption = None,
) -> None:
    """The project's contributors in the range (feedback time), most feedback first, and each
    policy's newest impact measurement."""
    from rewardloop.loop.contributions import contributors_view

    window = window_option(since, until)
    store = open_store(project(config))
    try:
        view = contributors_view(store, project_name, window)
    finally:
        store.close()
    if as_json:
        print_json(view)
        return
    if not view.items:
        console.print(f"no human feedback in project {project_name!r} in the range")
    else:
        console.print(_board_table(view.items))
        console.print(
            "[dim]changed: the share of a contributor's label corrections naming another action than the "
            "model chose, with its Wilson 95% interval and n[/dim]"
        )
    for report in view.impact:
        _print_impact(report)
    if not view.impact:
        console.print("no impact measured yet: run `rewardloop contributors impact`")


@app.command("impact")
def impact(
    top_k: Annotated[
        int, typer.Option("--top-k", min=1, help="measure the k contributors with the most feedback")
    ] = 5,
    since: Since = None,
    until: Until = None,
    sets: Sets = None,
    as_json: JsonFlag = False,
    config: ConfigOption = None,
) -> None:
    """Retrain the training section's policy without each top-k contributor's feedback (same learner,
    config and seed), score every fit on evaluation.golden and record it as a TrainingRun: 1 + k fits."""
    from rewardloop.cli.train import fit_errors, resolve_project
    from rewardloop.loop.contributions import measure_impact

    cfg, base = resolve_project(config, sets or [], None)
    window = window_option(since, until)
    store = open_store(cfg)
    say = (lambda _m: None) if as_json else (lambda m: console.print(f"[dim]{m}[/dim]", highlight=False))
    try:
        with fit_errors():
            report = measure_impact(store, cfg, base, top_k=top_k, window=window, progress=say)
    finally:
        store.close()
    if as_json:
        print_json(report)
        return
    _print_impact(report)


def measure_after_iteration(cfg: Any, store: Any, base: Any, top_k: int) -> None:
    """``loop run --impact-top-k``: measure after an iteration and print it; a measurement that cannot
    run (no golden set, too little data, not a classifier's label learner) is a warning, not the
    loop's failure."""
    from rewardloop.loop.contributions import measure_impact
    from rewardloop.loop.training import TrainingError

    try:
        report = measure_impact(store, cfg, base, top_k=top_k)
    except TrainingError as err:
        console.print(f"[yellow]contributors' impact not measured[/yellow]: {err}", highlight=False)
        return
    _print_impact(report)
