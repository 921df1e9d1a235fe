"""``rewardloop experiment``: champion/challenger canaries — start, status, advance the ramp, stop."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Annotated

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
    open_registry,
    open_store,
    plain,
    print_json,
    project,
)
from rewardloop.loop.experiments import ExperimentError, Experiments
from rewardloop.registry import ArtifactError, RegistryError, attributed_actor
from rewardloop.store.insights import DEFAULT_PROJECT

app = typer.Typer(
    help="Champion/challenger experiments: a hash-split canary that ramps 5% → 25% → 50% → 100% while "
    "its guardrails hold, is promoted when the challenger is significantly better, and rolls back "
    "by itself when it is worse.",
    no_args_is_help=True,
)


def _errors() -> AbstractContextManager[None]:
    return errors_as_messages(ExperimentError, RegistryError, ArtifactError)


def _experiments(config: ConfigOption, project_name: str = DEFAULT_PROJECT) -> Experiments:
    cfg = project(config)
    store, registry = open_registry(cfg, project_name)
    return Experiments(store, registry, cfg.experiments)


@contextmanager
def _session(config: ConfigOption, project_name: str) -> Iterator[Experiments]:
    """The project's experiments, their errors as clean messages; the store closed after."""
    ex = _experiments(config, project_name)
    try:
        with _errors():
            yield ex
    finally:
        ex.store.close()


def _ramp(text: str | None) -> list[float] | None:
    if text is None:
        return None
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise fail(f"--ramp: expected comma-separated shares such as 0.05,0.25,0.5,1, got {text!r}") from None


def _plan(
    config: ConfigOption,
    policy: str,
    *,
    mde: float,
    base_rate: float | None,
    power: float,
    ramp: list[float] | None,
) -> None:
    from rewardloop.evaluation.variance import current_traffic, plan_two_proportions

    cfg = project(config)
    store = open_store(cfg)
    try:
        traffic = current_traffic(store, policy)
    finally:
        store.close()
    rate = base_rate if base_rate is not None else traffic.success_rate
    if rate is None:
        raise fail(f"--base-rate: {policy!r} has no feedback outcomes in the last 7 days; give one")
    per_day = traffic.decisions_per_day
    table = Table("challenger share", "decisions per variant", "decisions in all", "days at current traffic")
    for share in [s for s in (ramp or cfg.experiments.ramp) if s < 1]:
        try:
            p = plan_two_proportions(
                rate, mde, alpha=cfg.experiments.alpha, power=power, share=share, decisions_per_day=per_day
            )
        except ValueError as err:
            raise fail(f"--plan: {err}") from None
        days = "never (no traffic)" if p.days is None else f"{p.days:.1f}"
        table.add_row(f"{share:.0%}", f"{p.n_per_variant:,}", f"{p.n_total:,}", days)
    console.print(table)
    source = "given" if base_rate is not None else f"from {traffic.outcomes:,} feedback outcomes"
    console.print(
        f"{policy}: {per_day:,.0f} decisions a day (last 7 days); success rate {rate:.3f} ({source}); "
        f"detect {mde:+.3f} with power {power:.0%} at α {cfg.experiments.alpha:g}"
    )


@app.command()
def start(
    name: Annotated[str, typer.Argument(help="a name for the experiment (logged on each decision)")],
    policy: Annotated[str, typer.Option("--policy", "-p", help="the policy under test")],
    challenger: Annotated[str, typer.Option("--challenger", help="the registered version to try")],
    champion: Annotated[
        str | None,
        typer.Option("--champion", help="version to compare against (default: the champion alias)"),
    ] = None,
    ramp: Annotated[
        str | None, typer.Option("--ramp", help="challenger shares, e.g. 0.05,0.25,0.5,1 (default: config)")
    ] = None,
    shadow: Annotated[
        bool | None,
        typer.Option("--shadow/--live", help="shadow: challenger decides and is logged, champion serves"),
    ] = None,
    salt: Annotated[str | None, typer.Option("--salt", help="hash salt (default: random, recorded)")] = None,
    plan: Annotated[
        bool, typer.Option("--plan", help="only say how many decisions and days --mde needs; start nothing")
    ] = False,
    mde: Annotated[
        float, typer.Option("--mde", help="with --plan: the absolute change of success rate to detect")
    ] = 0.02,
    base_rate: Annotated[
        float | None,
        typer.Option(
            "--base-rate", help="with --plan: success rate now (default: from the last 7 days' feedback)"
        ),
    ] = None,
    power: Annotated[float, typer.Option("--power", help="with --plan: chance to detect --mde")] = 0.8,
    actor: Actor = None,
    project_name: Project = DEFAULT_PROJECT,
    config: ConfigOption = None,
) -> None:
    """Start a canary (or shadow) experiment of a challenger version against the champion.

    With --plan: how many decisions, and days at the policy's traffic of the last 7 days, each ramp
    stage needs to detect a change of --mde in the success rate (two-sided test at experiments.alpha).
    """
    if plan:
        _plan(config, policy, mde=mde, base_rate=base_rate, power=power, ramp=_ramp(ramp))
        return
    with _session(config, project_name) as ex:
        exp = ex.start(
            name,
            policy,
            challenger,
            champion=champion,
            ramp=_ramp(ramp),
            shadow=shadow,
            salt=salt,
            actor=attributed_actor(actor),
        )
    mode = (
        "shadow (champion serves everything)"
        if exp.shadow
        else f"challenger share {exp.shares['challenger']:.0%}"
    )
    console.print(
        f"started {exp.name}: {policy} {exp.variants['champion']} (champion) vs {challenger}; {mode}; "
        f"ramp {' → '.join(f'{s:.0%}' for s in exp.ramp)}; salt {exp.salt}"
    )


