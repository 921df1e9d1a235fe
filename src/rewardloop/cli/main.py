"""The ``rewardloop`` command.

Import time is part of the interface: ``rewardloop --help``, ``rewardloop --version`` and tab completion
import no command module, so neither torch nor SQLAlchemy. :data:`COMMANDS` names where each command
lives and its one-line help; a command's module is imported only when that command runs or shows its
own ``--help`` (and the modules import their heavy libraries inside the functions that need them).
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from importlib.metadata import PackageNotFoundError, version
from typing import Annotated, Any

import typer
from typer.core import TyperCommand, TyperGroup

# Before any command imports torch (its OpenMP runtime reads this once, when it loads): threads that
# wait for work sleep instead of spinning. On a machine whose cores other processes share, spinning
# threads took the CPU the working ones needed: MiniLM over 1,000 texts on 2 threads cost 14 s of CPU
# spinning against 4.4 s sleeping (4 s on one thread), at the same load. A value set by the user wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

#: name → (module, one-line help). The module registers the command with ``register(app)`` or holds it
#: as a Typer sub-app in ``app``. The help must be the command's own first help line (a test checks).
COMMANDS: dict[str, tuple[str, str]] = {
    "init": (
        "rewardloop.cli.project_cmds",
        "Write a commented rewardloop.yaml and create (or migrate) the database it names.",
    ),
    "import": ("rewardloop.cli.project_cmds", "Validate and store decisions or feedback from a file."),
    "log": (
        "rewardloop.cli.project_cmds",
        "Same as `import`: store decisions or feedback from a file or stdin.",
    ),
    "stats": (
        "rewardloop.cli.project_cmds",
        "Counts per policy and version, feedback per kind, feedback coverage and exploration health.",
    ),
    "export": (
        "rewardloop.cli.project_cmds",
        "Export stored decisions joined with their feedback (rows), as OpenAI chat fine-tuning JSONL",
    ),
    "train": (
        "rewardloop.cli.train",
        "Train the policy named in the config on its logged decisions and feedback.",
    ),
    "distil": (
        "rewardloop.cli.distil",
        "Distil a teacher behind an OpenAI-compatible chat endpoint into a generator, by SFT on its answers.",
    ),
    "evals": (
        "rewardloop.cli.evals",
        "Run agents on a question set, score their answers with a judge, and compare them (JSON + HTML).",
    ),
    "runs": (
        "rewardloop.cli.runs",
        "Training runs: what was trained on what data, with which config, and how it went.",
    ),
    "eval": (
        "rewardloop.cli.evaluate",
        "Run a policy on a golden set and write report.json, report.html and PNG figures.",
    ),
    "gate": (
        "rewardloop.cli.evaluate",
        "Release gate for CI: check a candidate against the evaluation.gate thresholds of rewardloop.yaml.",
    ),
    "ope": (
        "rewardloop.cli.evaluate",
        "Estimate a candidate's value on stored decisions (IPW, SNIPW, DM, DR with bootstrap intervals).",
    ),
    "monitor": (
        "rewardloop.cli.evaluate",
        "Check stored decisions and feedback for regressions, per policy version and time window.",
    ),
    "serve": (
        "rewardloop.cli.serve",
        "Start the HTTP service: the API under /v1, the dashboard at /, OpenAPI docs at /docs, /metrics.",
    ),
    "openapi": (
        "rewardloop.cli.openapi_cmd",
        "Write the service's OpenAPI 3.1 document (JSON), the one /openapi.json serves.",
    ),
    "demo": (
        "rewardloop.cli.demo",
        "Run the whole loop on the bundled real data, with simulated users, and write an HTML report.",
    ),
    "data": ("rewardloop.cli.data", "Fetch and locate the bundled real data sets."),
    "rewards": (
        "rewardloop.cli.rewards",
        "Compile rewards from feedback with the reward specs of rewardloop.yaml.",
    ),
    "rm": (
        "rewardloop.cli.rewards",
        "Reward models for reranking candidate answers: train one, score candidates with it.",
    ),
    "policies": (
        "rewardloop.cli.policies",
        "Policy versions and their aliases: register, list, show, promote (gated), roll back, history.",
    ),
    "experiment": (
        "rewardloop.cli.experiment",
        "Champion/challenger experiments: a hash-split canary that ramps 5% → 25% → 50% → 100% while its "
        "guardrails hold",
    ),
    "feedback": (
        "rewardloop.cli.feedback_cmds",
        "Stored feedback: void a row (kept for the audit, excluded from rewards and training from then on)",
    ),
    "router": (
        "rewardloop.cli.router",
        "Router statistics, leaderboards and retraining from logged decisions + rewards.",
    ),
    "keys": (
        "rewardloop.cli.serve",
        "API keys of the HTTP service: each has a project and scopes",
    ),
    "loop": ("rewardloop.cli.loop_cmds", "Run the closed loop on your own store."),
    "contributors": (
        "rewardloop.cli.contributors",
        "Contributors: a leaderboard over a time range, and the measured impact of their feedback.",
    ),
    "embed": (
        "rewardloop.cli.compute_cmds",
        "Embed the texts of logged decisions with MiniLM into a Parquet file (local, or Ray Data on a "
        "cluster).",
    ),
    "sweep": (
        "rewardloop.cli.sweep",
        "Sweep the hyperparameters of the training section's learner; every trial is a TrainingRun.",
    ),
    "learn": (
        "rewardloop.cli.learn",
        "Learn a router online: apply each reward from /v1/feedback once, publish router states.",
    ),
}


def load_command(name: str) -> Any:
    """Import the module of command ``name`` and build its (Typer) click command."""
    module = importlib.import_module(COMMANDS[name][0])
    holder = typer.Typer()
    if hasattr(module, "register"):
        module.register(holder)
    else:
        holder.add_typer(module.app, name=name)
    command = typer.main.get_group(holder).commands.get(name)
    if command is None:  # pragma: no cover - a table entry naming the wrong module
        raise LookupError(f"{COMMANDS[name][0]} does not define the command {name!r}")
    return command


class LazyCommand(TyperCommand):
    """Stands for a command in listings and completion; the real one is built when it is used."""

    def __init__(self, name: str, short_help: str) -> None:
        super().__init__(name, help=short_help, short_help=short_help, add_help_option=False)
        self._real: Any = None

    @property
    def real(self) -> Any:
        if self._real is None:
            self._real = load_command(str(self.name))
        return self._real

    def make_context(self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any) -> Any:
        return self.real.make_context(info_name, args, parent=parent, **extra)


class LazyGroup(TyperGroup):
    """The top-level group: commands from :data:`COMMANDS`, imported only when used.

    An exception no command turned into a message (a store that fails mid-command, a bug) ends the
    command with a one-line error and exit 4 (``ExitCode.RUNTIME``), not Python's traceback and 1 (which
    means "a check failed"); ``REWARDLOOP_TRACEBACK=1`` shows the traceback as well.
    """

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except Exception as err:
            if _is_cli_exception(err):
                raise
            from rewardloop.cli.common import ExitCode, fail

            if os.environ.get("REWARDLOOP_TRACEBACK"):
                traceback.print_exc()
            raise fail(f"{type(err).__name__}: {err}", ExitCode.RUNTIME) from None

    def list_commands(self, ctx: Any) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name not in COMMANDS:
            return None
        return LazyCommand(cmd_name, COMMANDS[cmd_name][1])


def _is_cli_exception(err: BaseException) -> bool:
    """Click's own exceptions (usage errors, Exit, Abort) pass through: they carry their exit codes."""
    return type(err).__module__.split(".")[0] in ("click", "typer") or isinstance(err, typer.Exit)


def _version() -> str:
    try:
        return version("rewardloop")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree without metadata
        from rewardloop import __version__

        return __version__


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"rewardloop {_version()}")
        raise typer.Exit()


app = typer.Typer(
    name="rewardloop",
    cls=LazyGroup,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    # Usage errors in a rich panel on a terminal; on a pipe or in CI the plain one-line message (a panel
    # is hard-wrapped at 80 columns).
    rich_markup_mode="rich" if sys.stderr.isatty() else None,
)


@app.callback()
def main(
    show_version: Annotated[
        bool,
        typer.Option("--version", callback=_show_version, is_eager=True, help="print the version and exit"),
    ] = False,
) -> None:
    """Close the loop: log decisions, collect feedback, compile rewards, train, evaluate, gate, deploy
    and monitor. Start with `rewardloop init`, or `rewardloop demo` to watch the whole loop."""


if __name__ == "__main__":  # pragma: no cover
    app()
