"""``rewardloop train``: train a policy on logged decisions and feedback; record the run in the store.

The steps are :mod:`rewardloop.loop.training`'s (the one orchestration every learner runs through):
resolve the config from the ``training`` section, read the window, build the learner's data with
its ``data_from_batch``, fit, save, record the TrainingRun. This module parses and prints.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import typer

from rewardloop.cli import common
from rewardloop.cli.common import (
    ConfigOption,
    ExitCode,
    Sets,
    Since,
    Until,
    console,
    exit_code_for,
    fail,
    window_option,
)
from rewardloop.config import DEFAULT_PATH, ConfigError, ProjectConfig, load_config
from rewardloop.encoders import default_encoder
from rewardloop.learners import BanditData, LabelledData, learner_options
from rewardloop.learners.multilabel import SetData
from rewardloop.loop.training import (
    TrainingError,
    TrainingOutcome,
    TrainingPlan,
    build_data,
    check_enough,
    check_label_learner,
    data_window,
    read_labelled,
    read_window,
    resolve_plan,
    start_policy,
    train_from_labels,
    train_plan,
)
from rewardloop.policies.classifier import ClassifierPolicy
from rewardloop.types import DecisionBatch

#: ``--learner`` choices: the keys of ``learners.LEARNERS``, ``GENERATOR_LEARNERS`` and ``SET_LEARNERS``
#: (a test checks).
LearnerName = Literal[
    "supervised",
    "lora",
    "reinforce",
    "ppo",
    "a2c",
    "dqn",
    "dpo",
    "crm",
    "sft",
    "kto",
    "set_supervised",
    "set_bandit",
]


def resolve_project(config: Path | None, sets: list[str], learner: str | None) -> tuple[ProjectConfig, Path]:
    """The project config after ``--set`` and ``--learner``; also the folder relative paths start from."""
    overrides = [*sets, f"training.learner={learner}"] if learner is not None else sets
    cfg = load_config(config, overrides)
    return cfg, (config if config is not None else DEFAULT_PATH).parent.resolve()


def _summarise_data(data: Any, batch: DecisionBatch) -> list[str]:
    lines = [f"decisions read: {len(batch)}"]
    if isinstance(data, LabelledData):
        lines.append(f"examples: {len(data)} (total weight {float(np.sum(data.sample_weight)):.2f})")
        counts = sorted(data.label_counts().items(), key=lambda kv: -kv[1])
        shown = ", ".join(f"{k} {v}" for k, v in counts[:10])
        lines.append(f"labels: {len(counts)} ({shown}{', ...' if len(counts) > 10 else ''})")
    elif isinstance(data, SetData):
        lines.append(f"judged sets: {len(data)} (total authority {float(np.sum(data.weight)):.2f})")
        held = (data.Y >= 0.5).sum(axis=0)  # (L,): how many rows hold each action right
        shown = ", ".join(
            f"{a} {int(n)}"
            for a, n in sorted(zip(data.labels, held, strict=True), key=lambda kv: -kv[1])[:10]
        )
        lines.append(f"actions held right: {shown}{', ...' if len(data.labels) > 10 else ''}")
    else:
        lines.append(f"examples: {len(data)}")
        if isinstance(data, BanditData) and len(data):
            reward = data.reward
            lines.append(
                f"reward: mean {float(np.mean(reward)):.4f}, min {np.min(reward):g}, max {np.max(reward):g}"
            )
    for reason, n in sorted(data.skipped.items()):
        lines.append(f"skipped feedback: {n} {reason}")
    return lines


def _learner_help() -> str:
    """Every learner's config fields with their help texts (set them with --set training.options.KEY=V)."""
    lines = ["Learner options (--set training.options.KEY=VALUE; help from the config dataclasses):"]
    for name, fields in learner_options().items():
        lines.append(f"{name}: " + "; ".join(f"{key} ({text})" for key, text in fields.items()))
    return "\n\n".join(lines)


