"""What every command shares: the console, the project config, the store, and clean error exits."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from rewardloop.config import ComputeConfig, ConfigError, ProjectConfig, load_config

if TYPE_CHECKING:  # the store (SQLAlchemy) is imported by the commands that open one, not by --help
    from rewardloop.registry import Registry
    from rewardloop.store import Store

console = Console(soft_wrap=True)  # long lines stay whole in logs and pipes
err_console = Console(stderr=True)

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
    str | None,
    typer.Option("--backend", help="where the job runs: local or ray (default: compute.backend)"),
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
Sets = Annotated[
    list[str] | None,
    typer.Option("--set", "-s", help="override a config key, e.g. --set training.lr=1e-5 (repeatable)"),
]
KeyEnv = Annotated[
    str | None,
    typer.Option(
        "--key-env", help="environment variable holding the endpoints' API key (e.g. OPENAI_API_KEY)"
    ),
]
Since = Annotated[str | None, typer.Option(help="only decisions logged at or after this ISO time")]
Until = Annotated[str | None, typer.Option(help="only decisions logged before this ISO time")]


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print ``message`` in red to stderr; raise the returned Exit to stop with ``code``."""
    err_console.print(f"[red]error:[/red] {message}", highlight=False)
    return typer.Exit(code)


def compute_config(cfg: ProjectConfig, backend: str | None, ray_address: str | None) -> ComputeConfig:
    """``cfg.compute`` with the ``--backend`` and ``--ray-address`` given; a bad backend is an error."""
    if backend not in (None, "local", "ray"):
        raise fail(f"--backend: must be local or ray, got {backend!r}")
    updates = {"backend": backend, "ray_address": ray_address}
    return cfg.compute.model_copy(update={k: v for k, v in updates.items() if v is not None})


def project(config: Path | None) -> ProjectConfig:
    try:
        cfg = load_config(config)
    except ConfigError as err:
        raise fail(str(err)) from None
    from rewardloop.encoders.minilm import set_default_backend  # no torch: the encoder loads lazily

    set_default_backend(cfg.encoder.backend)
    return cfg


def open_store(cfg: ProjectConfig) -> Store:
    from rewardloop.store import Store

    return Store.open(cfg.store.url, echo=cfg.store.echo, max_actions=cfg.store.max_actions)


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
    """Turn the given (user-facing) exceptions into a clean error line and exit code 2."""
    try:
        yield
    except kinds as err:
        raise fail(str(err)) from None
