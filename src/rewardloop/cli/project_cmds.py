"""Project and data commands: ``init``, ``import`` (alias ``log``), ``stats``, ``export``."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer

from rewardloop.cli.common import (
    ConfigOption,
    JsonFlag,
    Since,
    Until,
    console,
    exit_code_for,
    fail,
    not_found,
    open_store,
    plain,
    print_json,
    progress,
    project,
    window_option,
)
from rewardloop.config import DEFAULT_PATH

if TYPE_CHECKING:  # the store (SQLAlchemy, pyarrow) is imported by the commands, not by --help
    from rewardloop.types import RecordError


class RecordKind(StrEnum):
    decisions = "decisions"
    feedback = "feedback"


class View(StrEnum):
    rows = "rows"
    openai = "openai"
    pairs = "pairs"
    dsjson = "dsjson"
    sft = "sft"
    dpo = "dpo"
    kto = "kto"


#: What each view's rows are, for the summary line.
_VIEW_ROWS = {
    "rows": "decision rows",
    "openai": "chat examples",
    "pairs": "preference pairs",
    "dsjson": "DSJSON events",
    "sft": "SFT conversations",
    "dpo": "DPO preference rows",
    "kto": "KTO rows",
}


def init(
    directory: Annotated[Path, typer.Option("--dir", help="folder for rewardloop.yaml")] = Path("."),
    store_url: Annotated[
        str | None, typer.Option("--store-url", help="database URL (default: SQLite file rewardloop.db)")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="overwrite an existing rewardloop.yaml")] = False,
) -> None:
    """Write a commented rewardloop.yaml and create (or migrate) the database it names."""
    from sqlalchemy.engine import make_url

    from rewardloop.config.template import render_template

    path = directory / DEFAULT_PATH
    if path.exists() and not force:
        console.print(f"{path} exists; keeping it (use --force to overwrite)")
    else:
        directory.mkdir(parents=True, exist_ok=True)
        from rewardloop.learners import learner_options  # torch: only when init runs

        path.write_text(render_template(store_url, learner_options()))
        console.print(f"wrote {path}")
    cfg = project(path)
    shown = make_url(cfg.store.url).render_as_string(hide_password=True)
    open_store(cfg).close()
    console.print(f"database ready at {shown} (schema at head)")


def import_records(
    kind: Annotated[RecordKind, typer.Argument(help="what the file holds: decisions or feedback")],
    file: Annotated[
        str, typer.Argument(help="a .jsonl, .csv or .parquet file, or - for JSON lines on stdin")
    ],
    fmt: Annotated[
        Literal["jsonl", "csv", "parquet", "dsjson"] | None,
        typer.Option(
            "--format",
            help="default: by the suffix; dsjson: VW / Personalizer joined events (decisions and their "
            "rewards; needs --policy)",
        ),
    ] = None,
    skip_invalid: Annotated[
        bool, typer.Option("--skip-invalid", help="write the valid rows and report the invalid ones")
    ] = False,
    policy: Annotated[str | None, typer.Option(help="with --format dsjson: the events' policy")] = None,
    estimate: Annotated[
        bool,
        typer.Option(
            "--estimate-propensities",
            help="decisions without action_dist and pscore get them from a behaviour policy fitted on "
            "the file's contexts (features) and actions, marked metadata.propensity=estimated:...",
        ),
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Validate and store decisions or feedback from a file, all or nothing.

    Every row is checked (fields, limits, the decisions feedback refers to, a correction's labels)
    before anything is committed: with one bad row nothing is stored (each bad row is reported with its
    field), unless --skip-invalid. Rows without an id get one from their content, so importing the same
    file again stores nothing twice; rows already stored (same id or idempotency key, same body) are
    counted as duplicates. `created_at` is the time of the import; a time a row gives is kept as its
    `client_time`. With --estimate-propensities the file is read whole first and the overlap
    diagnostics of each fit are printed.
    """
    from rewardloop.store import BatchError
    from rewardloop.store.files import FileFormatError, count_rows, file_format, read_rows
    from rewardloop.store.imports import import_rows

    cfg = project(config)
    if fmt == "dsjson":
        _import_dsjson(kind, file, policy, skip_invalid, cfg)
        return
    try:
        if file == "-":
            path, fmt_ = Path("/dev/stdin"), file_format("-", "jsonl")
            total = None
        else:
            path = Path(file)
            if not path.exists():
                raise not_found(f"{file}: no such file")
            fmt_ = file_format(path, fmt)
            total = count_rows(path, fmt_)
        rows = read_rows(path, fmt_)
        if estimate:
            rows = iter(_estimated(kind, list(rows)))
        store = open_store(cfg)
        with progress() as bar:
            task = bar.add_task(f"importing {kind.value}", total=total)
            report = import_rows(
                store,
                kind.value,
                rows,
                skip_invalid=skip_invalid,
                on_rows=lambda n: bar.advance(task, n),
            )
    except FileFormatError as err:
        raise fail(str(err), exit_code_for(err)) from None
    except BatchError as err:
        raise _refused(err.errors, path, file, estimate) from None
    if report.invalid:
        _report_bad(report.invalid, path)
    console.print(
        f"{kind.value}: {report.written} stored, {report.duplicates} duplicates skipped, "
        f"{len(report.invalid)} invalid" + (" (skipped)" if report.invalid else "")
    )


