"""``rewardloop train``: train a policy on logged decisions and feedback; record the run in the store.

Every learner in ``rewardloop.learners.LEARNERS`` runs through the same steps (the contract is written
out in :class:`rewardloop.learners.base.Learner`): resolve its config from the ``training`` section,
read the policy's decisions with feedback (and compiled rewards) in the window, build the learner's
data, fit, save the artifact, record a TrainingRun.
"""

from __future__ import annotations

import dataclasses
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

from rewardloop.cli.common import ConfigOption, console, fail, open_store, progress
from rewardloop.config import DEFAULT_PATH, ConfigError, ProjectConfig, load_config
from rewardloop.encoders import default_encoder
from rewardloop.learners import (
    LEARNERS,
    BanditData,
    LabelledData,
    LearnerConfigError,
    bandit_data_from_batch,
)
from rewardloop.learners.base import resolve_config
from rewardloop.policies.classifier import ClassifierPolicy
from rewardloop.store import finish_run, read_decisions, start_run
from rewardloop.types import DecisionBatch, TrainingRun


def resolve_project(config: Path | None, sets: list[str], learner: str | None) -> tuple[ProjectConfig, Path]:
    """The project config after ``--set`` and ``--learner``; also the folder relative paths start from."""
    overrides = [*sets, f"training.learner={learner}"] if learner is not None else sets
    cfg = load_config(config, overrides)
    return cfg, (config if config is not None else DEFAULT_PATH).parent.resolve()


