"""The ``rewardloop`` command."""

from __future__ import annotations

import typer

from rewardloop.cli import data, project_cmds
from rewardloop.cli import rewards as rewards_cmds

app = typer.Typer(
    name="rewardloop",
    help="Close the loop: log decisions, collect feedback, compile rewards, train, evaluate, gate, "
    "deploy and monitor. Start with `rewardloop init`, or `rewardloop demo` to watch the whole loop.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)

project_cmds.register(app)
app.add_typer(data.app, name="data")
# Sub-commands of later layers register here, one line each.
rewards_cmds.register(app)


if __name__ == "__main__":  # pragma: no cover
    app()
