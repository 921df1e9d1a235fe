"""``rewardloop policies``: registered versions, aliases, gated promotion, rollback, history."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.table import Table

from rewardloop.cli.common import (
    Actor,
    ConfigOption,
    JsonFlag,
    Project,
    Reason,
    console,
    errors_as_messages,
    fail,
    not_found,
    open_registry,
    plain,
    print_json,
    project,
)
from rewardloop.registry import ArtifactError, JsonGateEvidence, Registry, RegistryError, attributed_actor
from rewardloop.store.insights import DEFAULT_PROJECT
from rewardloop.types import DecisionKind

app = typer.Typer(
    help="Policy versions and their aliases: register, list, show, promote (gated), roll back, history.",
    no_args_is_help=True,
)


def _errors() -> AbstractContextManager[None]:
    return errors_as_messages(RegistryError, ArtifactError)


@contextmanager
def _registry(config: Path | None, project_name: str) -> Iterator[Registry]:
    """The project's registry, its errors as clean messages; the store closed after."""
    store, reg = open_registry(project(config), project_name)
    try:
        with _errors():
            yield reg
    finally:
        store.close()


@app.command("register")
def register_cmd(
    policy: Annotated[str, typer.Argument(help="the policy's name, as logged on its decisions")],
    artifact: Annotated[Path, typer.Argument(help="artifact folder (or file) to register; it is copied")],
    kind: Annotated[DecisionKind, typer.Option("--kind", help="what the policy decides")],
    version: Annotated[
        str | None, typer.Option("--version", help="semantic version (default: next patch)")
    ] = None,
    metrics: Annotated[
        Path | None, typer.Option("--metrics", help='JSON file of numbers, e.g. {"accuracy": 0.93}')
    ] = None,
    parent: Annotated[str | None, typer.Option("--parent", help="version it was trained from")] = None,
    run_id: Annotated[str | None, typer.Option("--run-id", help="training run that produced it")] = None,
    project_name: Project = DEFAULT_PROJECT,
    config: ConfigOption = None,
) -> None:
    """Register an artifact as a new version (checksummed; later edits of the copy are refused on load)."""
    cfg = project(config)
    values = _read_json(metrics, "metrics") if metrics else {}
    store, reg = open_registry(cfg, project_name)
    with _errors():
        pv = reg.register(
            policy,
            artifact,
            kind,
            version,
            metrics=values,
            parent_version=parent,
            training_run_id=run_id,
        )
    store.close()
    console.print(
        f"registered {pv.policy}@{pv.version} ({pv.kind}) sha256 {pv.checksum[:12]}… at {pv.artifact_path}"
    )


#: ``rewardloop.policies.int8.QUANTIZATIONS``, spelled here so that ``--help`` imports no torch.
Int8Method = Literal["int8-dynamic", "int8-weight"]


@app.command("quantize")
def quantize_cmd(
    ref: Annotated[
        str, typer.Argument(help="the generator to quantise: policy@version, policy@alias or policy")
    ],
    method: Annotated[
        Int8Method,
        typer.Option(
            "--method",
            help="int8-dynamic: int8 matmuls, the fast one on a CPU; int8-weight: int8 weights, fp32 "
            "matmuls (less memory, slower)",
        ),
    ] = "int8-dynamic",
    version: Annotated[
        str | None, typer.Option("--version", help="version of the int8 copy (default: next patch)")
    ] = None,
    as_json: JsonFlag = False,
    project_name: Project = DEFAULT_PROJECT,
    config: ConfigOption = None,
) -> None:
    """Register an int8 copy of a generator as a new version (its parent: the version quantised).

    Every linear layer but the output head gets int8 weights with one scale per output channel. The
    copy moves no alias: gate it or run it as a challenger like any other version.
    """
    from rewardloop.loop.quantize import register_quantized

    with _registry(config, project_name) as reg:
        pv = register_quantized(reg, ref, method, version)
    if as_json:
        print_json(pv)
        return
    console.print(
        f"registered {pv.policy}@{pv.version} ({method} of {pv.parent_version}) "
        f"sha256 {pv.checksum[:12]}… at {pv.artifact_path}"
    )


