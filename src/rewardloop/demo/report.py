"""The demo's HTML report: accuracy by round, reliability diagram, router leaderboard, experiments.

Self-contained: the pictures are PNG (matplotlib, Agg) embedded as data URIs, so the file opens offline.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt

from rewardloop.evaluation.plots import figure_png, img_tag, reliability_diagram

if TYPE_CHECKING:
    from rewardloop.demo.run import DemoResult


def accuracy_by_round(result: DemoResult) -> bytes:
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    rounds = [0] + [r.round for r in result.rounds]
    acc = [result.seed_golden_acc] + [r.golden_accuracy for r in result.rounds]
    online = [float("nan")] + [r.online_reward for r in result.rounds]
    ax.plot(rounds, acc, marker="o", label="champion golden accuracy")
    ax.plot(rounds, online, marker="s", linestyle="--", label="online reward (served traffic)")
    for r in result.rounds:
        if "promoted" in r.verdict:
            ax.annotate(
                "promoted",
                (r.round, r.golden_accuracy),
                textcoords="offset points",
                xytext=(0, 8),
                ha="center",
                fontsize=8,
            )
    ax.set_xlabel("round (0: seed model)")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title("the loop at work")
    return figure_png(fig)


def router_bars(result: DemoResult) -> bytes:
    rows = result.router["leaderboard"]
    fig, ax = plt.subplots(figsize=(5.4, 3.0))
    names = [r["arm"] for r in rows]
    means = [r["mean_reward"] for r in rows]
    err = [
        [m - r["low"] for m, r in zip(means, rows, strict=True)],
        [r["high"] - m for m, r in zip(means, rows, strict=True)],
    ]
    ax.bar(names, means, yerr=err, capsize=4, color="#4c78a8")
    for i, r in enumerate(rows):
        ax.text(i, 0.02, f"{r['pulls']} pulls", ha="center", color="white", fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel("mean reward (95% interval)")
    ax.set_title("router leaderboard")
    return figure_png(fig)


def write_report(result: DemoResult, out_dir: str | Path) -> Path:
    """Write ``report.html`` (and ``summary.json``) into ``out_dir``; returns the HTML path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = "".join(
        f"<tr><td>{r.round}</td><td>{r.champion}</td><td>{r.golden_accuracy:.3f}</td><td>{r.ece:.3f}</td>"
        f"<td>{r.online_reward:.3f}</td><td>{r.served}</td><td>{r.reviewed}</td><td>{html.escape(r.verdict)}</td></tr>"
        for r in result.rounds
    )
    exps = (
        "".join(
            f"<tr><td>{html.escape(e['name'])}</td><td>{e['challenger']}</td><td>{e['status']}</td>"
            f"<td>{(e['final_share'] or 0):.0%}</td></tr>"
            for e in result.experiments
        )
        or "<tr><td colspan=4>none</td></tr>"
    )
    rr = result.reranker
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>rewardloop demo</title>
<style>body{{font-family:system-ui,sans-serif;max-width:980px;margin:2em auto;color:#222}}
table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left}}
img{{max-width:100%}}.bad{{color:#b00}}.good{{color:#070}}</style></head><body>
<h1>rewardloop demo</h1>
<p>Golden accuracy went from <b>{result.seed_golden_acc:.3f}</b> (seed model) to
<b>{result.final_golden_acc:.3f}</b> (final champion) in {len(result.rounds)} rounds ({result.seconds:.0f} s);
supervision with every true label of the same texts reaches {result.full_labels_golden_acc:.3f}, so the
loop captured {result.gain_captured:.0%} of the reachable gain ({result.rounds_without_promotion} of
{len(result.rounds)} rounds without a promotion).
Bad challenger: <span class="{"bad" if result.bad_challenger_promoted else "good"}">
{html.escape(result.bad_challenger_outcome)}</span>.</p>
{img_tag(accuracy_by_round(result), "accuracy by round")}
<h2>Rounds</h2><table><tr><th>round</th><th>champion</th><th>golden acc</th><th>ECE</th><th>online reward</th>
<th>served</th><th>reviewed</th><th>verdict</th></tr>{rows}</table>
<h2>Experiments</h2><table><tr><th>experiment</th><th>challenger</th><th>outcome</th><th>last share</th></tr>
{exps}</table>
<h2>Final champion: reliability</h2>{img_tag(reliability_diagram(result.final_report), "reliability diagram")}
<h2>Router</h2><p>Mean reward {result.router["mean_reward"]:.3f}
(first round {result.router["first_round"]:.3f},
last {result.router["last_round"]:.3f}); always picking the best agent per category would give
{result.router["oracle"]:.3f}, picking at random {result.router["uniform"]:.3f}.</p>
{img_tag(router_bars(result), "router leaderboard")}
<h2>Reranker</h2><p>Embeddings + logistic-regression reward model trained on VADER human ratings: held-out
AUC {rr["rm_auc"]:.3f}. Reranking {int(rr["rerank_lists"])} lists of 5 held-out snippets picks the best-rated
one {rr["rerank_top1"]:.0%} of the time (random: 20%).</p>
<h2>Store</h2><p>Everything above is in <code>{html.escape(result.store_url)}</code>: decisions, feedback,
review items, rewards, training runs, versions, alias history and experiments.</p>
</body></html>"""
    path = out / "report.html"
    path.write_text(page)
    (out / "history.json").write_text(json.dumps(result.history, indent=2, default=str))
    return path
