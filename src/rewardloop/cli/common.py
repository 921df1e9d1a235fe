"""What every command shares: the console, the project config, the store, and clean error exits.

Exit codes, the same for every command (:class:`ExitCode`): 0 success, 1 a check failed (the gate, the
monitor's alerts), 2 usage (a bad option, value or file content), 3 not found (a file, policy, version,
alias, experiment, key or run that does not exist), 4 a store or runtime error. A command raises
``fail(message, code)``; :func:`errors_as_messages` and the top-level group map exceptions to codes
with :func:`exit_code_for`, so a command never picks a number by hand.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, date, datetime
from enum import IntEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from rewardloop.config import ComputeConfig, ConfigError, ProjectConfig, load_config

if TYPE_CHECKING:  # the store (SQLAlchemy) is imported by the commands that open one, not by --help
    from rewardloop.registry import Registry
    from rewardloop.store import Store
    from rewardloop.types import TimeWindow


def _console(stderr: bool = False) -> Console:
    """A console that wraps at the terminal's width on a TTY and not at all on a pipe or file: a line
    of a log or of ``| grep`` stays whole (tables take a wide width rather than 80 columns)."""
    stream = sys.stderr if stderr else sys.stdout
    tty = stream.isatty()
    return Console(stderr=stderr, soft_wrap=True, width=None if tty else 10_000)


console = _console()
err_console = _console(stderr=True)


class ExitCode(IntEnum):
    """The exit status of every command."""

    OK = 0
    CHECK_FAILED = 1  # the gate or the monitor found a failed check
    USAGE = 2  # a bad option, value or input file
    NOT_FOUND = 3  # a file, policy, version, alias, experiment, key or run that does not exist
    RUNTIME = 4  # the store could not be opened or written, or the work itself failed


JsonFlag = Annotated[
    bool, typer.Option("--json", help="print JSON (one document) instead of text, for scripts")
]

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="project file (default: ./rewardloop.yaml, else built-in defaults)"),
]

Actor = Annotated[
    str | None,
    typer.Option("--actor", help="who does this, for the history (your OS user name is recorded with it)"),
]
Project = Annotated[
    str,
    typer.Option(
        "--project",
        help="the project the policy belongs to (set by its first registration; the service's keys of "
        "this project see it)",
    ),
]
ComputeOption = Annotated[
    Literal["local", "ray"] | None,
    typer.Option("--backend", help="where the job runs (default: compute.backend)"),
]
RayAddress = Annotated[
    str | None,
    typer.Option(
        "--ray-address", help="Ray cluster to join, e.g. ray://head:10001 (default: compute.ray_address)"
    ),
]
Sets = Annotated[
    list[str] | None,
    typer.Option("--set", "-s", help="override a config key, e.g. --set training.lr=1e-5 (repeatable)"),
]
Reason = Annotated[str, typer.Option("--reason", "-m", help="why, for the history")]
KeyEnv = Annotated[
    str | None,
    typer.Option(
        "--key-env", help="environment variable holding the endpoints' API key (e.g. OPENAI_API_KEY)"
    ),
]
Since = Annotated[str | None, typer.Option(help="only decisions logged at or after this ISO time")]
Until = Annotated[str | None, typer.Option(help="only decisions logged before this ISO time")]


def parse_time(value: str | None, option: str) -> datetime | None:
    """An ISO-8601 option value (``Z`` or an offset; a naive time is UTC, as in the store), or None."""
    if value is None:
        return None
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        raise fail(
            f"{option}: not an ISO time (e.g. 2026-03-01 or 2026-03-01T12:00Z), got {value!r}"
        ) from None
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


def window_option(since: str | None, until: str | None) -> TimeWindow:
    """The ``--since``/``--until`` options as a window; a usage error naming the option otherwise."""
    from rewardloop.types import RecordError, TimeWindow  # numpy: not for --help

    try:
        return TimeWindow(parse_time(since, "--since"), parse_time(until, "--until"))
    except RecordError as err:
        raise fail(f"--{err.field}: {err.reason}") from None


def fail(message: str, code: ExitCode = ExitCode.USAGE) -> typer.Exit:
    """Print ``message`` after a red ``error:`` on stderr; raise the returned Exit to stop with
    ``code``. The message is text, never markup: ``[ray]`` or a logged value in brackets stays as is."""
    err_console.print(f"[red]error:[/red] {escape(message)}", highlight=False, markup=True)
    return typer.Exit(int(code))


def not_found(message: str) -> typer.Exit:
    """``fail(message, ExitCode.NOT_FOUND)``."""
    return fail(message, ExitCode.NOT_FOUND)


def exit_code_for(err: BaseException) -> ExitCode:
    """The exit code of an exception that reached a command: missing things (``LookupError``, such as
    the registry's and key store's not-found errors, and ``FileNotFoundError``) are 3; the store's and
    the operating system's errors (and SQLAlchemy's) are 4; a refused value (``ValueError``) is 2.

    >>> exit_code_for(KeyError("x")), exit_code_for(ValueError("x")), exit_code_for(OSError("x"))
    (<ExitCode.NOT_FOUND: 3>, <ExitCode.USAGE: 2>, <ExitCode.RUNTIME: 4>)
    """
    if isinstance(err, LookupError | FileNotFoundError) or getattr(err, "kind", None) == "not_found":
        return ExitCode.NOT_FOUND  # the store's void and review errors carry a kind
    if isinstance(err, ValueError):
        return ExitCode.USAGE
    return ExitCode.RUNTIME


def plain(data: Any) -> Any:
    """``data`` as JSON-ready values: dataclasses as objects, times as ISO-8601, tuples and sets as lists,
    numpy scalars as numbers, NaN and infinities as null.

    >>> from datetime import UTC
    >>> plain({"t": datetime(2026, 1, 2, tzinfo=UTC), "xs": (1, float("nan"))})
    {'t': '2026-01-02T00:00:00+00:00', 'xs': [1, None]}
    """
    if dataclasses.is_dataclass(data) and not isinstance(data, type):
        return {f.name: plain(getattr(data, f.name)) for f in dataclasses.fields(data)}
    if isinstance(data, Mapping):
        return {str(k): plain(v) for k, v in data.items()}
    if isinstance(data, list | tuple | set | frozenset):
        return [plain(v) for v in data]
    if isinstance(data, datetime | date):
        return data.isoformat()
    if isinstance(data, Path):
        return str(data)
    if hasattr(data, "item") and callable(data.item):  # a numpy scalar
        data = data.item()
    if isinstance(data, float) and not math.isfinite(data):
        return None  # JSON has no NaN or infinity
    return data


def print_json(data: Any) -> None:
    """``data`` (see :func:`plain`) as one JSON document on stdout (``--json``): never wrapped, no
    colour, nothing else on stdout."""
    sys.stdout.write(json.dumps(plain(data), indent=2, default=str, ensure_ascii=False) + "\n")


def compute_config(cfg: ProjectConfig, backend: str | None, ray_address: str | None) -> ComputeConfig:
    """``cfg.compute`` with the ``--backend`` and ``--ray-address`` given (``--backend`` is a choice)."""
    updates = {"backend": backend, "ray_address": ray_address}
    return cfg.compute.model_copy(update={k: v for k, v in updates.items() if v is not None})


def project(config: Path | None) -> ProjectConfig:
    try:
        cfg = load_config(config)
    except ConfigError as err:
        raise fail(str(err), exit_code_for(err)) from None
    from rewardloop.encoders.minilm import set_default_backend  # no torch: the encoder loads lazily

    set_default_backend(cfg.encoder.backend)
    return cfg


def open_store(cfg: ProjectConfig) -> Store:
    """The project's store (migrated to head); one that cannot be opened exits 4, naming the URL
    without its password."""
    from sqlalchemy import make_url

    from rewardloop.store import Store

    try:
        return Store.open(cfg.store.url, echo=cfg.store.echo, max_actions=cfg.store.max_actions)
    except Exception as err:
        shown = make_url(cfg.store.url).render_as_string(hide_password=True)
        raise fail(f"store.url: cannot open {shown}: {err}", ExitCode.RUNTIME) from None


def open_registry(cfg: ProjectConfig, project_name: str) -> tuple[Store, Registry]:
    """The project's store and its policy registry (``experiments.registry_root``), seen as the
    project ``project_name``."""
    from rewardloop.registry import Registry

    store = open_store(cfg)
    root, keep = cfg.experiments.registry_root, cfg.experiments.keep_last
    return store, Registry(store, root, keep_last=keep, project=project_name)


def progress() -> Progress:
    """A progress bar for long work (rows, steps); transient so that summaries stay readable."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
        # On a pipe or in CI a redrawn bar is noise; the summary line says what happened.
        disable=not err_console.is_terminal,
    )


@contextmanager
def errors_as_messages(*kinds: type[Exception]) -> Iterator[None]:
    """Turn the given (user-facing) exceptions into a clean error line and the exit code
    :func:`exit_code_for` gives (3 for a missing thing, 2 for a refused value, 4 otherwise)."""
    try:
        yield
    except kinds as err:
        raise fail(str(err), exit_code_for(err)) from None
