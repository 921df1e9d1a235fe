"""``rewardloop sweep``: a hyperparameter sweep of the training section's learner, local or on Ray Tune.

The steps are :mod:`rewardloop.loop.sweep`'s; this module parses and prints. Heavy imports (torch,
the store, Ray) happen inside the command, so ``rewardloop --help`` stays instant.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from rewardloop.cli.common import (
    ComputeOption,
    ConfigOption,
    RayAddress,
    Sets,
    Since,
    Until,
    compute_config,
    console,
    fail,
    open_store,
    window_option,
)

if TYPE_CHECKING:
    from rewardloop.loop.sweep import SweepResult


def parse_specs(items: list[str]) -> dict[str, str]:
    """``["lr=loguniform:1e-4:1e-1", ...]`` → ``{"lr": "loguniform:1e-4:1e-1"}``; a bad item exits 2."""
    specs: dict[str, str] = {}
    for item in items:
        key, sep, spec = item.partition("=")
        if not sep or not key.strip() or not spec.strip():
            raise fail(f"--space: expected FIELD=KIND:ARGS (e.g. lr=loguniform:1e-4:1e-1), got {item!r}")
        if key.strip() in specs:
            raise fail(f"--space: {key.strip()} is given twice")
        specs[key.strip()] = spec.strip()
    return specs


def sweep_cmd(
    space: Annotated[
        list[str],
        typer.Option(
            "--space",
            help="FIELD=KIND:ARGS of the learner's config (repeatable): uniform:LOW:HIGH, "
            "loguniform:LOW:HIGH, int:LOW:HIGH or choice:A,B,C",
        ),
    ],
    learner: Annotated[
        str | None, typer.Option("--learner", "-l", help="override training.learner (a classifier learner)")
    ] = None,
    trials: Annotated[int, typer.Option("--trials", "-n", min=1, help="number of trials")] = 16,
    seed: Annotated[int, typer.Option("--seed", help="seed of the trials' draws and of the split")] = 0,
    validation_share: Annotated[
        float, typer.Option("--validation-share", help="share of the logged decisions held out for scoring")
    ] = 0.2,
    sets: Sets = None,
    since: Since = None,
    until: Until = None,
    backend: ComputeOption = None,
    ray_address: RayAddress = None,
    config: ConfigOption = None,
) -> None:
    """Sweep the hyperparameters of the training section's learner; every trial is a TrainingRun.

    Each trial trains through the same path as `rewardloop train`, on the training split of the logged
    feedback, and is scored on the validation split (val/score: accuracy, or the SNIPW value of the
    policy as served for RL learners); golden-set feedback never enters the validation split. The
    same --seed gives the same trials and scores on the local backend and on Ray Tune.
    """
    from rewardloop.cli.train import resolve_project
    from rewardloop.config import ConfigError
    from rewardloop.learners.base import LearnerConfigError
    from rewardloop.learners.search_space import parse_space
    from rewardloop.loop.compute import ComputeBackend, ComputeError
    from rewardloop.loop.sweep import SweepError, run_sweep
    from rewardloop.loop.training import TrainingError, read_window, resolve_plan, start_policy

    specs = parse_specs(space)
    try:
        cfg, base = resolve_project(config, sets or [], learner)
        plan = resolve_plan(cfg, base, window=window_option(since, until))
        search = parse_space(type(plan.config), specs)
        policy = start_policy(plan)
    except (ConfigError, TrainingError, LearnerConfigError) as err:
        raise fail(str(err)) from None
    options: dict[str, Any] = {"n_trials": trials, "seed": seed, "validation_share": validation_share}
    dump = cfg.training.model_dump(mode="json")
    compute = ComputeBackend(compute_config(cfg, backend, ray_address))
    store = open_store(cfg)
    try:
        batch = read_window(store, plan)
        with compute, console.status(f"{trials} trials of {plan.learner} on the {compute.name} backend ..."):
            result = run_sweep(store, plan, batch, policy, search, compute, training_dump=dump, **options)
    except (SweepError, TrainingError, ComputeError) as err:
        raise fail(str(err)) from None
    finally:
        store.close()
    _report(result, plan.learner)


def _report(result: SweepResult, learner: str) -> None:
    console.print(
        f"[bold]sweep[/bold] {result.sweep_id} of {learner}: {len(result.trials)} trials on the "
        f"{result.backend} backend in {result.seconds:.1f} s ({result.n_train} training, "
        f"{result.n_validation} validation examples)",
        highlight=False,
    )
    for t in result.trials:
        mark = "[green]best[/green]" if t.trial == result.best else "    "
        score = f"{t.score:.4f}" if t.score is not None else f"failed: {t.error}"
        values = ", ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in t.hyperparameters.items()
        )
        console.print(
            f"  {mark} trial {t.trial:>3}  val/score {score}  {values}  run {t.run.id}", highlight=False
        )
    best = result.best_trial
    console.print(
        f"best: trial {best.trial}, run {best.run.id}, artifact {Path(best.run.artifact_path or '')}"
    )
    console.print(
        json.dumps(
            {
                "sweep": result.sweep_id,
                "backend": result.backend,
                "best": best.to_dict(),
                "scores": result.scores(),
                "seconds": round(result.seconds, 3),
            }
        )
    )


def register(app: typer.Typer) -> None:
    """Add ``sweep`` to the ``rewardloop`` command."""
    app.command("sweep")(sweep_cmd)
