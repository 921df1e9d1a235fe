"""``rewardloop demo``: the closed loop, end to end, on real data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from rewardloop.cli.common import console, err_console
from rewardloop.demo.report import write_report
from rewardloop.demo.run import DemoConfig, DemoResult, RoundResult, run_demo


def demo(
    rounds: Annotated[
        int, typer.Option(help="rounds of the loop (serve, feedback, train, gate, deploy)")
    ] = 6,
    traffic: Annotated[int, typer.Option(help="requests served per round")] = 2000,
    out: Annotated[Path, typer.Option(help="folder for the database, registry, artifacts and report")] = Path(
        "demo-output"
    ),
    seed: Annotated[int, typer.Option(help="random seed: the same seed gives the same run")] = 0,
    rl_learner: Annotated[
        str, typer.Option(help="bandit learner trained beside supervision; the logs pick the winner")
    ] = "crm",
    small: Annotated[
        bool, typer.Option(help="a quick run on 8 intents (for a first look or a test)")
    ] = False,
) -> None:
    """Run the whole loop on the bundled real data, with simulated users, and write an HTML report.

    An intent classifier starts from 5 labelled texts per intent and serves held-out real texts;
    simulated users give thumbs and corrections; unsure decisions are reviewed; rewards are compiled;
    challengers are trained, evaluated on a golden set and by off-policy evaluation, gated, and deployed
    through canary experiments that promote or roll back by the statistics. A bad challenger is injected
    and must be stopped. A router and a reranker learn alongside.
    """
    cfg = DemoConfig(rounds=rounds, traffic_per_round=traffic, out_dir=out, seed=seed, rl_learner=rl_learner)
    if small:
        cfg.intents = sorted(
            [
                "HassTurnOn",
                "HassTurnOff",
                "HassLightSet",
                "HassClimateSetTemperature",
                "HassStartTimer",
                "HassCancelTimer",
                "HassMediaPause",
                "HassGetWeather",
            ]
        )
        cfg.vader_snippets, cfg.vader_heldout = 300, 100
    console.print(
        f"[bold]rewardloop demo[/bold]: {rounds} rounds × {traffic} requests, seed {seed}, output in {out}/"
    )
    header = f"{'round':>5}  {'champion':>8}  {'golden acc':>10}  {'ECE':>6}  {'online reward':>13}  verdict"
    printed_header = False

    def on_round(r: RoundResult) -> None:
        nonlocal printed_header
        if not printed_header:
            console.print(header, style="bold")
            printed_header = True
        console.print(
            f"{r.round:>5}  {r.champion:>8}  {r.golden_accuracy:>10.3f}  {r.ece:>6.3f}  "
            f"{r.online_reward:>13.3f}  {r.verdict}",
            highlight=False,
            soft_wrap=True,
        )

    with err_console.status("starting ...") as status:

        def say(message: str) -> None:
            status.update(message)
            console.print(f"[dim]{message}[/dim]", highlight=False, soft_wrap=True)

        result = run_demo(cfg, say=say, on_round=on_round)
    report = write_report(result, out)
    _summary(result, report)


def _summary(result: DemoResult, report: Path) -> None:
    table = Table(title="router leaderboard (linear Thompson sampling with priors)")
    for col in ("agent", "pulls", "mean reward", "95% interval"):
        table.add_column(col)
    for row in result.router["leaderboard"]:
        table.add_row(
            row["arm"],
            str(row["pulls"]),
            f"{row['mean_reward']:.3f}",
            f"[{row['low']:.3f}, {row['high']:.3f}]",
        )
    console.print(table)
    r = result.router
    console.print(
        f"router: mean reward {r['mean_reward']:.3f} (best agent per category: {r['oracle']:.3f}, "
        f"random: {r['uniform']:.3f})"
    )
    rr = result.reranker
    console.print(
        f"reward model on VADER ratings: held-out AUC {rr['rm_auc']:.3f}; reranking 5 candidates picks the "
        f"best-rated one {rr['rerank_top1']:.0%} of the time (random: 20%)"
    )
    console.print(f"bad challenger: {result.bad_challenger_outcome}")
    console.print(
        f"golden accuracy: seed {result.seed_golden_acc:.3f} → final champion {result.final_golden_acc:.3f} "
        f"(every true label: {result.full_labels_golden_acc:.3f}; {result.gain_captured:.0%} of the gain "
        f"captured) in {result.seconds:.0f} s"
    )
    console.print(f"report: {report}")
    env = f"REWARDLOOP_STORE__URL={result.store_url}"
    console.print("dashboard on the same database:")
    console.print(f"  {env} rewardloop keys create --name me --role admin   # prints a key to sign in with")
    console.print(f"  {env} rewardloop serve   # then open http://127.0.0.1:8000/")
    summary: dict[str, Any] = {
        "seed_golden_acc": round(result.seed_golden_acc, 4),
        "final_golden_acc": round(result.final_golden_acc, 4),
        "golden_acc_full_labels": round(result.full_labels_golden_acc, 4),
        "gain_captured": round(result.gain_captured, 4),
        "rounds_without_promotion": result.rounds_without_promotion,
        "bad_challenger_promoted": result.bad_challenger_promoted,
        "rounds": len(result.rounds),
        "seconds": round(result.seconds, 1),
        "router_mean_reward": round(r["mean_reward"], 4),
        "router_oracle_reward": round(r["oracle"], 4),
        "reward_model_auc": round(result.reranker["rm_auc"], 4),
        "rerank_top1": round(result.reranker["rerank_top1"], 4),
        "experiments": [(e["challenger"], e["status"]) for e in result.experiments],
    }
    print(json.dumps(summary))


def register(app: typer.Typer) -> None:
    app.command()(demo)
