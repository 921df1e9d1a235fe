"""What the dashboard shows, computed from a project's recent decisions and their feedback.

These are display summaries (counts, shares, percentiles); the statistics come from the layers that
own them: the rates' 95% intervals from ``rewardloop.evaluation.intervals``, the A/B panel's numbers
from what the experiment itself decides on (``store.experiments.variant_outcomes``, the stored
verdict). Definitions used here:

- a decision is *judged* when it has a ``correction`` feedback; it is *correct* when the latest
  correction's label equals the action taken. Its *category* is that (true) label. Accuracy over the
  judged decisions alone is biased (corrections come mostly from the review queue, which picks the
  unsure decisions): the headline is :func:`accuracy_estimates`, from an unbiased source — the hashed
  audit sample, or the reward spec over every rewarded decision — with n and a 95% Wilson interval.
- an *exploration pick* is a decision whose action is not the policy's own top choice (an ε-greedy or
  sampled draw); it is no evidence of a misclassification.
- a feedback row's *score* in [0, 1] is the rewards layer's (``rewardloop.rewards.scores``); preferences
  carry no score here. A decision's score is the authority-weighted mean of its raters' scores.
- the calibration panel calls the evaluation layer's ECE and reliability bins.
"""

from __future__ import annotations

import html
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from rewardloop.config.sections import DEFAULT_N_BINS
from rewardloop.evaluation.intervals import mean_interval, wilson_interval
from rewardloop.evaluation.metrics import expected_calibration_error, reliability_bins
from rewardloop.loop.review import ReviewPolicy
from rewardloop.rewards import scores
from rewardloop.service.chart_labels import CATEGORY_AXIS, tick_names
from rewardloop.store.experiments import VariantOutcome
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


def rate(successes: int, n: int) -> dict[str, Any] | None:
    """A share with its n and 95% Wilson interval (None for n = 0).

    >>> r = rate(8, 10); (r["value"], r["n"], round(r["low"], 3), round(r["high"], 3))
    (0.8, 10, 0.49, 0.943)
    """
    if n == 0:
        return None
    w = wilson_interval(successes, n)
    return {"value": w.value, "successes": successes, "n": n, "low": w.low, "high": w.high}


def explored(decision: Decision) -> bool:
    """Was the action an exploration pick: less probable under the policy than its top choice?"""
    if decision.action not in decision.actions:
        return False
    p = decision.action_dist[decision.actions.index(decision.action)]
    return p < max(decision.action_dist)


def _reward_values(
    rewards: Mapping[tuple[str, int], Mapping[str, float]], spec: str | None
) -> tuple[str, int, Mapping[str, float]] | None:
    """The rewards of ``spec`` (its newest version), or of the only spec there is; None if ambiguous."""
    names = {name for name, _ in rewards} if spec is None else {spec}
    if len(names) != 1:
        return None
    (name,) = names
    versions = [v for n, v in rewards if n == name]
    return (name, max(versions), rewards[(name, max(versions))]) if versions else None


def accuracy_estimates(
    batch: DecisionBatch,
    review: ReviewPolicy | None = None,
    rewards: Mapping[tuple[str, int], Mapping[str, float]] | None = None,
    spec: str | None = None,
    success_at: float = 0.5,
) -> dict[str, Any]:
    """The classifiers' accuracy from each source, each saying what it is computed from.

    - ``audit``: the corrections of the decisions in the hashed audit sample (``review.audit_rate``;
      the draw is a hash of the id, blind to confidence, so the sample is unbiased);
    - ``reward``: the share of rewarded decisions whose reward under ``spec`` is ``>= success_at``;
    - ``corrections``: every corrected decision — marked ``biased`` (never the headline).

    ``headline`` is the first unbiased estimate with data, else None.
    """
    classified = [d for d in batch.decisions if d.kind == "classifier"]
    rows = [j for j in judged(batch) if j.decision.kind == "classifier"]
    out: list[dict[str, Any]] = []
    if review is not None and review.audit_rate > 0:
        drawn = {d.id for d in classified if review.audit_draw(d.id) < review.audit_rate}
        sample = [j for j in rows if j.decision.id in drawn]
        what = (
            f"corrections of the hashed audit sample: {len(sample)} corrected of the {len(drawn)} "
            f"decisions drawn (review.audit_rate {review.audit_rate:.0%}, blind to confidence)"
        )
        out.append(
            {"source": "audit", "what": what, "rate": rate(sum(j.correct for j in sample), len(sample))}
        )
    chosen = _reward_values(rewards or {}, spec)
    if chosen is not None:
        name, version, values = chosen
        got = [v for d in classified if (v := values.get(d.id)) is not None]
        what = (
            f"reward spec {name} v{version}: share of the {len(got)} rewarded decisions "
            f"with reward ≥ {success_at:g}"
        )
        out.append(
            {"source": "reward", "what": what, "rate": rate(sum(v >= success_at for v in got), len(got))}
        )
    what = "corrected decisions only — biased: most corrections come from the review queue's unsure decisions"
    out.append(
        {
            "source": "corrections",
            "what": what,
            "biased": True,
            "rate": rate(sum(j.correct for j in rows), len(rows)),
        }
    )
    headline = next((e for e in out if not e.get("biased") and e["rate"] is not None), None)
    return {"estimates": out, "headline": headline}