def _refused(bad: list[RecordError], path: Path, file: str, estimate: bool) -> typer.Exit:
    """Report the invalid rows of a refused import (with a hint for rows without propensities)."""
    _report_bad(bad, path)
    unlogged = any(e.field in ("action_dist", "pscore") and "required" in e.reason for e in bad)
    hint = "; rows without propensities: --estimate-propensities" if unlogged and not estimate else ""
    return fail(
        f"{len(bad)} invalid row(s) in {file}; nothing was stored (--skip-invalid stores the rest{hint})"
    )


def _estimated(kind: RecordKind, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``--estimate-propensities``: the rows with the missing propensities estimated; what each fit saw."""
    from rewardloop.evaluation.ope._common import OPEInputError
    from rewardloop.evaluation.ope.propensity import impute_propensities

    if kind is not RecordKind.decisions:
        raise fail("--estimate-propensities: only for `import decisions`")
    try:
        groups = impute_propensities(rows)
    except OPEInputError as err:
        raise fail(f"--estimate-propensities: {err}; nothing was stored") from None
    for g in groups:
        d = g.diagnostics
        console.print(
            f"{g.policy}: estimated the propensities of {g.estimated} of {g.rows} decisions "
            f"(actions {', '.join(g.actions)}): log loss {d['log_loss']:.3f}, smallest propensity "
            f"{d['min_pscore']:.4f}, weak-overlap share {d['small_share']:.1%}, effective sample size "
            f"(uniform target) {d['ess_uniform']:.0f} of {g.rows}",
            highlight=False,
        )
        for warning in d["warnings"]:
            console.print(f"  [yellow]warning:[/yellow] {warning}", highlight=False)
    return rows


def _import_dsjson(kind: RecordKind, file: str, policy: str | None, skip_invalid: bool, cfg: Any) -> None:
    """``import decisions FILE --format dsjson --policy P``: the events and their rewards."""
    from rewardloop.store import BatchError
    from rewardloop.store.dsjson import import_dsjson
    from rewardloop.types import RecordError

    if kind is not RecordKind.decisions or policy is None:
        raise fail("--format dsjson: use `import decisions FILE --format dsjson --policy NAME`")
    path = Path("/dev/stdin" if file == "-" else file)
    if not path.exists():
        raise not_found(f"{file}: no such file")
    store = open_store(cfg)
    try:
        with path.open(encoding="utf-8") as lines:
            decisions, feedback = import_dsjson(store, lines, policy, skip_invalid=skip_invalid)
    except RecordError as err:
        raise fail(f"{path.name} {err}; nothing was stored") from None
    except BatchError as err:
        _report_bad(err.errors, path)
        raise fail(f"{len(err.errors)} invalid event(s) in {file}") from None
    for what, report in (("decisions", decisions), ("rewards", feedback)):
        console.print(f"{what}: {report.written} stored, {report.duplicates} duplicates skipped")


def _report_bad(bad: list[RecordError], path: Path) -> None:
    for err in bad[:20]:
        console.print(f"  [red]{path.name}[/red] {err}", highlight=False)
    if len(bad) > 20:
        console.print(f"  ... and {len(bad) - 20} more")


def stats(
    policy: Annotated[str | None, typer.Option(help="only this policy")] = None,
    as_json: JsonFlag = False,
    config: ConfigOption = None,
) -> None:
    """Counts per policy and version, feedback per kind, feedback coverage and exploration health."""
    from rich.table import Table

    from rewardloop.store import store_stats

    store = open_store(project(config))
    try:
        s = store_stats(store, policy)
    finally:
        store.close()
    if as_json:
        print_json({**plain(s), "decisions": s.decisions, "coverage": s.coverage})
        return
    table = Table(title="decisions per policy version")
    for col in ("policy", "version", "decisions", "with feedback", "propensity 1", "ESS (uniform)"):
        table.add_column(col, justify="right" if col not in ("policy", "version") else "left")
    for g in s.groups:
        warn = " [yellow]no exploration[/yellow]" if g.deterministic_share > 0.99 else ""
        table.add_row(
            g.policy,
            g.version,
            f"{g.decisions:,}",
            f"{g.with_feedback:,} ({g.with_feedback / g.decisions:.0%})",
            f"{g.deterministic_share:.1%}{warn}",
            f"{g.ess:,.0f}",
        )
    console.print(table)
    kinds = ", ".join(f"{k} {v:,}" for k, v in sorted(s.feedback_by_kind.items())) or "none"
    sources = ", ".join(f"{k} {v:,}" for k, v in sorted(s.feedback_by_source.items())) or "none"
    console.print(f"feedback by kind: {kinds}")
    console.print(f"feedback by source: {sources}")
    console.print(f"{s.decisions:,} decisions, feedback coverage {s.coverage:.1%}")
    if any(g.deterministic_share > 0.99 for g in s.groups):
        console.print(
            "[yellow]warning:[/yellow] a version logged (nearly) every decision with propensity 1: "
            "off-policy evaluation of other policies is impossible on those logs; log with exploration."
        )


def export(
    out: Annotated[
        Path, typer.Argument(help="output file: .jsonl, .csv or .parquet; a folder for --format hf")
    ],
    view: Annotated[
        View,
        typer.Option(
            help="rows: decisions + feedback; openai: chat fine-tuning; pairs; dsjson: VW / Personalizer; "
            "sft, dpo, kto: TRL's dataset shapes (messages; prompt, chosen, rejected; prompt, completion, "
            "label)"
        ),
    ] = (View.rows),
    fmt: Annotated[
        Literal["jsonl", "csv", "parquet", "hf"] | None,
        typer.Option(
            "--format", help="default: by the suffix; hf: a Hugging Face datasets folder (load_from_disk)"
        ),
    ] = None,
    policy: Annotated[str | None, typer.Option(help="only this policy")] = None,
    version: Annotated[str | None, typer.Option(help="only this policy version")] = None,
    since: Since = None,
    until: Until = None,
    config: ConfigOption = None,
) -> None:
    """Export stored decisions joined with their feedback (rows), as OpenAI chat fine-tuning JSONL
    (openai), as preference pairs (pairs), as DSJSON, or in TRL's SFT, DPO and KTO shapes; --format hf
    writes a Hugging Face datasets folder instead of a file."""
    from rewardloop.store.files import FileFormatError, file_format, write_rows
    from rewardloop.store.repository import iter_decisions

    view_rows = _view_rows(view.value)
    try:
        fmt_ = "hf" if fmt == "hf" else file_format(out, fmt)
    except FileFormatError as err:
        raise fail(str(err), exit_code_for(err)) from None
    if view is not View.rows and fmt_ not in ("jsonl", "hf"):
        raise fail(f"--view {view.value} writes JSON lines (or --format hf); name a .jsonl file")
    if fmt_ == "hf" and out.exists() and any(out.iterdir() if out.is_dir() else [out]):
        raise fail(f"{out}: exists; --format hf writes a new folder")
    window = window_option(since, until)
    store = open_store(project(config))
    pages = iter_decisions(
        store,
        policy=policy,
        version=version,
        since=window.since,
        until=window.until,
        include_feedback=True,
    )
    decisions = 0
    with progress() as bar:
        task = bar.add_task(f"writing {view.value}", total=None)

        def rows() -> Any:
            # One page of decisions (and its feedback) in memory at a time: exports of any size.
            nonlocal decisions
            for page in pages:
                yield from view_rows(page)
                decisions += len(page)
                bar.advance(task, len(page))

        n = _save_dataset(rows(), out) if fmt_ == "hf" else write_rows(rows(), out, fmt_)
    where = f"the datasets folder {out}" if fmt_ == "hf" else str(out)
    console.print(f"wrote {n:,} {_VIEW_ROWS[view.value]} from {decisions:,} decisions to {where}")


def _view_rows(view: str) -> Any:
    """The row builder of an export view: the store's (rows, openai, pairs, dsjson) or TRL's (sft, dpo,
    kto; built by the learners' example builders, so they import torch)."""
    from rewardloop.store.files import VIEWS

    if view in VIEWS:
        return VIEWS[view]
    from rewardloop.loop.exports import TRL_VIEWS

    return TRL_VIEWS[view]


def _save_dataset(rows: Any, out: Path) -> int:
    from rewardloop.loop.exports import DatasetExportError, save_dataset

    try:
        return save_dataset(rows, out)
    except DatasetExportError as err:
        raise fail(f"--format hf: {err}") from None


def register(app: typer.Typer) -> None:
    app.command()(init)
    app.command("import")(import_records)
    app.command("log", help="Same as `import`: store decisions or feedback from a file or stdin.")(
        import_records
    )
    app.command()(stats)
    app.command()(export)
