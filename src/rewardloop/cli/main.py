"""The ``rewardloop`` command."""

from __future__ import annotations

import typer

from rewardloop.cli import (
    data,
    demo,
    evaluate,
    experiment,
    feedback_cmds,
    loop_cmds,
    policies,
    project_cmds,
    router,
    serve,
    train,
)
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
rewards_cmds.register(app)
train.register(app)
evaluate.register(app)
app.add_typer(policies.app, name="policies")
app.add_typer(experiment.app, name="experiment")
app.add_typer(feedback_cmds.app, name="feedback")
app.add_typer(router.app, name="router")
serve.register(app)
demo.register(app)
app.add_typer(loop_cmds.app, name="loop")


if __name__ == "__main__":  # pragma: no cover
    app()