def accuracy(batch: DecisionBatch) -> dict[str, Any]:
    """Overall and per-category accuracy of the judged (corrected) decisions — biased toward what the
    review queue picked; see :func:`accuracy_estimates` for the headline.

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
            {"category": c, "accuracy": float(np.mean(v)), "n": len(v), "rate": rate(sum(v), len(v))}
            for c, v in sorted(per.items())
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


def experiment_panel(
    name: str,
    status: str,
    variants: Mapping[str, str],
    outcomes: Mapping[str, VariantOutcome],
    verdict: Mapping[str, Any] | None,
    success_at: float,
) -> dict[str, Any]:
    """One experiment as the A/B panel shows it: per variant the statistic the experiment itself
    decides on (share of rewarded decisions with reward ``>= success_at``, the whole experiment), and
    its last verdict (action, always-valid p, effect, reasons)."""
    rows = []
    for variant, version in variants.items():
        o = outcomes.get(variant)
        rows.append(
            {
                "variant": variant,
                "version": version,
                "decisions": o.n if o else 0,
                "rewarded": o.n_outcomes if o else 0,
                "success": rate(o.successes, o.n_outcomes) if o else None,
            }
        )
    last = (verdict or {}).get("last") or {}
    sequential = last.get("sequential") or {}
    return {
        "experiment": name,
        "status": status,
        "success_at": success_at,
        "variants": rows,
        "verdict": last.get("action"),
        "p_always_valid": sequential.get("p_value"),
        "effect": sequential.get("effect"),
        "reasons": list(last.get("reasons") or []),
    }


def misclassifications(
    batch: DecisionBatch, limit: int = 20, include_exploration: bool = False
) -> list[dict[str, Any]]:
    """The most recent judged decisions whose action was wrong, newest first; exploration picks (not
    the model's own choice) are left out unless ``include_exploration``, and marked ``explored``."""
    wrong = [j for j in judged(batch) if not j.correct and (include_exploration or not explored(j.decision))]
    wrong.sort(key=lambda j: j.decision.created_at, reverse=True)
    return [
        {
            "decision_id": j.decision.id,
            "policy": j.decision.policy,
            "text": j.decision.text,
            "predicted": j.decision.action,
            "confidence": j.decision.confidence,
            "correct": j.label,
            "explored": explored(j.decision),
            "at": j.decision.created_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        }
        for j in wrong[:limit]
    ]


def drill_down(
    batch: DecisionBatch,
    *,
    action: str | None = None,
    label: str | None = None,
    outcome: str | None = None,
) -> list[dict[str, Any]]:
    """The batch's decisions, newest first, whose chosen ``action`` and right ``label`` (from feedback)
    are those given, and whose ``outcome`` is ``wrong``/``right`` (judged, and the action was
    wrong/right), ``judged`` or ``unjudged`` (None: any)."""
    out = []
    for d in reversed(batch.decisions):
        right = true_label(batch.feedback.get(d.id, ()))
        verdict = None if right is None else right == d.action
        keep = {
            None: True,
            "judged": verdict is not None,
            "unjudged": verdict is None,
            "right": verdict is True,
            "wrong": verdict is False,
        }[outcome]
        if keep and action in (None, d.action) and label in (None, right):
            out.append(
                {
                    "decision_id": d.id,
                    "policy": d.policy,
                    "version": d.policy_version,
                    "text": d.text,
                    "action": d.action,
                    "confidence": d.confidence,
                    "label": right,
                    "feedback": len(batch.feedback.get(d.id, ())),
                    "explored": explored(d),
                    "at": d.created_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC"),
                }
            )
    return out


def leaderboard(batch: DecisionBatch, kinds: Sequence[str] = ("router",)) -> list[dict[str, Any]]:
    """Per policy and action (an arm, an expert): decisions, judged, mean score with its 95% t-interval
    (clipped to [0, 1]; none below two judged), mean latency; best first."""
    groups: dict[tuple[str, str], list[Decision]] = defaultdict(list)
    for d in batch.decisions:
        if d.kind in kinds:
            groups[(d.policy, d.action)].append(d)
    rows: list[dict[str, Any]] = []
    for (policy, action), decisions in groups.items():
        scores = [s for d in decisions if (s := decision_score(d, batch.feedback.get(d.id, ()))) is not None]
        lat = [d.latency_ms for d in decisions if d.latency_ms is not None]
        ci = mean_interval(scores)
        rows.append(
            {
                "policy": policy,
                "action": action,
                "decisions": len(decisions),
                "judged": len(scores),
                "mean_score": float(np.mean(scores)) if scores else None,
                # a score lies in [0, 1]: so does the interval shown
                "low": max(0.0, ci.low) if ci else None,
                "high": min(1.0, ci.high) if ci else None,
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


def _label(text: object) -> str:
    """A stored string as plotly.js shows it literally: plotly reads a few HTML tags in labels and
    decodes entities, so ``<``, ``>`` and ``&`` go in as entities (shown as typed, never as markup)."""
    return html.escape(str(text), quote=False)


def _bars(
    rows: Sequence[Mapping[str, Any] | None], x: Sequence[str], color: str, title: str
) -> dict[str, Any]:
    """Bars of rates with their 95% intervals as error bars and ``n`` on hover (rows are :func:`rate`)."""
    shown = [(name, r) for name, r in zip(x, rows, strict=True) if r is not None]
    names = [str(name) for name, _ in shown]
    return {
        "data": [
            {
                "type": "bar",
                "x": [_label(t) for t in tick_names(names)],
                "y": [r["value"] for _, r in shown],
                "error_y": _error_bars([r for _, r in shown]),
                "text": [f"n={r['n']}" for _, r in shown],
                "customdata": [_label(name) for name in names],
                "hovertemplate": "%{customdata}: %{y:.3f} (%{text})<extra></extra>",
                "marker": {"color": color},
            }
        ],
        "layout": _layout(title, xaxis=CATEGORY_AXIS, yaxis={"range": [0, 1], **CATEGORY_AXIS}),
    }


def _error_bars(rates: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Plotly error bars from :func:`rate` dicts: each value's 95% interval."""
    return {
        "type": "data",
        "symmetric": False,
        "array": [r["high"] - r["value"] for r in rates],
        "arrayminus": [r["value"] - r["low"] for r in rates],
    }


def _calibration_figure(bins: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    rates = [rate(round(b["accuracy"] * b["n"]), b["n"]) for b in bins]
    return {
        "data": [
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": "observed",
                "x": [b["confidence"] for b in bins],
                "y": [b["accuracy"] for b in bins],
                "error_y": _error_bars([r for r in rates if r is not None]),
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
            "calibration (corrected decisions)",
            xaxis={"title": {"text": "confidence"}, "range": [0, 1]},
            yaxis={"title": {"text": "accuracy"}, "range": [0, 1]},
        ),
    }


def figures(
    acc: Mapping[str, Any],
    cal: Mapping[str, Any],
    lat: Sequence[Mapping[str, Any]],
    vol: Mapping[str, Any],
    ab: Sequence[Mapping[str, Any]],
) -> dict[str, dict[str, Any]]:
    """The dashboard's charts as plotly.js figure specs, by panel id.

    ``acc`` is :func:`accuracy`, ``ab`` a list of :func:`experiment_panel`; every string a client
    stored goes through :func:`_label`.
    """
    cats = acc["categories"]
    variants = [(e["experiment"], v) for e in ab for v in e["variants"]]
    return {
        "accuracy": _bars(
            [rate(round(c["accuracy"] * c["n"]), c["n"]) for c in cats],
            [c["category"] for c in cats],
            "#4c78a8",
            "accuracy per right label (biased), 95% CI",
        ),
        "calibration": _calibration_figure(cal["bins"]),
        "latency": {
            "data": [
                {
                    "type": "bar",
                    "name": q,
                    "x": [_label(t) for t in tick_names([str(r["policy"]) for r in lat])],
                    "y": [r[q] for r in lat],
                    "customdata": [_label(r["policy"]) for r in lat],
                    "hovertemplate": f"%{{customdata}} {q}: %{{y:.1f}} ms<extra></extra>",
                }
                for q in ("p50", "p95", "p99")
            ],
            "layout": _layout("latency (ms)", barmode="group", xaxis=CATEGORY_AXIS),
        },
        "volume": {
            "data": [
                {"type": "bar", "name": _label(kind), "x": vol["hours"], "y": values}
                for kind, values in vol["kinds"].items()
            ],
            "layout": _layout("feedback per hour", barmode="stack"),
        },
        "ab": _bars(
            [v["success"] for _, v in variants],
            [f"{name}/{v['variant']} v{v['version']}" for name, v in variants],
            "#f58518",
            "success rate per variant, 95% CI",
        ),
    }
