"""``rewardloop loop run``: the closed loop on your own store, one iteration per call or continuously."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from rewardloop.cli.common import ConfigOption, console, fail, open_store, project
from rewardloop.config import ConfigError, ProjectConfig
from rewardloop.evaluation.golden import GoldenError, load_golden
from rewardloop.learners import LEARNERS, LearnerConfigError
from rewardloop.learners.base import resolve_config
from rewardloop.loop.experiments import ExperimentError, Experiments
from rewardloop.loop.iteration import LABEL_LEARNERS, LoopError, LoopRunner
from rewardloop.registry import Registry, RegistryError
from rewardloop.rewards import RewardSpec
from rewardloop.store import Store

app = typer.Typer(help="Run the closed loop on your own store.", no_args_is_help=True)


def build_runner(cfg: ProjectConfig, store: Store) -> LoopRunner:
    """The loop's runner from the project file; a ConfigError naming the missing key otherwise."""
    policy = cfg.policy(cfg.training.policy)
    if policy.kind != "classifier":
        raise ConfigError(f"training.policy: the loop trains classifiers; {policy.name} is a {policy.kind}")
    if cfg.evaluation.golden is None:
        raise ConfigError(
            "evaluation.golden: the loop scores every challenger on a golden set; name the file"
        )
    if cfg.training.reward_spec is None:
        raise ConfigError("training.reward_spec: name the reward spec (from `rewards:`) the loop compiles")
    spec = RewardSpec.from_config(cfg.reward_spec(cfg.training.reward_spec))
    labels = policy.labels or None
    golden = load_golden(cfg.evaluation.golden, labels)
    learner = cfg.training.learner
    if learner not in LEARNERS:
        raise ConfigError(f"training.learner: unknown learner {learner!r} (known: {', '.join(LEARNERS)})")
    try:  # the YAML hyperparameters of the configured learner, checked before anything runs
        config, _ = resolve_config(LEARNERS[learner].config_class, cfg.training)
    except LearnerConfigError as err:
        raise ConfigError(str(err)) from None
    labels_only = learner in LABEL_LEARNERS
    registry = Registry(store, Path(cfg.experiments.registry_root), keep_last=cfg.experiments.keep_last)
    return LoopRunner(
        store=store,
        registry=registry,
        experiments=Experiments(store, registry, cfg.experiments),
        policy=policy.name,
        golden=golden,
        spec=spec,
        gate=cfg.evaluation.gate,
        artifacts=Path(cfg.training.output_dir),
        labels=labels,
        rl_learner=None if labels_only else learner,
        rl_config=None if labels_only else config,
        label_learner=learner if labels_only else "supervised",
        label_config=config if labels_only else None,
        seed=cfg.training.seed,
    )


@app.command()
def run(
    config: ConfigOption = None,
    once: Annotated[bool, typer.Option("--once", help="run one iteration and exit (for cron)")] = False,
    interval: Annotated[
        float, typer.Option(help="seconds between iterations when running continuously")
    ] = 3600.0,
    iterations: Annotated[int | None, typer.Option(help="stop after this many iterations")] = None,
) -> None:
    """Compile rewards; advance the running experiment, or train, evaluate, gate and canary a challenger.

    Reads the project file: `training.policy` (the classifier), `training.reward_spec`, `training.learner`
    with its hyperparameters (supervised or lora train on corrections; an RL learner runs after
    supervised training; dqn's abstain gate is saved beside the classifier), `evaluation.golden` and
    `evaluation.gate`, and `experiments` (ramp, statistics, registry folder). Every step is recorded in
    the store: training runs, versions, gate reports, experiment verdicts and alias history.
    """
    cfg = project(config)
    store = open_store(cfg)
    try:
        runner = build_runner(cfg, store)
    except (ConfigError, GoldenError) as err:
        raise fail(str(err)) from None
    done = 0
    while True:
        with console.status(f"iteration {done + 1}: compiling rewards, training, evaluating ..."):
            try:
                result = runner.iterate()
            except (LoopError, RegistryError, ExperimentError) as err:
                raise fail(str(err)) from None
        done += 1
        console.print(f"[bold]{result.action}[/bold]: {result.summary}", highlight=False, soft_wrap=True)
        if result.gate is not None:
            for check in result.gate.checks:
                mark = "[green]pass[/green]" if check.passed else "[red]FAIL[/red]"
                console.print(
                    f"  {mark} {check.name}: {check.figure} (threshold {check.threshold})", highlight=False
                )
        if once or (iterations is not None and done >= iterations):
            return
        time.sleep(interval)