def _read_json(path: Path, what: str) -> dict:  # type: ignore[type-arg]
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise not_found(f"{what}: {path} does not exist") from None
    except json.JSONDecodeError as err:
        raise fail(f"{what}: {path} is not JSON ({err})") from None
    if not isinstance(data, dict):
        raise fail(f"{what}: {path} must hold a JSON object, got {type(data).__name__}")
    return data


@app.command("list")
def list_cmd(
    policy: Annotated[str | None, typer.Option("--policy", "-p", help="only this policy")] = None,
    as_json: JsonFlag = False,
    project_name: Project = DEFAULT_PROJECT,
    config: ConfigOption = None,
) -> None:
    """List registered versions, newest last, with their aliases and metrics."""
    store, reg = open_registry(project(config), project_name)
    versions = reg.versions(policy)
    if as_json:
        aliases_of = {p: reg.aliases(p) for p in {v.policy for v in versions}}
        store.close()
        items = [
            {**plain(v), "aliases": sorted(a for a, ver in aliases_of[v.policy].items() if ver == v.version)}
            for v in versions
        ]
        print_json({"items": items})
        return
    table = Table("policy", "version", "kind", "aliases", "metrics", "parent", "registered (UTC)", "sha256")
    aliases = {p: reg.aliases(p) for p in {v.policy for v in versions}}
    for v in versions:
        names = ", ".join(sorted(a for a, ver in aliases[v.policy].items() if ver == v.version))
        shown = ", ".join(f"{k}={m:.4g}" for k, m in sorted(v.metrics.items())[:4])
        table.add_row(
            v.policy,
            v.version,
            v.kind,
            names,
            shown,
            v.parent_version or "",
            v.created_at.strftime("%Y-%m-%d %H:%M"),
            v.checksum[:12],
        )
    store.close()
    console.print(table)
    console.print(f"{len(versions)} version(s) of {len(aliases)} policy(ies)")


@app.command()
def show(
    ref: Annotated[str, typer.Argument(help="policy@version, policy@alias, or policy (its champion)")],
    as_json: JsonFlag = False,
    project_name: Project = DEFAULT_PROJECT,
    config: ConfigOption = None,
) -> None:
    """Show one version: metrics, config, lineage, aliases, and whether its artifact verifies."""
    problem = None
    with _registry(config, project_name) as reg:
        pv = reg.resolve(ref)
        try:
            reg.verify(pv)
            state = "[green]verified[/green]"
        except ArtifactError as err:
            state, problem = f"[red]{err}[/red]", str(err)
        names = sorted(a for a, v in reg.aliases(pv.policy).items() if v == pv.version)
    if as_json:
        print_json({**plain(pv), "aliases": names, "verified": problem is None, "verify_error": problem})
        return
    console.print(f"[bold]{pv.policy}@{pv.version}[/bold] ({pv.kind}) aliases: {', '.join(names) or '-'}")
    console.print(f"  artifact  {pv.artifact_path}  sha256 {pv.checksum}  {state}")
    console.print(f"  parent    {pv.parent_version or '-'}   training run {pv.training_run_id or '-'}")
    console.print(f"  created   {pv.created_at.isoformat()}")
    console.print(f"  metrics   {json.dumps(dict(pv.metrics))}")
    console.print(f"  config    {json.dumps(dict(pv.config))}")


