"""What the dashboard shows, computed from a project's recent decisions and their feedback.

These are display summaries (counts, shares, percentiles), not the evaluation layer's metrics:
``rewardloop.evaluation`` owns the statistics: the calibration panel calls its ECE and reliability bins.
Definitions used here:

- a decision is *judged* when it has a ``correction`` feedback; it is *correct* when the latest
  correction's label equals the action taken. Its *category* is that (true) label.
- a feedback row's *score* in [0, 1] is the rewards layer's (``rewardloop.rewards.scores``); preferences
  carry no score here. A decision's score is the authority-weighted mean of its raters' scores.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from rewardloop.config.sections import DEFAULT_N_BINS
from rewardloop.evaluation.metrics import expected_calibration_error, reliability_bins
from rewardloop.rewards import scores
from rewardloop.types import Decision, DecisionBatch, Feedback

#: The feedback kinds a dashboard score reads (preferences compare answers: no score on their own).
SCORED_KINDS = ("correction", "rating", "implicit", "multilevel")


def feedback_score(decision: Decision, f: Feedback) -> float | None:
    """One feedback row's score in [0, 1] (:func:`rewardloop.rewards.scores.feedback_score`)."""
    return scores.feedback_score(decision, f, kinds=SCORED_KINDS)


def decision_score(decision: Decision, rows: Sequence[Feedback]) -> float | None:
    """A decision's authority-weighted mean score (:func:`rewardloop.rewards.scores.decision_score`)."""
    return scores.decision_score(decision, rows, kinds=SCORED_KINDS)


def true_label(rows: Sequence[Feedback]) -> str | None:
    """The label of the latest correction, if any."""
    labels = [f for f in rows if f.kind == "correction" and f.label is not None]
    return max(labels, key=lambda f: f.created_at).label if labels else None


@dataclass(frozen=True)
class Judged:
    decision: Decision
    label: str

    @property
    def correct(self) -> bool:
        return self.label == self.decision.action


def judged(batch: DecisionBatch) -> list[Judged]:
    return [
        Judged(d, label)
        for d in batch.decisions
        if (label := true_label(batch.feedback.get(d.id, ()))) is not None
    ]


def accuracy(batch: DecisionBatch) -> dict[str, Any]:
    """Overall and per-category accuracy of the judged decisions.

    >>> accuracy(DecisionBatch([]))["overall"] is None
    True
    """
    rows = judged(batch)
    per: dict[str, list[bool]] = defaultdict(list)
    for j in rows:
        per[j.label].append(j.correct)
    return {
        "overall": float(np.mean([j.correct for j in rows])) if rows else None,
        "judged": len(rows),
        "decisions": len(batch),
        "categories": [
            {"category": c, "accuracy": float(np.mean(v)), "n": len(v)} for c, v in sorted(per.items())
        ],
    }


def calibration(batch: DecisionBatch, n_bins: int = DEFAULT_N_BINS) -> dict[str, Any]:
    """Reliability table of the judged decisions (per non-empty confidence bin: mean confidence,
    accuracy and count) and their ECE, binned as ``rewardloop eval`` bins them
    (:func:`rewardloop.evaluation.metrics.reliability_bins`, ``evaluation.n_bins`` bins)."""
    rows = judged(batch)
    conf = np.array([j.decision.confidence or 0.0 for j in rows])  # (n_judged,)
    hit = np.array([j.correct for j in rows], dtype=float)  # (n_judged,)
    table = [
        {"bin": round(b.lower * n_bins), "confidence": b.confidence, "accuracy": b.accuracy, "n": b.count}
        for b in reliability_bins(conf, hit, n_bins)
    ]
    ece = expected_calibration_error(conf, hit, n_bins) if rows else None
    return {"bins": table, "ece": ece, "judged": len(rows)}


def latency(batch: DecisionBatch) -> list[dict[str, Any]]:
    """p50 / p95 / p99 of the logged ``latency_ms``, per policy (linear-interpolated percentiles)."""
    per: dict[str, list[float]] = defaultdict(list)
    for d in batch.decisions:
        if d.latency_ms is not None:
            per[d.policy].append(d.latency_ms)
    out = []
    for policy, values in sorted(per.items()):
        p50, p95, p99 = np.percentile(np.array(values), [50, 95, 99])
        out.append(
            {"policy": policy, "n": len(values), "p50": float(p50), "p95": float(p95), "p99": float(p99)}
        )
    return out


