"""``rewardloop distil``: a teacher behind an OpenAI-compatible chat endpoint re-answers the logged
prompts; the student generator learns its answers by SFT (:mod:`rewardloop.loop.distil`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from rewardloop.cli.common import (
    ConfigOption,
    KeyEnv,
    Sets,
    Since,
    Until,
    console,
    fail,
    open_store,
    progress,
    window_option,
)

if TYPE_CHECKING:
    from rewardloop.loop.distil import DistilResult

TeacherUrl = Annotated[
    str,
    typer.Option("--teacher-url", help="the teacher's OpenAI-compatible API base, e.g. http://host:8000/v1"),
]
Student = Annotated[str, typer.Option("--policy", "-p", help="the student: a generator policy of the config")]
TeacherModel = Annotated[
    str, typer.Option("--teacher-model", help="the teacher's model name (rewardloop's: a policy name)")
]
PromptsFrom = Annotated[
    str | None,
    typer.Option("--prompts-from", help="re-answer this policy's logged prompts (default: the student's)"),
]


def distil(
    teacher_url: TeacherUrl,
    student: Student,
    teacher_model: TeacherModel = "teacher",
    key_env: KeyEnv = None,
    prompts_from: PromptsFrom = None,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="only the newest N logged decisions")
    ] = None,
    max_tokens: Annotated[int, typer.Option("--max-tokens", min=1, help="longest teacher answer")] = 256,
    config: ConfigOption = None,
    sets: Sets = None,
    since: Since = None,
    until: Until = None,
) -> None:
    """Distil a teacher behind an OpenAI-compatible chat endpoint into a generator, by SFT on its answers.

    The teacher re-answers each distinct logged prompt (the decisions of --prompts-from, as they were
    served); the student (--policy, from training.init_from) is fine-tuned with the sft learner and
    training's options on those answers, saved, and recorded as a TrainingRun. The key is read from
    the environment variable --key-env names, and is never recorded.
    """
    from rewardloop.cli.train import fit_errors, resolve_project
    from rewardloop.config import ConfigError
    from rewardloop.loop.distil import distil as run_distil
    from rewardloop.loop.training import TrainingError, resolve_plan
    from rewardloop.policies.remote import ChatEndpoint, EndpointError

    overrides = [*(sets or []), f"training.policy={student}"]
    overrides += [f"training.max_episodes={limit}"] if limit is not None else []
    try:
        cfg, base = resolve_project(config, overrides, "sft")
        plan = resolve_plan(cfg, base, window=window_option(since, until))
        teacher = ChatEndpoint(teacher_url, teacher_model, key_env, max_tokens=max_tokens)
    except (ConfigError, TrainingError) as err:
        raise fail(str(err)) from None
    except EndpointError as err:
        raise fail(f"--teacher-{err.field.replace('_', '-')}: {err.reason}") from None
    store = open_store(cfg)
    try:
        with progress() as bar, fit_errors():
            asking = bar.add_task(f"asking {teacher_model}", total=None)
            training = bar.add_task("training sft", total=None, visible=False)
            result = run_distil(
                store,
                plan,
                teacher,
                prompts_from,
                training_dump=cfg.training.model_dump(mode="json"),
                asking=lambda k, n: bar.update(asking, completed=k, total=n),
                progress=lambda step, total, _m: bar.update(
                    training, completed=step, total=total, visible=True
                ),
            )
    finally:
        store.close()
    _summary(result, teacher_model)


def _summary(result: DistilResult, teacher_model: str) -> None:
    outcome, data = result.outcome, result.examples
    console.print(
        f"[green]distilled[/green] {teacher_model} into {outcome.run.policy}: {len(data)} teacher answers to "
        f"{result.prompts_from}'s prompts, sft in {outcome.metrics['seconds']:.1f}s; run {outcome.run.id}"
    )
    for reason, n in sorted(data.skipped.items()):
        console.print(f"  skipped: {n} {reason}")
    for k, v in outcome.metrics.items():
        console.print(f"  {k}: {v:g}")
    console.print(f"  artifact: {outcome.artifact}")


def register(app: typer.Typer) -> None:
    app.command()(distil)