@app.command()
def promote(
    ref: Annotated[str, typer.Argument(help="policy@version (or policy@alias) to make champion")],
    gate_report: Annotated[
        Path | None,
        typer.Option("--gate-report", help="the JSON `rewardloop gate` wrote; promotion needs passed: true"),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="promote without a passing report (recorded as forced)")
    ] = False,
    reason: Reason = "",
    actor: Actor = None,
    project_name: Project = DEFAULT_PROJECT,
    config: ConfigOption = None,
) -> None:
    """Make a version the champion, if its release-gate report passed (or with --force, recorded)."""
    if gate_report is None and not force:
        raise fail(
            "promote: give --gate-report FILE (from `rewardloop gate`), or --force (recorded as forced)"
        )
    report = None
    if gate_report is not None:
        with _errors():
            report = JsonGateEvidence.from_mapping(_read_json(gate_report, "--gate-report"), str(gate_report))
    with _registry(config, project_name) as reg:
        event = reg.promote(ref, report, force=force, actor=attributed_actor(actor), reason=reason)
    forced = " [yellow](forced)[/yellow]" if event.forced else ""
    console.print(
        f"{event.policy}@champion: {event.from_version or '-'} → {event.to_version}{forced} by {event.actor}"
    )


@app.command()
def activate(
    ref: Annotated[str, typer.Argument(help="policy@version: the first version, or a former champion")],
    reason: Reason = "",
    actor: Actor = None,
    project_name: Project = DEFAULT_PROJECT,
    config: ConfigOption = None,
) -> None:
    """Make the first version of a policy (or a former champion) the champion, without a new gate report."""
    with _registry(config, project_name) as reg:
        event = reg.activate(ref, actor=attributed_actor(actor), reason=reason)
    console.print(f"{event.policy}@champion: {event.from_version or '-'} → {event.to_version} (activated)")


@app.command()
def rollback(
    policy: Annotated[str, typer.Argument(help="the policy whose champion goes back one step")],
    reason: Reason = "",
    actor: Actor = None,
    project_name: Project = DEFAULT_PROJECT,
    config: ConfigOption = None,
) -> None:
    """Put the previous champion back (its artifact verified first); undoes promotions in order.

    The policy's running experiments are stopped first (each logs the rollback as its reason): they
    would keep serving their champion and challenger versions otherwise.
    """
    from rewardloop.loop.experiments import ExperimentError, Experiments
    from rewardloop.loop.rollback import rollback_champion

    cfg = project(config)
    store, reg = open_registry(cfg, project_name)
    with errors_as_messages(RegistryError, ArtifactError, ExperimentError):
        out = rollback_champion(
            reg,
            Experiments(store, reg, cfg.experiments),
            policy,
            actor=attributed_actor(actor),
            reason=reason,
        )
        path = reg.artifact_path(f"{policy}@champion")
    store.close()
    for exp in out.stopped:
        console.print(f"stopped experiment {exp.name} ({exp.policy}): the champion was rolled back")
    console.print(f"{out.summary()}; serving {path}")


@app.command()
def history(
    policy: Annotated[str, typer.Argument(help="the policy")],
    alias: Annotated[str | None, typer.Option("--alias", help="only this alias")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per line")] = False,
    project_name: Project = DEFAULT_PROJECT,
    config: ConfigOption = None,
) -> None:
    """Every alias move of a policy, oldest first: when, who, what, from → to, why, gate."""
    with _registry(config, project_name) as reg:
        events = reg.history(policy, alias)
        champion = reg.aliases(policy).get("champion", "-")
    if as_json:
        for e in events:
            print(
                json.dumps(
                    {
                        "at": e.created_at.isoformat(),
                        "alias": e.alias,
                        "action": e.action,
                        "from": e.from_version,
                        "to": e.to_version,
                        "actor": e.actor,
                        "reason": e.reason,
                        "forced": e.forced,
                        "gate_report": e.gate_report,
                    }
                )
            )
        return
    table = Table("when (UTC)", "alias", "action", "from → to", "actor", "gate", "reason")
    for e in events:
        gate = "forced" if e.forced else ("passed" if (e.gate_report or {}).get("passed") else "-")
        table.add_row(
            e.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            e.alias,
            e.action,
            f"{e.from_version or '-'} → {e.to_version or '-'}",
            e.actor,
            gate,
            e.reason,
        )
    console.print(table)
    console.print(f"{len(events)} move(s); champion now {champion}")
