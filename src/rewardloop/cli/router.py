"""``rewardloop router``: per-arm statistics and leaderboards of a router's logs, and batch retraining.

Reads the store named in ``rewardloop.yaml``: decisions of a router policy with the rewards compiled by
one reward spec.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import typer
from rich.table import Table

from rewardloop.cli.common import (
    ComputeOption,
    ConfigOption,
    JsonFlag,
    RayAddress,
    compute_config,
    console,
    errors_as_messages,
    fail,
    not_found,
    open_store,
    print_json,
    project,
)
from rewardloop.learners.bandits import ROUTERS, BanditRouter, load_router
from rewardloop.learners.bandits.replay import arms_of
from rewardloop.policies.router import ArmStats, ContextFeatures, LeaderboardRow, RouterInputError
from rewardloop.store import read_decisions
from rewardloop.types import DecisionBatch, TrainingRun

app = typer.Typer(
    help="Router statistics, leaderboards and retraining from logged decisions + rewards.",
    no_args_is_help=True,
)

PolicyOpt = Annotated[
    str, typer.Option("--policy", "-p", help="router policy name, as logged on its decisions")
]
SpecOpt = Annotated[
    str,
    typer.Option(
        "--reward-spec", "-r", help="reward spec whose compiled rewards to use: NAME or NAME:VERSION"
    ),
]
CategoryKeyOpt = Annotated[
    str, typer.Option("--category-key", help="decision metadata key that holds the category")
]
#: The routers ``router train --algorithm`` trains (the keys of ``learners.bandits.ROUTERS``; a test checks).
RouterName = Literal["linucb", "lin_thompson", "epsilon_greedy", "softmax", "beta_thompson"]
Features = Literal["numeric", "text", "both"]
FeaturesOpt = Annotated[
    Features, typer.Option("--features", help="context: numeric (decision features), text (MiniLM) or both")
]
PartitionsOpt = Annotated[
    int | None,
    typer.Option(
        "--partitions",
        min=1,
        help="replay the log in N parts summed exactly (default compute.replay_partitions)",
    ),
]
LevelOpt = Annotated[float, typer.Option("--level", min=0.5, max=0.999, help="confidence level of intervals")]


def _spec(text: str) -> tuple[str, int]:
    name, _, version = text.partition(":")
    if not name:
        raise fail("--reward-spec: give NAME or NAME:VERSION")
    try:
        v = int(version) if version else 1
    except ValueError:
        raise fail(f"--reward-spec: version must be an integer, got {version!r}") from None
    return name, v


def _load(config: Path | None, policy: str, spec: str, version: str | None = None) -> DecisionBatch:
    cfg = project(config)
    store = open_store(cfg)
    try:
        with console.status("reading decisions and rewards ..."):
            batch = read_decisions(
                store, policy=policy, version=version, kind="router", reward_spec=_spec(spec)
            )
    finally:
        store.close()
    if not len(batch):
        raise not_found(f"no router decisions of policy {policy!r} in the store")
    if not batch.rewards:
        raise fail(
            f"none of the {len(batch)} decisions of {policy!r} has a reward of spec {spec!r}: "
            "compile rewards first"
        )
    return batch


def _fmt(v: float) -> str:
    return "-" if math.isnan(v) else f"{v:.3f}"


def _table(rows: list[LeaderboardRow], title: str, level: float, with_category: bool = False) -> Table:
    t = Table(title=title)
    if with_category:
        t.add_column("category")
    for name in ("arm", "pulls", "mean reward", f"{level:.0%} interval"):
        t.add_column(name, justify="left" if name == "arm" else "right")
    for r in rows:
        cells = [
            r.arm + (" (retired)" if r.retired else ""),
            str(r.pulls),
            _fmt(r.mean),
            f"[{r.low:.3f}, {r.high:.3f}]",
        ]
        t.add_row(*([r.category or "-"] if with_category else []), *cells)
    return t


@app.command()
def stats(
    policy: PolicyOpt,
    reward_spec: SpecOpt,
    category_key: CategoryKeyOpt = "category",
    level: LevelOpt = 0.95,
    as_json: JsonFlag = False,
    config: ConfigOption = None,
) -> None:
    """Reward per arm within each category (decision metadata "category" by default), from the store."""
    batch = _load(config, policy, reward_spec)
    s = ArmStats.from_batch(batch, category_key=category_key)
    arms = arms_of(batch)
    cats = s.categories()
    if as_json:
        rows = [row for c in cats for row in s.leaderboard(c, level, arms)]
        print_json(
            {"rewarded": len(batch.with_rewards()), "decisions": len(batch), "arms": arms, "items": rows}
        )
        return
    if not cats:
        console.print(f"no decision of {policy!r} has metadata {category_key!r}; showing overall only")
    rows = [row for c in cats for row in s.leaderboard(c, level, arms)]
    if rows:
        console.print(_table(rows, f"{policy}: reward per arm per category", level, with_category=True))
    console.print(
        f"{len(batch.with_rewards())} rewarded decisions of {len(batch)}, "
        f"{len(arms)} arms, {len(cats)} categories"
    )


@app.command()
def leaderboard(
    policy: Annotated[
        str | None, typer.Option("--policy", "-p", help="router policy name in the store")
    ] = None,
    reward_spec: Annotated[
        str | None, typer.Option("--reward-spec", "-r", help="NAME or NAME:VERSION")
    ] = None,
    router: Annotated[
        Path | None,
        typer.Option("--router", help="a saved router folder: its own running statistics instead"),
    ] = None,
    category: Annotated[str | None, typer.Option("--category", help="only this category")] = None,
    category_key: CategoryKeyOpt = "category",
    level: LevelOpt = 0.95,
    as_json: JsonFlag = False,
    config: ConfigOption = None,
) -> None:
    """Arms ranked by mean reward with pulls and an interval: from the store, or from a saved router."""
    if router is not None:
        with errors_as_messages(RouterInputError):
            r = load_router(router)
        rows = r.leaderboard(category, level)
        source = f"router {router}"
    else:
        if policy is None or reward_spec is None:
            raise fail("give --policy and --reward-spec (read the store), or --router DIR (a saved router)")
        batch = _load(config, policy, reward_spec)
        s = ArmStats.from_batch(batch, category_key=category_key)
        rows = s.leaderboard(category, level, arms_of(batch))
        source = f"policy {policy}, rewards {reward_spec}"
    if as_json:
        print_json({"source": source, "category": category, "level": level, "items": rows})
        return
    title = f"leaderboard ({source}{', category ' + category if category else ''})"
    console.print(_table(rows, title, level))
    best = next((r for r in rows if r.pulls), None)
    if best is not None:
        console.print(f"best: {best.arm} ({best.mean:.3f} over {best.pulls} pulls)")


@app.command()
def train(
    policy: PolicyOpt,
    reward_spec: SpecOpt,
    out: Annotated[Path, typer.Option("--out", "-o", help="folder to save the trained router in")],
    algorithm: Annotated[RouterName, typer.Option("--algorithm", "-a", help="router to train")] = "linucb",
    features: FeaturesOpt = "numeric",
    start_from: Annotated[
        Path | None,
        typer.Option("--from", help="a saved router to continue from (default: fresh, at its priors)"),
    ] = None,
    weighting: Annotated[
        Literal["auto", "ipw", "none"],
        typer.Option(help="importance weights: auto (only other policies' logs), ipw (all rows), none"),
    ] = "auto",
    max_weight: Annotated[float, typer.Option(help="clip importance weights at this value")] = 10.0,
    reward_range: Annotated[
        str | None,
        typer.Option(help="declared reward range LOW,HIGH (default: from the reward spec's scale)"),
    ] = None,
    alpha: Annotated[float, typer.Option(help="LinUCB confidence width α")] = 1.0,
    epsilon: Annotated[float, typer.Option(help="ε-greedy exploration share")] = 0.1,
    temperature: Annotated[float, typer.Option(help="softmax temperature τ")] = 0.1,
    v: Annotated[float, typer.Option("--v", help="linear Thompson posterior scale")] = 0.25,
    l2: Annotated[float, typer.Option(help="ridge penalty λ")] = 1.0,
    seed: Annotated[int, typer.Option(help="random seed of the router")] = 0,
    add_unknown_arms: Annotated[bool, typer.Option(help="add logged arms a --from router lacks")] = False,
    partitions: PartitionsOpt = None,
    backend: ComputeOption = None,
    ray_address: RayAddress = None,
    config: ConfigOption = None,
) -> None:
    """Replay a router policy's logged decisions + rewards into a router (vectorised) and save it.

    With --partitions N the per-arm sums of N parts of the log are computed apart (Ray tasks on
    --backend ray) and added up: the same router as one replay, to rounding.
    """
    from rewardloop.learners.base import DataSpec
    from rewardloop.loop.compute import ComputeBackend

    cfg = project(config)
    compute = ComputeBackend(compute_config(cfg, backend, ray_address))
    parts = partitions if partitions is not None else cfg.compute.replay_partitions
    name, version = _spec(reward_spec)
    batch = _load(config, policy, reward_spec)
    lo_hi = _reward_range(cfg, name, reward_range)
    cls = ROUTERS[algorithm]
    feats: ContextFeatures | None = None
    with errors_as_messages(RouterInputError):
        if cls.needs_context:
            feats = _features(batch, features)
        start: BanditRouter | None = load_router(start_from) if start_from is not None else None
        if start is not None:
            router: BanditRouter = type(start)(**start.get_params())
        else:
            own = {"alpha": alpha, "epsilon": epsilon, "temperature": temperature, "v": v}
            router = _new_router(algorithm, arms_of(batch), feats, lo_hi, seed, l2, own)
        with console.status("building contexts ..."):
            rows = router.data_from_batch(batch, DataSpec(features=feats))
        run = TrainingRun(
            policy=policy,
            learner=f"router.{algorithm}",
            config={"reward_spec": f"{name}:{version}", "weighting": weighting, "partitions": parts}
            | {"backend": compute.name, **router.get_params()},
            n_samples=len(rows),
        )
        options = {"policy": start, "weighting": weighting, "own_policy": policy, "max_weight": max_weight}
        options |= {"add_unknown_arms": add_unknown_arms or start is None, "partitions": parts}
        outcome = _replay_and_record(cfg, compute, run, router, rows, out, options)
    _print_replay(algorithm, router, out, outcome.run.id)


def _replay_and_record(
    cfg: Any,
    compute: Any,
    run: TrainingRun,
    router: BanditRouter,
    rows: Any,
    out: Path,
    options: dict[str, Any],
) -> Any:
    """``router.fit(rows, **options)`` on ``compute`` (its parts as Ray tasks there), saved and recorded."""
    from rewardloop.loop.compute import ComputeError
    from rewardloop.loop.training import fit_and_record

    def fit() -> tuple[BanditRouter, list[dict[str, float]]]:
        fitted = router.fit(rows, map_parts=compute.map_parts, **options)
        return fitted, fitted.history_

    store = open_store(cfg)
    try:
        with compute:
            return fit_and_record(store, run, fit, out, evaluate=_router_metrics)
    except ComputeError as err:
        raise fail(str(err)) from None
    finally:
        store.close()


def _features(batch: DecisionBatch, features: Features) -> ContextFeatures:
    """The context builder of ``--features`` (numeric width from the first rewarded decision)."""
    first = next((d for d in batch if d.id in batch.rewards), None)
    n_num = len(first.features) if first is not None and first.features else 0
    return ContextFeatures(features, n_numeric=n_num)


def _print_replay(algorithm: str, router: BanditRouter, out: Path, run_id: str) -> None:
    report = router.replay_report_
    top = router.leaderboard()[0]
    console.print(
        f"trained {algorithm} on {report.rows} logged decisions "
        f"({report.skipped_without_reward} without reward skipped; "
        f"{report.weighted_rows} importance-weighted, ESS {report.effective_sample_size:.0f}); "
        f"{len(router.arms_)} arms, best {top.arm} at {top.mean:.3f}. "
        f"Saved to {out} (run {run_id[:8]})."
    )


#: The hyperparameter each router takes from its own command-line option.
_OWN_OPTION = {"linucb": "alpha", "epsilon_greedy": "epsilon", "softmax": "temperature", "lin_thompson": "v"}


def _new_router(
    algorithm: str,
    arms: list[str],
    feats: ContextFeatures | None,
    reward_range: tuple[float, float],
    seed: int,
    l2: float,
    options: dict[str, float],
) -> BanditRouter:
    """A fresh router at its priors, from the command's options."""
    cls = ROUTERS[algorithm]
    kw: dict[str, Any] = {"reward_range": reward_range, "random_state": seed}
    if cls.needs_context:
        assert feats is not None
        kw |= {"dim": feats.dim, "l2": l2}
    if algorithm in _OWN_OPTION:
        key = _OWN_OPTION[algorithm]
        kw[key] = options[key]
    return cls(arms, **kw)