def _parse_time(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        t = datetime.fromisoformat(value)
        return t if t.tzinfo is not None else t.replace(tzinfo=UTC)  # naive times are UTC, as in the store
    except ValueError:
        raise fail(
            f"{option}: not an ISO date/time: {value!r} (e.g. 2026-01-31 or 2026-01-31T12:00)"
        ) from None


def _summarise_data(data: Any, batch: DecisionBatch) -> list[str]:
    lines = [f"decisions read: {len(batch)}"]
    if isinstance(data, LabelledData):
        lines.append(f"examples: {len(data)} (total weight {float(np.sum(data.sample_weight)):.2f})")
        counts = sorted(data.label_counts().items(), key=lambda kv: -kv[1])
        shown = ", ".join(f"{k} {v}" for k, v in counts[:10])
        lines.append(f"labels: {len(counts)} ({shown}{', ...' if len(counts) > 10 else ''})")
        for reason, n in sorted(data.skipped.items()):
            lines.append(f"skipped feedback: {n} {reason}")
    else:
        lines.append(f"examples: {len(data)}")
        reward = getattr(data, "reward", None)
        if reward is not None and len(reward):
            lines.append(
                f"reward: mean {float(np.mean(reward)):.4f}, min {np.min(reward):g}, max {np.max(reward):g}"
            )
    return lines


def train(
    config: ConfigOption = None,
    learner: Annotated[
        str | None,
        typer.Option("--learner", "-l", help=f"override training.learner ({', '.join(LEARNERS)})"),
    ] = None,
    sets: Annotated[
        list[str] | None,
        typer.Option("--set", "-s", help="override a config key, e.g. --set training.lr=1e-5 (repeatable)"),
    ] = None,
    since: Annotated[str | None, typer.Option(help="only decisions logged at or after this ISO time")] = None,
    until: Annotated[str | None, typer.Option(help="only decisions logged before this ISO time")] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="print the resolved config and the data; train nothing")
    ] = False,
) -> None:
    """Train the policy named in the config on its logged decisions and feedback.

    Supervised learners (supervised, lora) learn from label corrections and confirmed decisions.

    RL learners learn from the compiled rewards of training.reward_spec, from training.init_from.

    Each run is recorded in the store: config, data window, metrics and the artifact path.
    """
    try:
        cfg, base = resolve_project(config, sets or [], learner)
    except ConfigError as err:
        raise fail(str(err)) from None
    training = cfg.training
    cls: Any = LEARNERS.get(training.learner)  # a Learner class (see learners.base.Learner)
    if cls is None:
        raise fail(f"training.learner: unknown learner {training.learner!r} (known: {', '.join(LEARNERS)})")
    try:
        lconfig, ignored = resolve_config(cls.config_class, training)
    except LearnerConfigError as err:
        raise fail(str(err)) from None
    if not cfg.policies:
        raise fail("policies: no policy is defined; add one to the project file (see `rewardloop init`)")
    try:
        policy_cfg = cfg.policy(training.policy)
        spec = cfg.reward_spec(training.reward_spec) if training.reward_spec else None
    except ConfigError as err:
        raise fail(f"training.{'policy' if 'policies' in str(err) else 'reward_spec'}: {err}") from None
    if policy_cfg.kind != "classifier":
        raise fail(f"training.policy: {policy_cfg.name!r} is a {policy_cfg.kind}; train trains classifiers")
    if getattr(cls, "needs_rewards", True) and spec is None:
        known = ", ".join(s.name for s in cfg.rewards) or "none defined"
        raise fail(
            f"training.reward_spec: the {training.learner} learner learns from compiled rewards; "
            f"name a reward spec (known: {known})"
        )
    policy: ClassifierPolicy | None = None
    if training.init_from:
        path = Path(training.init_from)
        path = path if path.is_absolute() else base / path
        try:
            policy = ClassifierPolicy.load(path)
        except (FileNotFoundError, ValueError, KeyError) as err:
            raise fail(f"training.init_from: cannot load a policy from {path}: {err}") from None
    elif getattr(cls, "needs_policy", True):
        raise fail(
            f"training.init_from: the {training.learner} learner improves a trained policy; "
            "set it to a saved policy folder (e.g. one from `rewardloop train --learner supervised`)"
        )
    elif policy_cfg.labels:
        policy = ClassifierPolicy(policy_cfg.labels, name=policy_cfg.name)

    lo, hi = _parse_time(since, "--since"), _parse_time(until, "--until")
    store = open_store(cfg)
    try:
        batch = read_decisions(
            store,
            policy=policy_cfg.name,
            since=lo,
            until=hi,
            kind="classifier",
            include_feedback=True,
            reward_spec=(spec.name, spec.version) if spec is not None else None,
        )
        used = [d.text for d in batch if d.text and (d.id in batch.feedback or d.id in batch.rewards)]
        if used and not dry_run and not getattr(cls, "reads_texts", False):
            # Embed once, with a progress bar: the learner's own embedding calls then hit the cache.
            encoder = policy.encoder if policy is not None else default_encoder()
            with progress() as bar:
                task = bar.add_task("embedding texts", total=len(used))
                encoder.encode(used, progress=lambda k: bar.advance(task, k))
        build: Any = getattr(cls, "data_from_batch", bandit_data_from_batch)
        if dry_run and build is bandit_data_from_batch and policy is not None:
            # The dry run counts rows and rewards; it does not need (minutes of) embeddings.
            dim = policy.in_dim
            build = lambda b, p, c: BanditData.from_batch(  # noqa: E731
                b, p.labels, lambda texts: np.zeros((len(texts), dim), np.float32)
            )
        try:
            data = build(batch, policy, lconfig)
        except ValueError as err:
            raise fail(f"data: {err}") from None
        created = [d.created_at for d in batch]
        window = (lo or (min(created) if created else None), hi or (max(created) if created else None))
        console.print(f"[bold]learner[/bold] {training.learner} ({cls.config_class.__name__})")
        if dry_run:  # every field with its help; a real run shows the values only
            for f in dataclasses.fields(lconfig):
                console.print(
                    f"  {f.name} = {getattr(lconfig, f.name)!r}  [dim]# {f.metadata.get('help', '')}[/dim]"
                )
        else:
            values = ", ".join(f"{f.name}={getattr(lconfig, f.name)!r}" for f in dataclasses.fields(lconfig))
            console.print(f"  {values}", highlight=False)
        if ignored:
            console.print(f"  [yellow]not used by {training.learner}:[/yellow] {', '.join(ignored)}")
        console.print(
            f"[bold]data[/bold] policy {policy_cfg.name}, window {window[0] or '-'} .. {window[1] or '-'}"
            + (f", rewards {spec.name} v{spec.version}" if spec else "")
        )
        for line in _summarise_data(data, batch):
            console.print(f"  {line}")
        if dry_run:
            console.print("dry run: nothing trained, nothing recorded")
            return
        if len(data) == 0:
            raise fail(
                "data: no training examples in the window (supervised learners need label corrections or "
                "confirmations; RL learners need decisions with compiled rewards)"
            )
        if policy is None:  # no labels configured: the labels seen in the data
            labels = sorted(set(getattr(data, "labels", [])))
            try:
                policy = ClassifierPolicy(labels, name=policy_cfg.name)
            except ValueError as err:
                raise fail(f"policies.labels: none configured, and the data gives: {err}") from None

        run = start_run(
            store,
            TrainingRun(
                policy=policy_cfg.name,
                learner=training.learner,
                config={
                    "training": training.model_dump(mode="json"),
                    "learner": dataclasses.asdict(lconfig),
                },
                data_window=window,
                n_samples=len(data),
            ),
        )
        started = time.perf_counter()
        try:
            with progress() as bar:
                task = bar.add_task(f"training {training.learner}", total=None)

                def on_step(step: int, total: int, metrics: Any) -> None:
                    bar.update(task, completed=step, total=total)

                trainer = cls(lconfig, progress=on_step)
                fitted = trainer.fit(data, policy=policy)
        except Exception as err:
            finish_run(store, run, {}, status="failed")
            raise fail(f"training failed ({type(err).__name__}): {err}", code=1) from None
        seconds = time.perf_counter() - started
        fitted.name, fitted.version = policy_cfg.name, run.id[:12]
        out = Path(training.output_dir)
        out = (out if out.is_absolute() else base / out) / policy_cfg.name / run.id
        fitted.save(out)
        metrics: dict[str, float] = {"n_samples": float(len(data)), "seconds": round(seconds, 3)}
        history = getattr(trainer, "loss_history_", None)
        if history:
            metrics["final_loss"] = float(history[-1])
        # A learner may report more in ``metrics_`` (e.g. PPO's clip fraction and KL).
        metrics.update({k: float(v) for k, v in getattr(trainer, "metrics_", {}).items()})
        if isinstance(data, LabelledData):
            pred = fitted.predict(data.texts)
            hit = np.array([p == t for p, t in zip(pred, data.labels, strict=True)], dtype=float)
            metrics["train_accuracy"] = float(np.average(hit, weights=data.sample_weight))
        done = finish_run(store, run, metrics, artifact_path=str(out))
    finally:
        store.close()
    console.print(
        f"[green]trained[/green] {policy_cfg.name} with {training.learner} on {len(data)} examples "
        f"in {seconds:.1f}s; run {done.id}"
    )
    for k, v in metrics.items():
        console.print(f"  {k}: {v:g}")
    console.print(f"  artifact: {out}")


def register(app: typer.Typer) -> None:
    app.command()(train)
