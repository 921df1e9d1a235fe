"""``rewardloop evals``: run answering agents on a question set, judge the answers, compare the agents
(:mod:`rewardloop.evaluation.judged`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from rewardloop.cli.common import ConfigOption, ExitCode, KeyEnv, Project, console, fail, progress

if TYPE_CHECKING:
    from rewardloop.evaluation.judged import Agent, EvalsReport, Judge

AgentsOption = Annotated[
    str,
    typer.Option(
        "--agents",
        help="comma-separated agents: a registered generator (NAME, NAME@alias or NAME@version), a saved "
        "generator folder, or MODEL=URL for a model behind an OpenAI-compatible endpoint",
    ),
]
QuestionsOption = Annotated[
    Path, typer.Option("--questions", help="JSONL: question (or text), optional id, reference, passages")
]
JudgeOption = Annotated[
    str, typer.Option("--judge", help="none (token F1 to the reference), rm (a reward model) or llm")
]
JudgeUrl = Annotated[
    str | None, typer.Option("--judge-url", help="--judge llm: its OpenAI-compatible API base")
]
JudgeModel = Annotated[str, typer.Option("--judge-model", help="--judge llm: its model name")]
OutOption = Annotated[Path, typer.Option("--out", "-o", help="folder for report.json and report.html")]
Resamples = Annotated[int, typer.Option("--bootstrap", min=100, help="bootstrap resamples of the questions")]


def evals(
    agents: AgentsOption,
    questions: QuestionsOption,
    judge: JudgeOption = "none",
    rm: Annotated[
        Path | None, typer.Option("--rm", help="--judge rm: a `rewardloop rm train` folder")
    ] = None,
    judge_url: JudgeUrl = None,
    judge_model: JudgeModel = "judge",
    key_env: KeyEnv = None,
    out: OutOption = Path("evals"),
    bootstrap: Resamples = 2000,
    seed: Annotated[int, typer.Option("--seed", help="seed of the bootstrap and of sampled agents")] = 0,
    config: ConfigOption = None,
    project_name: Project = "default",
) -> None:
    """Run agents on a question set, score their answers with a judge, and compare them (JSON + HTML).

    The report gives each agent's mean score with a 95% bootstrap interval, pairwise wins per
    question, and every answer with its score.
    """
    from rewardloop.evaluation.judged import EvalsInputError, read_questions, run_evals, write_report
    from rewardloop.policies.remote import EndpointError, EndpointUnavailable

    try:
        judged = _judge(judge, rm, judge_url, judge_model, key_env)
        asked = read_questions(questions)
        built = _agents(agents, key_env, config, project_name, seed)
        with progress() as bar:
            task = bar.add_task("answering and judging", total=None)
            report = run_evals(
                built, asked, judged, n_bootstrap=bootstrap, seed=seed,
                progress=lambda k, n: bar.update(task, completed=k, total=n),
            )  # fmt: skip
    except FileNotFoundError as err:
        raise fail(str(err), ExitCode.NOT_FOUND) from None
    except (EvalsInputError, EndpointError) as err:
        raise fail(str(err)) from None
    except EndpointUnavailable as err:
        raise fail(f"an endpoint failed: {err}", ExitCode.RUNTIME) from None
    json_path, html_path = write_report(report, out)
    _summary(report)
    console.print(f"report: {json_path} and {html_path}")


def _judge(name: str, rm: Path | None, url: str | None, model: str, key_env: str | None) -> Judge:
    from rewardloop.evaluation.judged import (
        JUDGES,
        EvalsInputError,
        LLMJudge,
        ReferenceJudge,
        RewardModelJudge,
    )
    from rewardloop.policies.remote import ChatEndpoint

    if name not in JUDGES:
        raise EvalsInputError(f"--judge: one of {', '.join(JUDGES)}, got {name!r}")
    if name == "rm":
        if rm is None or not (rm / "meta.json").is_file():
            raise EvalsInputError("--rm: --judge rm needs a reward-model folder (`rewardloop rm train`)")
        from rewardloop.policies.reranker import Reranker

        return RewardModelJudge(Reranker.load(rm))
    if name == "llm":
        if url is None:
            raise EvalsInputError("--judge-url: --judge llm needs the judge's OpenAI-compatible API base")
        return LLMJudge(ChatEndpoint(url, model, key_env, max_tokens=8))
    return ReferenceJudge()


def _agents(spec: str, key_env: str | None, config: Path | None, project_name: str, seed: int) -> list[Agent]:
    from rewardloop.evaluation.judged import EndpointAgent, EvalsInputError, GeneratorAgent
    from rewardloop.policies.generator import GeneratorPolicy
    from rewardloop.policies.remote import ChatEndpoint

    tokens = [t.strip() for t in spec.split(",") if t.strip()]
    if not tokens:
        raise EvalsInputError("--agents: name at least one agent")
    built: list[Agent] = []
    registry: Any = None
    for token in tokens:
        if "=" in token:
            model, url = token.split("=", 1)
            built.append(EndpointAgent(model, ChatEndpoint(url, model, key_env)))
        elif Path(token).is_dir():
            built.append(GeneratorAgent(Path(token).name, GeneratorPolicy.load(token), seed))
        else:
            registry = registry or _registry(config, project_name)
            built.append(GeneratorAgent(token, _registered(registry, token), seed))
    return built


def _registry(config: Path | None, project_name: str) -> Any:
    from rewardloop.cli.common import open_registry, project

    return open_registry(project(config), project_name)[1]


def _registered(registry: Any, ref: str) -> Any:
    """The registered generator ``ref`` names, loaded (an EvalsInputError naming it otherwise)."""
    from rewardloop.evaluation.judged import EvalsInputError
    from rewardloop.policies.generator import GeneratorPolicy
    from rewardloop.registry import RegistryError

    try:
        version = registry.resolve(ref)
    except RegistryError as err:
        raise EvalsInputError(f"--agents: {ref}: {err}") from None
    if version.kind != "generator":
        raise EvalsInputError(f"--agents: {ref} is a {version.kind} policy, not a generator")
    return GeneratorPolicy.load(registry.verify(version))


def _summary(report: EvalsReport) -> None:
    console.print(f"[bold]judge[/bold] {report.judge}: {len(report.questions)} questions")
    for s in report.summaries:
        console.print(f"  {s.agent}: mean {s.mean:.3f} [{s.lower:.3f}, {s.upper:.3f}] on {s.n}")
    for p in report.pairwise:
        console.print(f"  {p.a} vs {p.b}: {p.wins} wins, {p.ties} ties, {p.losses} losses")


def register(app: typer.Typer) -> None:
    app.command()(evals)
