"""``rewardloop feedback``: withdraw stored feedback (``void``) and list what was withdrawn (``voids``)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from rewardloop.cli.common import (
    Actor,
    ConfigOption,
    JsonFlag,
    console,
    errors_as_messages,
    open_store,
    print_json,
    project,
)
from rewardloop.registry import attributed_actor
from rewardloop.store.voids import VoidError, void_feedback, voids

app = typer.Typer(
    help="Stored feedback: void a row (kept for the audit, excluded from rewards and training from then "
    "on) and list the voided rows.",
    no_args_is_help=True,
)


def void(
    feedback_id: Annotated[str, typer.Argument(help="the id of the feedback row")],
    reason: Annotated[str, typer.Option("--reason", help="why it is withdrawn (kept in the audit)")],
    actor: Actor = None,
    project_name: Annotated[
        str | None, typer.Option("--project", help="the project of the row, where several use the id")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Void one feedback row: it stays stored with who, when and why, counts for no reward from then
    on, and its decision's rewards are withdrawn (the next `rewards compile` rebuilds them from its
    other feedback)."""
    store = open_store(project(config))
    with errors_as_messages(VoidError):
        done = void_feedback(
            store, feedback_id, reason=reason, actor=attributed_actor(actor), project=project_name
        )
    console.print(
        f"voided feedback {done.feedback_id} on decision {done.decision_id} (project {done.project}) "
        f"by {done.voided_by}: {done.reason}; {done.rewards_withdrawn} reward(s) withdrawn"
    )


def list_voids(as_json: JsonFlag = False, config: ConfigOption = None) -> None:
    """The voided feedback rows: which, who, when, why."""
    store = open_store(project(config))
    if as_json:
        try:
            print_json({"items": voids(store)})
        finally:
            store.close()
        return
    table = Table("feedback", "decision", "project", "voided by", "when", "reason")
    for v in voids(store):
        table.add_row(v.feedback_id, v.decision_id, v.project, v.voided_by, v.voided_at.isoformat(), v.reason)
    console.print(table)


app.command()(void)
app.command("voids")(list_voids)
