"""The regression monitor: four checks over stored decisions and feedback, per policy version and window.

For every (policy, version) with decisions in the window ``[now − window_hours, now)``:

================== =====================================================================================
check              alerts when
================== =====================================================================================
accuracy_drop      accuracy (from feedback) fell more than ``max_accuracy_drop`` vs the previous window
p95_latency        the 95th percentile of logged ``latency_ms`` exceeds ``max_p95_latency_ms``
calibration        the ECE of logged confidence against feedback outcomes exceeds ``max_calibration_error``
category_dominance one chosen action (a classifier's category) takes more than ``max_category_share``
================== =====================================================================================

A decision's *outcome* comes from its latest correction / rating / implicit feedback: a correction is
right when its label equals the chosen action; a rating or implicit signal when its value is at least
the midpoint of its scale. Decisions without such feedback have no outcome and do not count for accuracy
or calibration. A check with fewer than ``min_samples`` data points is skipped (and says so).

Alerts go to the ``rewardloop.monitor`` logger and, when ``webhook_url`` is set, as one JSON POST.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

import numpy as np

from rewardloop.config.sections import MonitorConfig
from rewardloop.evaluation.metrics import expected_calibration_error
from rewardloop.store import Store, read_decisions
from rewardloop.types.batches import DecisionBatch
from rewardloop.types.records import Decision, Feedback, utcnow

logger = logging.getLogger("rewardloop.monitor")

Status = Literal["ok", "alert", "skipped"]


@dataclass(frozen=True)
class MonitorCheck:
    """One check of one policy version in one window."""

    check: str
    policy: str
    version: str
    status: Status
    figure: float | None
    threshold: float
    n: int
    detail: str = ""

    @property
    def alert(self) -> bool:
        return self.status == "alert"

    def message(self) -> str:
        fig = "n/a" if self.figure is None else f"{self.figure:.4g}"
        where = f"{self.policy}@{self.version} {self.check}"
        return f"{where}: {fig} (threshold {self.threshold:.4g}); {self.detail}"


@dataclass(frozen=True)
class MonitorReport:
    window_start: datetime
    window_end: datetime
    checks: list[MonitorCheck] = field(default_factory=list)

    @property
    def alerts(self) -> list[MonitorCheck]:
        return [c for c in self.checks if c.alert]

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": "rewardloop.monitor",
            "window_start": self.window_start.isoformat(),
            "window_end": self.window_end.isoformat(),
            "alerts": [asdict(c) | {"message": c.message()} for c in self.alerts],
            "checks": [asdict(c) for c in self.checks],
        }


def feedback_outcome(decision: Decision, feedback: list[Feedback]) -> bool | None:
    """Was the decision right, by its latest correction/rating/implicit feedback? None when unknown."""
    for f in sorted(feedback, key=lambda f: f.created_at, reverse=True):
        if f.kind == "correction" and f.label is not None:
            return f.label == decision.action
        if f.kind in ("rating", "implicit") and f.value is not None and f.scale is not None:
            return f.value >= (f.scale[0] + f.scale[1]) / 2
    return None


def _outcomes(batch: DecisionBatch) -> tuple[np.ndarray, np.ndarray]:
    """(confidence, correct) of the decisions that have an outcome, shape (m,) each."""
    conf, ok = [], []
    for d in batch.decisions:
        out = feedback_outcome(d, batch.feedback.get(d.id, []))
        if out is not None:
            conf.append(d.confidence if d.confidence is not None else d.pscore)
            ok.append(float(out))
    return np.asarray(conf, dtype=np.float64), np.asarray(ok, dtype=np.float64)


def _groups(batch: DecisionBatch) -> dict[tuple[str, str], DecisionBatch]:
    groups: dict[tuple[str, str], list[Decision]] = {}
    for d in batch.decisions:
        groups.setdefault((d.policy, d.policy_version), []).append(d)
    return {
        key: DecisionBatch(ds, {d.id: batch.feedback.get(d.id, []) for d in ds}) for key, ds in groups.items()
    }


def check_window(
    current: DecisionBatch, baseline: DecisionBatch | None, cfg: MonitorConfig, policy: str, version: str
) -> list[MonitorCheck]:
    """The four checks on one version's decisions (``baseline``: the same version's previous window)."""
    out: list[MonitorCheck] = []
    m = cfg.min_samples

    def add(check: str, status: Status, figure: float | None, threshold: float, n: int, detail: str) -> None:
        out.append(MonitorCheck(check, policy, version, status, figure, threshold, n, detail))

    conf, ok = _outcomes(current)
    acc = float(ok.mean()) if ok.size else None
    base_ok = _outcomes(baseline)[1] if baseline is not None else np.empty(0)
    if ok.size < m or base_ok.size < m:
        add(
            "accuracy_drop",
            "skipped",
            None,
            cfg.max_accuracy_drop,
            int(ok.size),
            f"needs {m} outcomes in this window and the previous one (have {ok.size} and {base_ok.size})",
        )
    else:
        base_acc = float(base_ok.mean())
        drop = base_acc - float(ok.mean())
        add(
            "accuracy_drop",
            "alert" if drop > cfg.max_accuracy_drop else "ok",
            drop,
            cfg.max_accuracy_drop,
            int(ok.size),
            f"accuracy {base_acc:.3f} → {acc:.3f} on {base_ok.size} → {ok.size} outcomes",
        )
    lat = np.array([d.latency_ms for d in current.decisions if d.latency_ms is not None], dtype=np.float64)
    if lat.size < m:
        add("p95_latency", "skipped", None, cfg.max_p95_latency_ms, int(lat.size), f"needs {m} latencies")
    else:
        p95 = float(np.percentile(lat, 95))
        status: Status = "alert" if p95 > cfg.max_p95_latency_ms else "ok"
        add("p95_latency", status, p95, cfg.max_p95_latency_ms, int(lat.size), f"p95 {p95:.1f} ms")
    if ok.size < m:
        add("calibration", "skipped", None, cfg.max_calibration_error, int(ok.size), f"needs {m} outcomes")
    else:
        ece = expected_calibration_error(conf, ok)
        gap = float(conf.mean() - ok.mean())
        add(
            "calibration",
            "alert" if ece > cfg.max_calibration_error else "ok",
            ece,
            cfg.max_calibration_error,
            int(ok.size),
            f"ECE {ece:.3f}; mean confidence {conf.mean():.3f} vs accuracy {ok.mean():.3f} (gap {gap:+.3f})",
        )
    n = len(current)
    if n < m:
        add("category_dominance", "skipped", None, cfg.max_category_share, n, f"needs {m} decisions")
    else:
        top, count = Counter(d.action for d in current.decisions).most_common(1)[0]
        share = count / n
        add(
            "category_dominance",
            "alert" if share > cfg.max_category_share else "ok",
            share,
            cfg.max_category_share,
            n,
            f"{top!r} chosen in {count} of {n} decisions",
        )
    return out


def run_monitor(
    store: Store, cfg: MonitorConfig, *, now: datetime | None = None, policy: str | None = None
) -> MonitorReport:
    """Run every check for every policy version with decisions in the window ending at ``now``."""
    end = now or utcnow()
    width = timedelta(hours=cfg.window_hours)
    start = end - width
    current = read_decisions(store, policy=policy, since=start, until=end, include_feedback=True)
    previous = read_decisions(store, policy=policy, since=start - width, until=start, include_feedback=True)
    prev_groups = _groups(previous)
    checks: list[MonitorCheck] = []
    for (pol, ver), batch in sorted(_groups(current).items()):
        checks += check_window(batch, prev_groups.get((pol, ver)), cfg, pol, ver)
    return MonitorReport(start, end, checks)


def post_json(url: str, payload: dict[str, Any], timeout: float = 5.0) -> int:
    """POST ``payload`` as JSON; returns the HTTP status. Raises ``OSError`` on network failure."""
    data = json.dumps(payload, default=str).encode("utf-8")
    req = urllib.request.Request(
        url,
        data=data,
        method="POST",
        headers={"Content-Type": "application/json", "User-Agent": "rewardloop"},
    )
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return int(resp.status)


def send_alerts(report: MonitorReport, cfg: MonitorConfig) -> bool:
    """Log every alert; POST them to ``cfg.webhook_url`` when set. True when nothing failed to send."""
    for c in report.alerts:
        logger.warning("regression alert: %s", c.message())
    if not report.alerts or not cfg.webhook_url:
        return True
    try:
        status = post_json(cfg.webhook_url, report.to_dict(), cfg.webhook_timeout_s)
    except (urllib.error.URLError, OSError) as err:
        logger.error("webhook %s failed: %s", cfg.webhook_url, err)
        return False
    if not 200 <= status < 300:
        logger.error("webhook %s answered HTTP %s", cfg.webhook_url, status)
        return False
    return True


__all__ = [
    "MonitorCheck",
    "MonitorReport",
    "check_window",
    "feedback_outcome",
    "post_json",
    "run_monitor",
    "send_alerts",
]