def _router_metrics(router: BanditRouter) -> dict[str, float]:
    report = router.replay_report_
    top = router.leaderboard()[0]
    return {"rows": float(report.rows), "ess": report.effective_sample_size, "best_arm_mean": top.mean}


def _reward_range(cfg: Any, spec: str, text: str | None) -> tuple[float, float]:
    if text is not None:
        try:
            lo, hi = (float(p) for p in text.split(","))
        except ValueError:
            raise fail(f"--reward-range: give LOW,HIGH, got {text!r}") from None
        return lo, hi
    for r in cfg.rewards:
        if r.name == spec:
            return (-1.0, 1.0) if r.scale == "signed" else (0.0, 1.0)
    return (0.0, 1.0)


@app.command("train-gating")
def train_gating(
    policy: PolicyOpt,
    out: Annotated[Path, typer.Option("--out", "-o", help="folder to save the gating policy in")],
    reward_spec: Annotated[
        str | None,
        typer.Option(
            "--reward-spec",
            "-r",
            help="NAME[:VERSION] of compiled rewards; default: roll up multi-level feedback",
        ),
    ] = None,
    experts: Annotated[
        str | None, typer.Option(help="comma-separated experts (default: every action named in the logs)")
    ] = None,
    features: FeaturesOpt = "text",
    step_name: Annotated[str, typer.Option(help="trace step that holds the expert choice")] = "expert",
    epochs: Annotated[int, typer.Option(min=1, help="passes over the logged traces")] = 5,
    lr: Annotated[float, typer.Option(help="Adam learning rate")] = 3e-3,
    entropy_coef: Annotated[float, typer.Option(help="entropy bonus β")] = 0.01,
    hidden: Annotated[int, typer.Option(min=1, help="hidden units of the MLP")] = 64,
    seed: Annotated[int, typer.Option(help="random seed")] = 0,
    config: ConfigOption = None,
) -> None:
    """Train the gating policy (MLP → softmax over experts) by REINFORCE from logged traces + feedback."""
    from rewardloop.learners.base import DataSpec
    from rewardloop.learners.gating import GatingConfig, GatingLearner

    cfg = project(config)
    store = open_store(cfg)
    try:
        with console.status("reading decisions, feedback and rewards ..."):
            batch = read_decisions(
                store,
                policy=policy,
                include_feedback=True,
                reward_spec=_spec(reward_spec) if reward_spec else None,
            )
    finally:
        store.close()
    if not len(batch):
        raise not_found(f"no decisions of policy {policy!r} in the store")
    names = [e.strip() for e in experts.split(",") if e.strip()] if experts else arms_of(batch)
    with errors_as_messages(RouterInputError):
        scored = [d for d in batch if d.id in batch.rewards or batch.feedback.get(d.id)]
        first = scored[0] if scored else batch.decisions[0]
        feats = ContextFeatures(features, n_numeric=len(first.features or ()))
        with console.status(f"building contexts ({features}) ..."):
            data = GatingLearner.data_from_batch(
                batch, DataSpec(labels=names, features=feats, step_name=step_name)
            )
        if not len(data):
            raise RouterInputError(
                "rewards", f"none of the {len(batch)} decisions has a reward or scored feedback"
            )
    rc = GatingConfig(
        lr=lr, entropy_coef=entropy_coef, epochs=epochs, step_name=step_name, seed=seed, hidden=hidden
    )
    _train_and_record_gating(cfg, out, policy, data, rc, {"experts": names, "features": features})


