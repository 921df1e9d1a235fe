"""``rewardloop rewards compile`` and ``rewardloop rm train|score``: rewards and reward models."""

from __future__ import annotations

import warnings
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from rewardloop.cli.common import (
    ConfigOption,
    Since,
    Until,
    console,
    errors_as_messages,
    fail,
    not_found,
    open_store,
    progress,
    project,
    window_option,
)
from rewardloop.config import ConfigError

if TYPE_CHECKING:
    from rewardloop.config import ProjectConfig
    from rewardloop.loop.reward_models import TrainResult
    from rewardloop.rewards import PairwiseConfig
    from rewardloop.store import Store

rewards_app = typer.Typer(
    help="Compile rewards from feedback with the reward specs of rewardloop.yaml.", no_args_is_help=True
)
rm_app = typer.Typer(
    help="Reward models for reranking candidate answers: train one, score candidates with it.",
    no_args_is_help=True,
)


def _user_errors() -> tuple[type[Exception], ...]:
    """The errors a command reports as a message (imported here: the reward specs load numpy)."""
    from rewardloop.datasets import DataMissingError
    from rewardloop.rewards import RewardError

    return (RewardError, ConfigError, DataMissingError, ValueError, OSError)


@rewards_app.command("compile")
def compile_cmd(
    spec: Annotated[
        list[str] | None,
        typer.Option("--spec", help="reward spec name from rewardloop.yaml (repeatable; default: all)"),
    ] = None,
    policy: Annotated[str | None, typer.Option(help="only this policy's decisions")] = None,
    since: Since = None,
    until: Until = None,
    incremental: Annotated[
        bool,
        typer.Option(
            "--incremental/--full",
            help="only decisions with feedback newer than this spec version's last compile "
            "(--full recompiles the window; both are idempotent)",
        ),
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Compile rewards from the feedback in the store.

    Each decision's feedback (ratings, corrections, preferences, multi-level scores, implicit signals)
    becomes one reward per spec version, with its components, the ids of the feedback rows it came
    from, and the raters' disagreement. Decisions without usable feedback get no reward (never 0).
    """
    from rewardloop.loop.compile import compile_rewards
    from rewardloop.rewards import RewardSpec
    from rewardloop.rewards.spec import find_spec

    cfg = project(config)
    if not cfg.rewards:
        raise fail(
            "rewardloop.yaml declares no reward specs: add one under `rewards:` (see `rewardloop init`)"
        )
    window = window_option(since, until)
    with errors_as_messages(*_user_errors()):
        specs = (
            [find_spec(cfg.rewards, n) for n in spec]
            if spec
            else [RewardSpec.from_config(s) for s in cfg.rewards]
        )
        store = open_store(cfg)
        with progress() as bar:
            task = bar.add_task("compiling", total=len(specs))
            reports = []
            for s in specs:
                reports.append(
                    compile_rewards(store, s, policy=policy, window=window, incremental=incremental)
                )
                bar.advance(task)
    for r in reports:
        console.print(r.summary())


class ModelKind(StrEnum):
    lr = "lr"
    pairwise = "pairwise"


@rm_app.command("train")
def train_cmd(
    out: Annotated[Path, typer.Option("--out", "-o", help="folder to write the model to")],
    source: Annotated[
        str,
        typer.Option(
            help="training data: 'vader' (the VADER human ratings; for lr, snippets rated within ±0.5 of "
            "neutral are left out), 'store' (reranker decisions: compiled rewards for lr, preference "
            "feedback for pairwise) or a .jsonl file ({prompt, answer, rating} or "
            "{prompt, chosen, rejected})",
        ),
    ] = "vader",
    model: Annotated[
        ModelKind,
        typer.Option(help="lr: MiniLM embeddings + logistic regression; pairwise: Bradley–Terry MiniLM"),
    ] = ModelKind.lr,
    threshold: Annotated[
        float, typer.Option(help="lr: a rating above this is 'good' (VADER: mean rating in [-4, 4])")
    ] = 0.0,
    min_samples: Annotated[int, typer.Option(help="lr: refuse to train on fewer rated samples")] = 50,
    spec: Annotated[
        str | None, typer.Option(help="store + lr: the reward spec whose rewards are the ratings")
    ] = None,
    policy: Annotated[
        str, typer.Option(help="the reranker policy the TrainingRun is logged under")
    ] = "reranker",
    limit: Annotated[int, typer.Option(help="vader: snippets per corpus")] = 300,
    steps: Annotated[int | None, typer.Option(help="pairwise: stop after this many steps")] = None,
    max_pairs: Annotated[int, typer.Option(help="pairwise + vader: training pairs")] = 800,
    margin_scale: Annotated[
        float, typer.Option(help="pairwise: margin = scale · rating gap (0: none)")
    ] = 0.0,
    lora: Annotated[bool, typer.Option(help="pairwise: train LoRA adapters instead of every weight")] = False,
    seed: Annotated[int, typer.Option(help="random seed")] = 0,
    config: ConfigOption = None,
) -> None:
    """Train a reward model and log the run (a TrainingRun in the store).

    Reports held-out accuracy and ROC AUC (lr) or pairwise accuracy (pairwise). The model is saved
    without pickle: coefficients + JSON (lr) or safetensors (pairwise).
    """
    from rewardloop.rewards import PairwiseConfig

    cfg = project(config)
    with errors_as_messages(*_user_errors()):
        store = open_store(cfg)
        if model is ModelKind.lr:
            result = _train_lr(store, cfg, source, spec, threshold, min_samples, limit, seed, out, policy)
        else:
            pcfg = PairwiseConfig(max_steps=steps, margin_scale=margin_scale, lora=lora, random_state=seed)
            result = _train_pairwise(store, source, pcfg, limit, max_pairs, out, policy)
    shown = ", ".join(f"{k} {v:.4g}" for k, v in sorted(result.metrics.items()))
    console.print(f"saved {model.value} reward model to {result.artifact}: {shown}")
    if result.run is not None:
        console.print(f"logged training run {result.run.id}")


def _train_lr(
    store: Store,
    cfg: ProjectConfig,
    source: str,
    spec: str | None,
    threshold: float,
    min_samples: int,
    limit: int,
    seed: int,
    out: Path,
    policy: str,
) -> TrainResult:
    """``rm train --model lr``: rated answers from ``source``, a logistic regression on embeddings."""
    from rewardloop.loop import reward_models as rmod
    from rewardloop.rewards import EmbeddingRewardModel

    if source == "vader":
        data = rmod.rated_from_vader(limit=limit, seed=seed)
    elif source == "store":
        if spec is None:
            raise fail("--source store needs --spec: the reward spec whose rewards are the ratings")
        from rewardloop.rewards import RewardSpec

        s = RewardSpec.from_config(cfg.reward_spec(spec))
        data = rmod.rated_from_store(store, s.name, s.version)
    else:
        data = rmod.rated_from_jsonl(source)
    lr = EmbeddingRewardModel(threshold=threshold, min_samples=min_samples, random_state=seed)
    with console.status(f"encoding {len(data)} answers and fitting ..."):
        result = rmod.train_logged(
            lr,
            lambda: lr.fit(data.prompts, data.answers, data.ratings, data.weights),
            out,
            n_samples=len(data),
            store=store,
            policy=policy,
            config={**rmod.config_of(lr), "source": source},
        )
    console.print(lr.report_.rstrip())
    return result


def _train_pairwise(
    store: Store,
    source: str,
    pcfg: PairwiseConfig,
    limit: int,
    max_pairs: int,
    out: Path,
    policy: str,
) -> TrainResult:
    """``rm train --model pairwise``: preference pairs from ``source``, a Bradley–Terry MiniLM."""
    from rewardloop.loop import reward_models as rmod
    from rewardloop.rewards import PairwiseRewardModel

    seed = pcfg.random_state
    if source == "vader":
        train, test = rmod.pairs_from_vader(limit=limit, seed=seed, max_pairs=max_pairs, test_size=0.25)
    else:
        pairs = rmod.pairs_from_store(store) if source == "store" else rmod.pairs_from_jsonl(source)
        cut = int(len(pairs) * 0.8)
        train, test = pairs[:cut], pairs[cut:]
    if not train:
        raise fail(f"no preference pairs to train on from {source}")
    bt = PairwiseRewardModel(pcfg)
    n_steps = pcfg.max_steps or -(-len(train) // pcfg.batch_size) * pcfg.epochs
    with progress() as bar:
        task = bar.add_task("training", total=n_steps)
        return rmod.train_logged(
            bt,
            lambda: bt.fit(train, callback=lambda step, loss: bar.update(task, completed=step)),
            out,
            n_samples=len(train),
            store=store,
            policy=policy,
            config={**rmod.config_of(bt), "source": source},
            evaluate=lambda: {"pairwise_accuracy": bt.pairwise_accuracy(test)} if test else {},
        )


@rm_app.command("score")
def score_cmd(
    model_dir: Annotated[Path, typer.Argument(help="a folder written by `rewardloop rm train`")],
    prompt: Annotated[str, typer.Option("--prompt", help="the prompt the candidates answer")],
    candidates: Annotated[list[str], typer.Argument(help="candidate answers (or use --file)")] = [],  # noqa: B006
    file: Annotated[Path | None, typer.Option(help="a text file with one candidate a line")] = None,
    top_k: Annotated[int | None, typer.Option(help="show only the k best")] = None,
) -> None:
    """Score and rank candidate answers to a prompt with a trained reward model."""
    from rewardloop.policies.reranker import Reranker

    with errors_as_messages(*_user_errors()):
        texts = list(candidates)
        if file is not None:
            texts += [line for line in file.read_text().splitlines() if line.strip()]
        if not texts:
            raise fail("no candidates: give them as arguments or with --file")
        if not (model_dir / "meta.json").exists():
            raise not_found(f"{model_dir}: not a reward-model folder (train one with `rewardloop rm train`)")
        with console.status("loading the reward model ..."), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            reranker = Reranker.load(model_dir)
        ranked = reranker.top_k(prompt, texts, k=top_k) if top_k else reranker.rerank(prompt, texts)
    table = Table("rank", "score", "#", "candidate")
    for rank, r in enumerate(ranked, 1):
        table.add_row(str(rank), f"{r.score:.4f}", str(r.index), r.text)
    console.print(table)


def register(app: typer.Typer) -> None:
    """Add ``rewards`` and ``rm`` to the main command."""
    app.add_typer(rewards_app, name="rewards")
    app.add_typer(rm_app, name="rm")