def _print_plan(plan: TrainingPlan, window: tuple[Any, Any], dry_run: bool) -> None:
    console.print(f"[bold]learner[/bold] {plan.learner} ({type(plan.config).__name__})")
    if dry_run:  # every field with its help; a real run shows the values only
        for f in dataclasses.fields(plan.config):
            value = getattr(plan.config, f.name)
            console.print(f"  {f.name} = {value!r}  [dim]# {f.metadata.get('help', '')}[/dim]")
        console.print(
            f"  min_feedback = {plan.min_feedback}, max_episodes = {plan.max_episodes}, "
            f"since = {plan.window.since or '-'}",
            highlight=False,
        )
    else:
        values = ", ".join(
            f"{f.name}={getattr(plan.config, f.name)!r}" for f in dataclasses.fields(plan.config)
        )
        console.print(f"  {values}", highlight=False)
    if plan.ignored:
        console.print(f"  [yellow]not used by {plan.learner}:[/yellow] {', '.join(plan.ignored)}")
    console.print(
        f"[bold]data[/bold] policy {plan.policy.name}, window {window[0] or '-'} .. {window[1] or '-'}"
        + (f", rewards {plan.spec.name} v{plan.spec.version}" if plan.spec else "")
    )


def _pre_embed(batch: DecisionBatch, policy: Any) -> None:
    """Embed the used texts once with a progress bar: the learner's embedding calls then hit the cache."""
    used = [d.text for d in batch if d.text and (d.id in batch.feedback or d.id in batch.rewards)]
    if not used:
        return
    encoder = policy.encoder if isinstance(policy, ClassifierPolicy) else default_encoder()
    with common.progress() as bar:
        task = bar.add_task("embedding texts", total=len(used))
        encoder.encode(used, progress=lambda k: bar.advance(task, k))


def _check(step: Any, *args: Any) -> Any:
    """``step(*args)``, a TrainingError turned into a clean exit 2 naming the key."""
    try:
        return step(*args)
    except TrainingError as err:
        raise fail(str(err), exit_code_for(err)) from None


@contextmanager
def fit_errors() -> Iterator[None]:
    """A TrainingError as a clean exit naming the key; any other failure of a fit as exit 4 (the run
    is recorded as failed)."""
    try:
        yield
    except TrainingError as err:
        raise fail(str(err), exit_code_for(err)) from None
    except Exception as err:
        raise fail(f"training failed ({type(err).__name__}): {err}", ExitCode.RUNTIME) from None


def _fit(plan: TrainingPlan, train: Callable[[Any], TrainingOutcome]) -> TrainingOutcome:
    """``train(progress)`` (a run of ``loop.training``) with a progress bar (see :func:`fit_errors`)."""
    with fit_errors(), common.progress() as bar:
        task = bar.add_task(f"training {plan.learner}", total=None)
        return train(lambda step, total, _m: bar.update(task, completed=step, total=total))