def _status_json(ex: Experiments, name: str | None) -> None:
    """``experiment status --json``: ``{"items": [...]}``, or one experiment with its outcomes and verdict."""
    try:
        if name is None:
            print_json({"items": ex.list()})
            return
        with _errors():
            exp = ex.get(name)
            outcomes = ex.outcomes(exp)
            verdict = ex.evaluate(exp) if exp.status == "running" and "challenger" in exp.variants else None
    finally:
        ex.store.close()
    now = {"summary": verdict.summary(), **plain(verdict)} if verdict is not None else None
    print_json({**plain(exp), "outcomes": outcomes, "verdict_now": now})


@app.command()
def status(
    name: Annotated[str | None, typer.Argument(help="the experiment (default: list them all)")] = None,
    as_json: JsonFlag = False,
    config: ConfigOption = None,
) -> None:
    """Show experiments, or one experiment's split, per-variant numbers and current verdict."""
    ex = _experiments(config)
    if as_json:
        _status_json(ex, name)
        return
    if name is None:
        table = Table("name", "policy", "status", "mode", "challenger share", "variants", "updated (UTC)")
        exps = ex.list()
        for e in exps:
            table.add_row(
                e.name,
                e.policy,
                e.status,
                "shadow" if e.shadow else "live",
                f"{e.shares.get('challenger', 0):.0%}",
                ", ".join(f"{k}={v}" for k, v in e.variants.items()),
                e.updated_at.strftime("%Y-%m-%d %H:%M"),
            )
        ex.store.close()
        console.print(table)
        console.print(f"{len(exps)} experiment(s)")
        return
    with _errors():
        exp = ex.get(name)
        outcomes = ex.outcomes(exp)
        verdict = ex.evaluate(exp) if exp.status == "running" and "challenger" in exp.variants else None
    ex.store.close()
    console.print(
        f"[bold]{exp.name}[/bold] ({exp.policy}) {exp.status}, "
        f"{'shadow' if exp.shadow else 'stage ' + str(exp.stage + 1) + '/' + str(len(exp.ramp))}, "
        f"shares {', '.join(f'{k} {v:.0%}' for k, v in exp.shares.items())}"
    )
    table = Table("variant", "version", "decisions", "rewarded", "success rate", "latency ms (mean)")
    for variant, version in exp.variants.items():
        o = outcomes.get(variant)
        rate = f"{o.successes / o.n_outcomes:.4f}" if o and o.n_outcomes else "-"
        lat = f"{o.latency_mean:.1f}" if o and o.latency_n else "-"
        table.add_row(variant, version, str(o.n if o else 0), str(o.n_outcomes if o else 0), rate, lat)
    console.print(table)
    if verdict is not None:
        console.print(f"verdict now: {verdict.summary()}")
    elif exp.verdict and exp.verdict.get("last"):
        console.print(
            f"final verdict: {exp.verdict['last']['action']} — {'; '.join(exp.verdict['last']['reasons'])}"
        )


@app.command()
def advance(
    name: Annotated[str, typer.Argument(help="the experiment")],
    actor: Actor = None,
    project_name: Project = DEFAULT_PROJECT,
    config: ConfigOption = None,
) -> None:
    """Evaluate the current stage and act: roll back, step the ramp up, promote, or hold."""
    with _session(config, project_name) as ex:
        step = ex.advance(name, actor=attributed_actor(actor))
    colour = {"rolled_back": "red", "promoted": "green", "advanced": "cyan", "held": "white"}[step.action]
    console.print(f"[{colour}]{step.action}[/{colour}] {step.summary()}")


@app.command()
def stop(
    name: Annotated[str, typer.Argument(help="the experiment")],
    reason: Reason = "",
    actor: Actor = None,
    project_name: Project = DEFAULT_PROJECT,
    config: ConfigOption = None,
) -> None:
    """Stop an experiment: all traffic back to the champion, the challenger alias removed."""
    with _session(config, project_name) as ex:
        exp = ex.stop(name, actor=attributed_actor(actor), reason=reason)
        assert ex.registry is not None
        served = ex.registry.aliases(exp.policy).get("champion")
    # What is served now is the champion alias, not the version the experiment started with (a
    # rollback may have moved it since).
    was = exp.variants.get("champion")
    note = f" (the experiment's champion was {was})" if was and was != served else ""
    console.print(f"stopped {exp.name}; {exp.policy} serves its champion {served or '-'}{note}")