def _train_and_record_gating(
    cfg: Any, out: Path, policy: str, data: Any, rc: Any, extra: dict[str, Any]
) -> None:
    """Fit the gating learner on ``data``, save it and record the run; print the routing shares."""

    from rewardloop.learners.gating import GatingLearner
    from rewardloop.loop.training import fit_and_record

    learner = GatingLearner(rc)
    steps_per_epoch = -(-len(data) // rc.batch_size)
    run = TrainingRun(
        policy=policy,
        learner="gating.reinforce",
        config={**dataclasses.asdict(rc), **extra},
        n_samples=len(data),
    )

    def fit() -> tuple[Any, list[dict[str, float]]]:
        with console.status(f"REINFORCE: {rc.epochs} epochs over {len(data)} logged decisions ..."):
            gate = learner.fit(data)
        return gate, learner.history_

    def metrics(gate: Any) -> dict[str, float]:
        recent = learner.history_[-steps_per_epoch:]
        return {
            "rows": float(len(data)),
            "mean_reward": float(np.mean(data.traces.rewards)),
            "final_entropy": float(np.mean([h["train/entropy"] for h in recent])),
        }

    store = open_store(cfg)
    try:
        outcome = fit_and_record(store, run, fit, out, evaluate=metrics)
    finally:
        store.close()
    names = data.experts
    share = outcome.fitted.probs(data.X).mean(axis=0)
    top = ", ".join(f"{n} {p:.2f}" for n, p in sorted(zip(names, share, strict=True), key=lambda t: -t[1]))
    console.print(
        f"trained the gating policy on {len(data)} logged decisions ({data.traces.skipped} without reward "
        f"skipped) for {rc.epochs} epochs; mean routing share: {top}. "
        f"Saved to {out} (run {outcome.run.id[:8]})."
    )
