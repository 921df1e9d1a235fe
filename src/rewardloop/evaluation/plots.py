"""Figures of a golden-set run (matplotlib, Agg backend: no display needed) and a self-contained HTML report.

- :func:`reliability_diagram` — accuracy against confidence per bin, with the diagonal and bin counts;
- :func:`confusion_heatmap` — expected (rows) × predicted (columns) counts;
- :func:`per_class_bars` — precision, recall and F1 per class;
- :func:`html_report` — one HTML file with the three PNGs embedded (base64), the headline figures, the
  breakdowns and the misclassified items.
"""

from __future__ import annotations

import base64
import html
import io
import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # before pyplot: render to files only, never open a window

import matplotlib.pyplot as plt
import numpy as np

from rewardloop.evaluation.metrics import GoldenReport, reliability_bins


def figure_png(fig: Any, path: str | Path | None = None) -> bytes:
    """PNG bytes of a matplotlib figure (also written to ``path`` if given); closes the figure."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    data = buf.getvalue()
    if path is not None:
        Path(path).write_bytes(data)
    return data


def reliability_diagram(report: GoldenReport, path: str | Path | None = None) -> bytes:
    """PNG bytes (also written to ``path`` if given) of the reliability diagram."""
    conf = np.array([i["confidence"] for i in report.items], dtype=np.float64)
    ok = np.array([i["correct"] for i in report.items], dtype=np.float64)
    bins = reliability_bins(conf, ok, report.n_bins)
    fig, ax = plt.subplots(figsize=(5, 5))
    width = 1.0 / report.n_bins
    ax.bar(
        [b.lower for b in bins],
        [b.accuracy for b in bins],
        width=width,
        align="edge",
        edgecolor="black",
        color="#4C72B0",
        label="accuracy",
    )
    ax.plot([0, 1], [0, 1], "--", color="gray", label="perfect calibration")
    ax.plot(
        [b.confidence for b in bins],
        [b.accuracy for b in bins],
        "o",
        color="#DD8452",
        label="mean confidence",
    )
    for b in bins:
        ax.annotate(
            str(b.count), (b.lower + width / 2, min(b.accuracy + 0.02, 0.97)), ha="center", fontsize=7
        )
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence", ylabel="accuracy")
    ax.set_title(f"Reliability — ECE {report.ece:.3f} ({report.n_bins} bins)")
    ax.legend(loc="upper left", fontsize=8)
    return figure_png(fig, path)


def confusion_heatmap(report: GoldenReport, path: str | Path | None = None) -> bytes:
    """PNG bytes of the confusion matrix (rows: expected, columns: predicted)."""
    cm = np.asarray(report.confusion, dtype=np.float64)
    k = len(report.labels)
    # Counts are written in the cells up to 30 labels, which needs room; above, cells need only fit
    # the 7-pt tick labels (a 42-label figure at 0.45 in a cell was 2,300 px square, 1 s to draw).
    size = max(4.0, (0.45 if k <= 30 else 0.25) * k + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    im = ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(k), report.labels, rotation=90, fontsize=7)
    ax.set_yticks(range(k), report.labels, fontsize=7)
    ax.set(xlabel="predicted", ylabel="expected")
    if k <= 30:
        top = cm.max() if cm.size else 0
        for i in range(k):
            for j in range(k):
                if cm[i, j]:
                    color = "white" if cm[i, j] > top / 2 else "black"
                    ax.text(j, i, str(int(cm[i, j])), ha="center", va="center", fontsize=7, color=color)
    fig.colorbar(im, ax=ax, fraction=0.046)
    ax.set_title(f"Confusion matrix — accuracy {report.accuracy:.1%}")
    return figure_png(fig, path)


def per_class_bars(report: GoldenReport, path: str | Path | None = None) -> bytes:
    """PNG bytes of per-class precision, recall and F1."""
    labels = [lab for lab in report.labels if report.per_class[lab].support > 0]
    x = np.arange(len(labels))
    fig, ax = plt.subplots(figsize=(max(5.0, 0.5 * len(labels) + 2), 4))
    for off, (name, color) in zip(
        (-0.27, 0.0, 0.27), (("precision", "#4C72B0"), ("recall", "#55A868"), ("f1", "#C44E52")), strict=True
    ):
        ax.bar(
            x + off, [getattr(report.per_class[lab], name) for lab in labels], 0.27, label=name, color=color
        )
    ax.set_xticks(x, labels, rotation=60, ha="right", fontsize=8)
    ax.set(ylim=(0, 1.05), ylabel="score")
    ax.set_title(f"Per class — macro-F1 {report.macro_f1:.3f}")
    ax.legend(fontsize=8, ncol=3, loc="lower right")
    return figure_png(fig, path)


_CSS = (
    "body{font-family:sans-serif;margin:2em;max-width:1100px} table{border-collapse:collapse;margin:1em 0} "
    "td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;font-size:13px} "
    "img{max-width:100%;margin:0.5em}"
)


def _fmt(x: float) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.1%}"


def img_tag(data: bytes, alt: str) -> str:
    """An ``<img>`` with the PNG embedded as a data URI (the page opens offline)."""
    return f'<img alt="{alt}" src="data:image/png;base64,{base64.b64encode(data).decode()}">'


def _group_table(title: str, groups: dict[str, Any]) -> str:
    if not groups:
        return ""
    rows = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{g.n}</td><td>{_fmt(g.accuracy)}</td></tr>"
        for k, g in groups.items()
    )
    return f"<h3>{title}</h3><table><tr><th>group</th><th>items</th><th>accuracy</th></tr>{rows}</table>"


def html_report(report: GoldenReport, out_dir: str | Path, name: str = "report") -> Path:
    """Write ``<name>.html`` (self-contained) and the three PNGs into ``out_dir``; return the HTML path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rel = reliability_diagram(report, out / f"{name}_reliability.png")
    cm = confusion_heatmap(report, out / f"{name}_confusion.png")
    bars = per_class_bars(report, out / f"{name}_per_class.png")
    lat = report.latency_ms
    lat_row = (
        f"<tr><td>latency p50 / p95 / p99</td><td>{lat['p50']:.1f} / {lat['p95']:.1f} / "
        f"{lat['p99']:.1f} ms</td></tr>"
        if lat
        else ""
    )
    misses = "".join(
        f"<tr><td>{html.escape(m.id)}</td><td>{m.line}</td><td>{html.escape(m.text[:160])}</td>"
        f"<td>{html.escape(m.expected)}</td><td>{html.escape(m.predicted)}</td><td>{m.confidence:.2f}</td>"
        f"<td>{'yes' if m.critical else ''}</td></tr>"
        for m in report.misclassified
    )
    per_class = "".join(
        f"<tr><td>{html.escape(lab)}</td><td>{m.support}</td><td>{m.precision:.3f}</td><td>{m.recall:.3f}</td>"
        f"<td>{m.f1:.3f}</td></tr>"
        for lab, m in report.per_class.items()
    )
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Golden-set report: {html.escape(report.policy)}</title>
<style>{_CSS}</style>
</head><body>
<h1>Golden-set report: {html.escape(report.policy)}</h1>
<table>
<tr><td>items</td><td>{report.n}</td></tr>
<tr><td>accuracy</td><td>{_fmt(report.accuracy)}</td></tr>
<tr><td>critical accuracy</td><td>{_fmt(report.critical_accuracy)} ({report.n_critical} items)</td></tr>
<tr><td>macro-F1 / weighted-F1</td><td>{report.macro_f1:.3f} / {report.weighted_f1:.3f}</td></tr>
<tr><td>ECE / Brier</td><td>{report.ece:.3f} / {report.brier:.3f}</td></tr>
{lat_row}
</table>
{img_tag(rel, "reliability diagram")}{img_tag(bars, "per-class bars")}{img_tag(cm, "confusion matrix")}
<h2>Per class</h2>
<table><tr><th>label</th><th>support</th><th>precision</th><th>recall</th><th>F1</th></tr>{per_class}</table>
<h2>Breakdowns</h2>
{_group_table("By category", report.by_category)}{_group_table("By priority", report.by_priority)}
{_group_table("By tag", report.by_tag)}
<h2>Misclassified ({len(report.misclassified)})</h2>
<table><tr><th>id</th><th>line</th><th>text</th><th>expected</th><th>predicted</th><th>confidence</th>
<th>critical</th></tr>{misses}</table>
</body></html>
"""
    path = out / f"{name}.html"
    path.write_text(page, encoding="utf-8")
    return path


__all__ = ["confusion_heatmap", "html_report", "per_class_bars", "reliability_diagram"]