def feedback_volume(batch: DecisionBatch, hours: int = 24, now: datetime | None = None) -> dict[str, Any]:
    """Feedback rows per hour and kind over the last ``hours`` (on the decisions of the batch)."""
    end = (now or datetime.now(UTC)).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    start = end - timedelta(hours=hours)
    slots = [start + timedelta(hours=h) for h in range(hours)]
    counts: dict[str, Counter[int]] = defaultdict(Counter)
    for rows in batch.feedback.values():
        for f in rows:
            if start <= f.created_at < end:
                counts[f.kind][int((f.created_at - start) // timedelta(hours=1))] += 1
    return {
        "hours": [s.isoformat() for s in slots],
        "kinds": {k: [c[h] for h in range(hours)] for k, c in sorted(counts.items())},
        "total": sum(sum(c.values()) for c in counts.values()),
    }


def ab_results(batch: DecisionBatch) -> list[dict[str, Any]]:
    """Per experiment and variant: decisions, judged, accuracy, and mean feedback score."""
    groups: dict[tuple[str, str], list[Decision]] = defaultdict(list)
    for d in batch.decisions:
        if d.experiment is not None:
            groups[(d.experiment, d.variant or "-")].append(d)
    out = []
    for (experiment, variant), decisions in sorted(groups.items()):
        labels = [true_label(batch.feedback.get(d.id, ())) for d in decisions]
        hits = [lab == d.action for d, lab in zip(decisions, labels, strict=True) if lab is not None]
        scores = [s for d in decisions if (s := decision_score(d, batch.feedback.get(d.id, ()))) is not None]
        out.append(
            {
                "experiment": experiment,
                "variant": variant,
                "version": decisions[-1].policy_version,
                "decisions": len(decisions),
                "judged": len(hits),
                "accuracy": float(np.mean(hits)) if hits else None,
                "mean_score": float(np.mean(scores)) if scores else None,
            }
        )
    return out


def misclassifications(batch: DecisionBatch, limit: int = 20) -> list[dict[str, Any]]:
    """The most recent judged decisions whose action was wrong, newest first."""
    wrong = [j for j in judged(batch) if not j.correct]
    wrong.sort(key=lambda j: j.decision.created_at, reverse=True)
    return [
        {
            "decision_id": j.decision.id,
            "policy": j.decision.policy,
            "text": j.decision.text,
            "predicted": j.decision.action,
            "confidence": j.decision.confidence,
            "correct": j.label,
            "at": j.decision.created_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        }
        for j in wrong[:limit]
    ]


def leaderboard(batch: DecisionBatch, kinds: Sequence[str] = ("router",)) -> list[dict[str, Any]]:
    """Per policy and action (an arm, an expert): decisions, judged, mean score, mean latency; best first."""
    groups: dict[tuple[str, str], list[Decision]] = defaultdict(list)
    for d in batch.decisions:
        if d.kind in kinds:
            groups[(d.policy, d.action)].append(d)
    rows: list[dict[str, Any]] = []
    for (policy, action), decisions in groups.items():
        scores = [s for d in decisions if (s := decision_score(d, batch.feedback.get(d.id, ()))) is not None]
        lat = [d.latency_ms for d in decisions if d.latency_ms is not None]
        rows.append(
            {
                "policy": policy,
                "action": action,
                "decisions": len(decisions),
                "judged": len(scores),
                "mean_score": float(np.mean(scores)) if scores else None,
                "mean_latency_ms": float(np.mean(lat)) if lat else None,
            }
        )
    rows.sort(key=lambda r: (r["policy"], 1.0 if r["mean_score"] is None else -float(r["mean_score"])))
    return rows


# ------------------------------------------------------------------------------------ Plotly figures
# Plain figure dicts for plotly.js (served from the plotly package, no CDN); no plotly import needed.

_LAYOUT = {"margin": {"l": 50, "r": 10, "t": 30, "b": 40}, "height": 280, "template": "plotly_white"}


def _layout(title: str, **extra: Any) -> dict[str, Any]:
    return {**_LAYOUT, "title": {"text": title, "font": {"size": 14}}, **extra}


def figures(
    acc: Mapping[str, Any],
    cal: Mapping[str, Any],
    lat: Sequence[Mapping[str, Any]],
    vol: Mapping[str, Any],
    ab: Sequence[Mapping[str, Any]],
) -> dict[str, dict[str, Any]]:
    """The dashboard's charts as plotly.js figure specs, by panel id."""
    cats = acc["categories"]
    bins = cal["bins"]
    return {
        "accuracy": {
            "data": [
                {
                    "type": "bar",
                    "x": [c["category"] for c in cats],
                    "y": [c["accuracy"] for c in cats],
                    "text": [f"n={c['n']}" for c in cats],
                    "marker": {"color": "#4c78a8"},
                }
            ],
            "layout": _layout("accuracy per category", yaxis={"range": [0, 1]}),
        },
        "calibration": {
            "data": [
                {
                    "type": "scatter",
                    "mode": "lines+markers",
                    "name": "observed",
                    "x": [b["confidence"] for b in bins],
                    "y": [b["accuracy"] for b in bins],
                    "text": [f"n={b['n']}" for b in bins],
                },
                {
                    "type": "scatter",
                    "mode": "lines",
                    "name": "perfect",
                    "x": [0, 1],
                    "y": [0, 1],
                    "line": {"dash": "dot", "color": "#999"},
                },
            ],
            "layout": _layout(
                "confidence calibration",
                xaxis={"title": {"text": "confidence"}, "range": [0, 1]},
                yaxis={"title": {"text": "accuracy"}, "range": [0, 1]},
            ),
        },
        "latency": {
            "data": [
                {"type": "bar", "name": q, "x": [r["policy"] for r in lat], "y": [r[q] for r in lat]}
                for q in ("p50", "p95", "p99")
            ],
            "layout": _layout("latency (ms)", barmode="group"),
        },
        "volume": {
            "data": [
                {"type": "bar", "name": kind, "x": vol["hours"], "y": values}
                for kind, values in vol["kinds"].items()
            ],
            "layout": _layout("feedback per hour", barmode="stack"),
        },
        "ab": {
            "data": [
                {
                    "type": "bar",
                    "x": [f"{r['experiment']}/{r['variant']}" for r in ab],
                    "y": [r["accuracy"] for r in ab],
                    "text": [f"n={r['judged']}" for r in ab],
                    "marker": {"color": "#f58518"},
                }
            ],
            "layout": _layout("A/B accuracy per variant", yaxis={"range": [0, 1]}),
        },
    }
