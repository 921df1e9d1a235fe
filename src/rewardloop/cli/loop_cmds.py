"""``rewardloop loop run``: the closed loop on your own store, one iteration per call or continuously."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from rewardloop.cli.common import ConfigOption, console, exit_code_for, fail, open_store, project
from rewardloop.config import DEFAULT_PATH, ConfigError, ProjectConfig
from rewardloop.config.sections import PolicyConfig
from rewardloop.evaluation.golden import GoldenError, load_golden
from rewardloop.learners import LEARNERS, SET_LEARNERS, LearnerConfigError
from rewardloop.learners.base import resolve_config
from rewardloop.loop.experiments import ExperimentError, Experiments
from rewardloop.loop.iteration import LABEL_LEARNERS, LoopRunner
from rewardloop.loop.reranker_loop import RerankerLoopRunner
from rewardloop.loop.router_loop import RouterLoopRunner
from rewardloop.loop.set_loop import SetLoopRunner
from rewardloop.loop.steps import LoopError
from rewardloop.registry import Registry, RegistryError
from rewardloop.rewards import RewardSpec
from rewardloop.store import Store

app = typer.Typer(help="Run the closed loop on your own store.", no_args_is_help=True)


Runner = LoopRunner | RouterLoopRunner | RerankerLoopRunner | SetLoopRunner


def build_runner(cfg: ProjectConfig, store: Store) -> Runner:
    """The loop's runner for the kind of ``training.policy``; a ConfigError naming the missing key."""
    policy = cfg.policy(cfg.training.policy)
    if policy.kind == "generator":
        raise ConfigError(
            f"training.policy: {policy.name!r} is a generator; `loop run` does not retrain generators "
            "yet: fine-tune one with `rewardloop train` (training.learner: sft) and register it"
        )
    if cfg.training.reward_spec is None:
        raise ConfigError("training.reward_spec: name the reward spec (from `rewards:`) the loop compiles")
    spec = RewardSpec.from_config(cfg.reward_spec(cfg.training.reward_spec))
    registry = Registry(store, Path(cfg.experiments.registry_root), keep_last=cfg.experiments.keep_last)
    experiments = Experiments(store, registry, cfg.experiments)
    common: dict[str, Any] = {
        "store": store,
        "registry": registry,
        "experiments": experiments,
        "policy": policy.name,
        "spec": spec,
        "artifacts": Path(cfg.training.output_dir),
        "options": policy.options,
        "seed": cfg.training.seed,
    }
    try:
        if policy.kind == "router":
            return RouterLoopRunner(
                **common, gate=cfg.evaluation.gate, arms=policy.labels, compute=cfg.compute
            )
        if policy.kind == "reranker":
            return RerankerLoopRunner(**common)
        if policy.kind == "set":
            return _set_runner(cfg, policy, common)
    except LoopError as err:
        raise ConfigError(f"policies ({policy.name}): {err}") from None
    return _classifier_runner(cfg, policy, spec, store, registry, experiments)


def _set_runner(cfg: ProjectConfig, policy: PolicyConfig, common: dict[str, Any]) -> SetLoopRunner:
    """A set policy's runner: its golden set of sets, its learner (``set_supervised`` or ``set_bandit``)
    with the YAML hyperparameters, the gate."""
    if cfg.evaluation.golden is None:
        raise ConfigError(
            "evaluation.golden: the loop scores every set challenger on a golden set of sets; name the file"
        )
    golden = load_golden(cfg.evaluation.golden)
    learner = cfg.training.learner
    if learner not in SET_LEARNERS:
        raise ConfigError(
            f"training.learner: {learner!r} does not train set policies (known: {', '.join(SET_LEARNERS)})"
        )
    try:
        config, _ = resolve_config(SET_LEARNERS[learner].config_class, cfg.training)
    except LearnerConfigError as err:
        raise ConfigError(str(err)) from None
    return SetLoopRunner(
        **common,
        golden=golden,
        gate=cfg.evaluation.gate,
        labels=policy.labels,
        learner=learner,
        config=config,
    )


def _classifier_runner(
    cfg: ProjectConfig,
    policy: PolicyConfig,
    spec: RewardSpec,
    store: Store,
    registry: Registry,
    experiments: Experiments,
) -> LoopRunner:
    if cfg.evaluation.golden is None:
        raise ConfigError(
            "evaluation.golden: the loop scores every challenger on a golden set; name the file"
        )
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
    return LoopRunner(
        store=store,
        registry=registry,
        experiments=experiments,
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
    impact_top_k: Annotated[
        int,
        typer.Option(
            "--impact-top-k",
            min=0,
            help="after each iteration, measure the impact of the k contributors with the most feedback "
            "(as `rewardloop contributors impact`: 1 + k fits recorded as runs); 0: off",
        ),
    ] = 0,
) -> None:
    """Compile rewards; advance the running experiment, or train, evaluate, gate and canary a challenger.

    Reads the project file: `training.policy` and its `kind`, `training.reward_spec`, and `experiments`
    (ramp, statistics, registry folder). A classifier: `training.learner` with its hyperparameters
    (supervised or lora train on corrections; an RL learner runs after supervised training; dqn's
    abstain gate is saved beside the classifier), `evaluation.golden` and `evaluation.gate`. A router
    replays its logged rewards from the priors of `policies[].options` and is gated by OPE on the
    champion's traffic (`evaluation.gate.min_ope_lower_vs_champion`). A reranker retrains its reward
    model on the ratings and is gated on the raters' preference pairs. A set policy (kind set) retrains
    from its missed / unnecessary / corrected-set feedback (`training.learner`: set_supervised or
    set_bandit), is scored on a golden set of sets and by per-label OPE on the champion's traffic, and
    gated (`evaluation.gate`: min_micro_f1, max_hamming_loss, ...). Every step is recorded in the
    store: training runs, versions, gate reports, experiment verdicts and alias history.
    """
    cfg = project(config)
    store = open_store(cfg)
    try:
        runner = build_runner(cfg, store)
    except (ConfigError, GoldenError) as err:
        raise fail(str(err), exit_code_for(err)) from None
    done = 0
    while True:
        with console.status(f"iteration {done + 1}: compiling rewards, training, evaluating ..."):
            try:
                result = runner.iterate()
            except (LoopError, RegistryError, ExperimentError) as err:
                raise fail(str(err), exit_code_for(err)) from None
        done += 1
        console.print(
            f"[bold]{result.action}[/bold]: {escape(result.summary)}", highlight=False, soft_wrap=True
        )
        if result.gate is not None:
            for check in result.gate.checks:
                mark = "[green]pass[/green]" if check.passed else "[red]FAIL[/red]"
                console.print(
                    f"  {mark} {escape(f'{check.name}: {check.figure} (threshold {check.threshold})')}",
                    highlight=False,
                )
        if impact_top_k:
            from rewardloop.cli.contributors import measure_after_iteration

            base = (config if config is not None else DEFAULT_PATH).parent.resolve()
            measure_after_iteration(cfg, store, base, impact_top_k)
        if once or (iterations is not None and done >= iterations):
            return
        time.sleep(interval)
