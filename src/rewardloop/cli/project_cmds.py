"""Project commands: ``init``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy.engine import make_url

from rewardloop.cli.common import console, fail, project
from rewardloop.config import DEFAULT_PATH
from rewardloop.config.template import render_template
from rewardloop.store import Store


def init(
    directory: Annotated[Path, typer.Option("--dir", help="folder for rewardloop.yaml")] = Path("."),
    store_url: Annotated[
        str | None, typer.Option("--store-url", help="database URL (default: SQLite file rewardloop.db)")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="overwrite an existing rewardloop.yaml")] = False,
) -> None:
    """Write a commented rewardloop.yaml and create (or migrate) the database it names."""
    path = directory / DEFAULT_PATH
    if path.exists() and not force:
        console.print(f"{path} exists; keeping it (use --force to overwrite)")
    else:
        directory.mkdir(parents=True, exist_ok=True)
        path.write_text(render_template(store_url))
        console.print(f"wrote {path}")
    cfg = project(path)
    url = cfg.store.url
    try:
        store = Store.open(url)
    except Exception as err:
        raise fail(
            f"store.url: cannot open {make_url(url).render_as_string(hide_password=True)}: {err}"
        ) from None
    store.close()
    console.print(f"database ready at {make_url(url).render_as_string(hide_password=True)} (schema at head)")


def register(app: typer.Typer) -> None:
    app.command()(init)