def train(
    config: ConfigOption = None,
    learner: Annotated[
        LearnerName | None,
        typer.Option(
            "--learner",
            "-l",
            help="override training.learner (sft, dpo and kto train generators; set_supervised and "
            "set_bandit set policies)",
        ),
    ] = None,
    from_labels: Annotated[
        Path | None,
        typer.Option(
            "--from-labels",
            help='train a first classifier from a .jsonl or .csv file of {"text", "label"} rows (optional '
            '"weight"), not from logged decisions; with a supervised learner',
        ),
    ] = None,
    sets: Sets = None,
    since: Since = None,
    until: Until = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="print the resolved config and the data; train nothing")
    ] = False,
) -> None:
    """Train the policy named in the config on its logged decisions and feedback.

    Supervised learners (supervised, lora) learn from label corrections and confirmed decisions.

    RL learners learn from the compiled rewards of training.reward_spec, from training.init_from.

    A generator policy (kind generator) is fine-tuned from training.init_from by sft on the chat
    examples its feedback yields (docs/generator.md).

    A set policy (kind set) learns from its missed_actions, unnecessary_actions and set_correction
    feedback, raters weighted by authority: set_supervised (per-label BCE, thresholds fitted on a
    held-out share), or set_bandit from training.init_from on the logged sets (docs/sets.md).

    Each run is recorded in the store: config, data window, metrics, history and the artifact path.
    Feedback the policy cannot use (e.g. a correction naming an unknown label) is skipped and counted.
    """
    try:
        cfg, base = resolve_project(config, sets or [], learner)
        if from_labels is not None:
            check_label_learner(cfg.training.learner)
        plan = resolve_plan(cfg, base, window=window_option(since, until))
        policy = start_policy(plan)
    except (ConfigError, TrainingError) as err:
        raise fail(str(err), exit_code_for(err)) from None
    if from_labels is not None:
        _train_from_labels(cfg, plan, policy, from_labels, dry_run)
        return
    store = common.open_store(cfg)
    try:
        batch = read_window(store, plan)
        zeros = None
        if dry_run and isinstance(policy, ClassifierPolicy):  # counts rows; needs no (minutes of) embeddings
            dim = policy.in_dim
            zeros = lambda texts: np.zeros((len(texts), dim), np.float32)  # noqa: E731
        elif not plan.learner_cls.reads_texts:
            _pre_embed(batch, policy)
        data = _check(build_data, plan, batch, policy, zeros)
        window = data_window(plan, batch)
        _print_plan(plan, window, dry_run)
        for line in _summarise_data(data, batch):
            console.print(f"  {line}")
        if dry_run:
            console.print("dry run: nothing trained, nothing recorded")
            return
        _check(check_enough, plan, data)
        dump = cfg.training.model_dump(mode="json")
        outcome = _fit(plan, lambda bar: train_plan(store, plan, data, policy, window, dump, progress=bar))
    finally:
        store.close()
    _print_outcome(plan, outcome, len(data))


def _print_outcome(plan: TrainingPlan, outcome: TrainingOutcome, n: int) -> None:
    console.print(
        f"[green]trained[/green] {plan.policy.name} with {plan.learner} on {n} examples "
        f"in {outcome.metrics['seconds']:.1f}s; run {outcome.run.id}"
    )
    for k, v in outcome.metrics.items():
        console.print(f"  {k}: {v:g}")
    console.print(f"  artifact: {outcome.artifact}")


def _train_from_labels(
    cfg: ProjectConfig, plan: TrainingPlan, policy: Any, path: Path, dry_run: bool
) -> None:
    """``train --from-labels FILE``: read and check the file (rows counted from 1), then the one
    training path (``loop.training.train_from_labels``), recorded as a TrainingRun like any other."""
    if not path.is_file():
        raise common.not_found(f"--from-labels: {path}: no such file")
    if policy is not None and not isinstance(policy, ClassifierPolicy):
        raise fail(f"--from-labels: {plan.policy.name!r} is a {plan.policy.kind}; it trains classifiers")
    labels = policy.labels if policy is not None else None
    data = _check(read_labelled, path, labels)
    console.print(
        f"[bold]learner[/bold] {plan.learner}; [bold]data[/bold] {path} for policy {plan.policy.name}"
    )
    for line in _summarise_data(data, DecisionBatch([])):
        if not line.startswith("decisions read"):
            console.print(f"  {line}")
    if dry_run:
        console.print("dry run: nothing trained, nothing recorded")
        return
    if not plan.learner_cls.reads_texts:
        encoder = policy.encoder if policy is not None else default_encoder()
        with common.progress() as bar:
            task = bar.add_task("embedding texts", total=len(data))
            encoder.encode(data.texts, progress=lambda k: bar.advance(task, k))
    store = common.open_store(cfg)
    try:
        dump = cfg.training.model_dump(mode="json")
        outcome = _fit(
            plan, lambda bar: train_from_labels(store, plan, data, policy, dump, path, progress=bar)
        )
    finally:
        store.close()
    _print_outcome(plan, outcome, len(data))


def register(app: typer.Typer) -> None:
    app.command(epilog=_learner_help())(train)
