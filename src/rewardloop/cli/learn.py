"""``rewardloop learn``: learn a router online from its feedback, and publish states the service serves."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from rewardloop.cli.common import ConfigOption, console, err_console, exit_code_for, fail, open_store, project

if TYPE_CHECKING:  # imported inside the command: `rewardloop learn --help` stays fast
    from rewardloop.config import ProjectConfig
    from rewardloop.loop.online_learner import OnlineLearner, Published
    from rewardloop.registry import Registry
    from rewardloop.rewards import RewardSpec
    from rewardloop.store import Store


def learn(
    policy: Annotated[
        str, typer.Option("--policy", "-p", help="the router policy to learn (policies[].name)")
    ],
    version: Annotated[
        str | None,
        typer.Option(
            help="the registered version to learn (default: the champion's, followed when it moves)"
        ),
    ] = None,
    reward_spec: Annotated[
        str | None,
        typer.Option(
            "--reward-spec",
            "-r",
            help="reward spec (from `rewards:`; default online.reward_spec, then training.reward_spec)",
        ),
    ] = None,
    every: Annotated[
        int | None,
        typer.Option("--every", min=1, help="publish a state every N rewards (online.publish_every)"),
    ] = None,
    interval: Annotated[
        float | None,
        typer.Option(
            "--interval",
            min=0.001,
            help="... or T seconds after the first unpublished one (online.publish_interval_s)",
        ),
    ] = None,
    batch: Annotated[
        int | None,
        typer.Option("--batch", min=1, help="feedback-log rows read at a time (online.batch_size)"),
    ] = None,
    until_idle: Annotated[
        bool,
        typer.Option("--until-idle", help="stop once every feedback row so far is applied (for cron, tests)"),
    ] = False,
    verify: Annotated[
        bool,
        typer.Option(
            "--verify", help="at the end, replay the same log offline and print the largest difference"
        ),
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Learn a router online: apply each reward from /v1/feedback once, publish router states.

    The learner reads the feedback log of the policy's decisions in commit order from where it last
    stopped, compiles each decision's reward with the reward spec, updates the bandit (a changed
    reward is revised, a voided one withdrawn), and every N rewards or T seconds publishes a new
    router state to the store. `rewardloop serve` workers switch to a new state within about a
    second (PostgreSQL: at once, by NOTIFY; SQLite: `online.poll_s`) and log its number in every
    decision's metadata as `router_state`.

    One learner per policy version; Ctrl-C publishes what is pending and stops. Killed, it resumes
    from its last state: no reward is lost or counted twice.
    """
    cfg = project(config)
    store = open_store(cfg)
    learner, registry, spec = _learner(cfg, store, policy, version, reward_spec, every, interval, batch)
    err_console.print(_started(learner, spec) + ("" if until_idle else "; Ctrl-C stops"), highlight=False)
    stopping: list[int] = []
    for sig in (signal.SIGINT, signal.SIGTERM):  # stop after the current batch, publishing it
        signal.signal(sig, lambda signum, _frame: stopping.append(signum))
    from rewardloop.loop.online_learner import OnlineError, max_abs_diff, replay_lineage

    try:
        summary = learner.run(until_idle=until_idle, stop=lambda: bool(stopping), on_publish=_shown)
    except OnlineError as err:
        raise fail(str(err), exit_code_for(err)) from None
    console.print(summary.line(), highlight=False)
    if verify:
        replayed, n = replay_lineage(store, registry, policy, learner.version, spec, learner.options)
        diff = max_abs_diff(learner.router, replayed)
        console.print(f"offline replay of {n} rewarded decisions: largest difference {diff:.3g}")
    store.close()


def _learner(
    cfg: ProjectConfig,
    store: Store,
    policy: str,
    version: str | None,
    reward_spec: str | None,
    every: int | None,
    interval: float | None,
    batch: int | None,
) -> tuple[OnlineLearner, Registry, RewardSpec]:
    """The learner the options and ``rewardloop.yaml`` describe; a clean error when they cannot."""
    from rewardloop.config import ConfigError
    from rewardloop.loop.online_learner import OnlineError, OnlineLearner
    from rewardloop.registry import Registry
    from rewardloop.rewards import RewardSpec

    name = reward_spec or cfg.online.reward_spec or cfg.training.reward_spec
    if name is None:
        raise fail("--reward-spec: name the reward spec (from `rewards:`) the feedback is compiled with")
    try:
        spec = RewardSpec.from_config(cfg.reward_spec(name))
        registry = Registry(store, Path(cfg.experiments.registry_root), keep_last=cfg.experiments.keep_last)
        learner = OnlineLearner(
            store,
            registry,
            policy,
            spec,
            version=version,
            options=next((p.options for p in cfg.policies if p.name == policy), {}),
            publish_every=every or cfg.online.publish_every,
            publish_interval_s=interval or cfg.online.publish_interval_s,
            batch_size=batch or cfg.online.batch_size,
        )
    except (ConfigError, OnlineError) as err:
        raise fail(str(err), exit_code_for(err)) from None
    return learner, registry, spec


def _started(learner: OnlineLearner, spec: RewardSpec) -> str:
    return (
        f"learning {learner.policy}@{learner.version} with {spec.name} v{spec.version}: state "
        f"{learner.lineage.state_version}, {learner.rewards} rewarded decisions, "
        f"{learner.events} feedback events applied so far"
    )


def _shown(p: Published) -> None:
    err_console.print(
        f"state {p.state_version}: +{p.changed} rewards ({p.changed / max(p.seconds, 1e-9):,.0f}/s), "
        f"{p.rewards} rewarded decisions, {p.events} events, log position {p.position.log_seq}",
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    app.command()(learn)
