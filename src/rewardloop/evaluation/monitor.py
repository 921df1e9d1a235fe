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

Input drift, per version against the same version's previous window (:mod:`rewardloop.evaluation.drift`),
each a test with a seeded permutation p-value, alerting when ``p < drift_alpha``:

================== =====================================================================================
label_psi          PSI of the predicted-label (chosen action) mix
confidence_psi     PSI of logged confidence, binned at the previous window's deciles
embedding_mmd      MMD² of the request texts' embeddings (only when an encoder is given: ``embed``)
feedback_rate      the share of decisions that got feedback (two-proportion z-test)
================== =====================================================================================

Alerts go to the ``rewardloop.monitor`` logger and, when ``webhook_url`` is set, as one JSON POST whose
``text`` field is a readable summary (a Slack incoming webhook shows it as is), retried on a network
error, HTTP 429 or 5xx with exponential backoff and full jitter.
"""

from __future__ import annotations

import json
import logging
import random
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

import numpy as np

from rewardloop.config.sections import MonitorConfig
from rewardloop.evaluation.drift import DriftTest, confidence_psi, label_psi, mmd_test, rate_test
from rewardloop.evaluation.metrics import expected_calibration_error
from rewardloop.store import Store, read_decisions
from rewardloop.types.batches import DecisionBatch
from rewardloop.types.records import Decision, Feedback, utcnow

logger = logging.getLogger("rewardloop.monitor")

Status = Literal["ok", "alert", "skipped"]

#: Texts → embeddings, shape (n, d): the encoder the embedding drift test uses.
Embed = Callable[[list[str]], np.ndarray]


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
            "text": self.summary(),
            "alerts": [asdict(c) | {"message": c.message()} for c in self.alerts],
            "checks": [asdict(c) for c in self.checks],
        }

    def summary(self) -> str:
        """A few readable lines (the ``text`` of a Slack-compatible webhook body)."""
        head = (
            f"rewardloop monitor: {len(self.alerts)} alert(s) in {len(self.checks)} checks, "
            f"{self.window_start:%Y-%m-%d %H:%M} → {self.window_end:%Y-%m-%d %H:%M} UTC"
        )
        return "\n".join([head, *(f"• {c.message()}" for c in self.alerts)])


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


def _drift_check(
    test: DriftTest | None, cfg: MonitorConfig, policy: str, version: str, name: str, n: int, why: str
) -> MonitorCheck:
    if test is None or test.p_value is None:
        return MonitorCheck(name, policy, version, "skipped", None, cfg.drift_alpha, n, why)
    status: Status = "alert" if test.flagged(cfg.drift_alpha) else "ok"
    detail = f"p = {test.p_value:.4g} on {test.n_baseline} → {test.n_current} (previous → this window)"
    return MonitorCheck(
        name, policy, version, status, test.statistic, cfg.drift_alpha, test.n_current, detail
    )


def drift_checks(
    current: DecisionBatch,
    baseline: DecisionBatch | None,
    cfg: MonitorConfig,
    policy: str,
    version: str,
    embed: Embed | None = None,
) -> list[MonitorCheck]:
    """Input-drift checks of one version's window against its previous window (see the module doc).

    The figure is the statistic (PSI, MMD², change in feedback rate), the threshold ``drift_alpha``.
    """
    m, seed, perms = cfg.min_samples, 0, cfg.drift_permutations
    prev = baseline.decisions if baseline is not None else []
    cur = current.decisions
    why = f"needs {m} decisions in this window and the previous one (have {len(cur)} and {len(prev)})"
    enough = len(cur) >= m and len(prev) >= m

    def run(name: str, test: Callable[[], DriftTest], ok: bool = True, reason: str = why) -> MonitorCheck:
        return _drift_check(test() if enough and ok else None, cfg, policy, version, name, len(cur), reason)

    def conf(ds: Sequence[Decision]) -> list[float]:
        return [d.confidence if d.confidence is not None else d.pscore for d in ds]

    texts_prev = [d.text for d in prev if d.text]
    texts_cur = [d.text for d in cur if d.text]
    have_texts = len(texts_prev) >= m and len(texts_cur) >= m
    base_fb = sum(1 for d in prev if baseline is not None and baseline.feedback.get(d.id))
    cur_fb = sum(1 for d in cur if current.feedback.get(d.id))
    return [
        run(
            "label_psi",
            lambda: label_psi(
                [d.action for d in prev], [d.action for d in cur], n_permutations=perms, seed=seed
            ),
        ),
        run("confidence_psi", lambda: confidence_psi(conf(prev), conf(cur), n_permutations=perms, seed=seed)),
        run(
            "embedding_mmd",
            lambda: mmd_test(embed(texts_prev), embed(texts_cur), n_permutations=perms, seed=seed),  # type: ignore[misc]
            ok=embed is not None and have_texts,
            reason="no encoder given" if embed is None else f"needs {m} texts in both windows",
        ),
        run("feedback_rate", lambda: rate_test("feedback_rate", base_fb, len(prev), cur_fb, len(cur))),
    ]


def run_monitor(
    store: Store,
    cfg: MonitorConfig,
    *,
    now: datetime | None = None,
    policy: str | None = None,
    embed: Embed | None = None,
) -> MonitorReport:
    """Run every check for every policy version with decisions in the window ending at ``now``.

    ``embed`` (texts → (n, d) embeddings) turns on the embedding drift test.
    """
    end = now or utcnow()
    width = timedelta(hours=cfg.window_hours)
    start = end - width
    current = read_decisions(store, policy=policy, since=start, until=end, include_feedback=True)
    previous = read_decisions(store, policy=policy, since=start - width, until=start, include_feedback=True)
    prev_groups = _groups(previous)
    checks: list[MonitorCheck] = []
    for (pol, ver), batch in sorted(_groups(current).items()):
        base = prev_groups.get((pol, ver))
        checks += check_window(batch, base, cfg, pol, ver)
        if cfg.drift:
            checks += drift_checks(batch, base, cfg, pol, ver, embed)
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
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as err:  # a 4xx/5xx answer: the status, not an exception
        return int(err.code)


def post_with_retries(
    url: str,
    payload: dict[str, Any],
    *,
    timeout: float = 5.0,
    retries: int = 3,
    backoff_s: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
    post: Callable[[str, dict[str, Any], float], int] = post_json,
) -> int:
    """POST with up to ``retries`` retries on a network error, HTTP 429 or 5xx; returns the last status.

    Retry ``i`` (0-based) waits ``uniform(0, backoff_s · 2^i)`` seconds ("full jitter", Brooker 2015,
    *Exponential Backoff And Jitter*): many monitors failing at once do not retry in lock-step. A 4xx
    other than 429 is not retried (the request itself is wrong). Raises the last ``OSError`` when the
    network never answered.
    """
    rng = rng or random.Random()
    for attempt in range(retries + 1):
        try:
            status = post(url, payload, timeout)
        except OSError as err:
            if attempt == retries:
                raise
            logger.warning("webhook %s failed (%s); retry %d of %d", url, err, attempt + 1, retries)
        else:
            if not (status == 429 or status >= 500) or attempt == retries:
                return status
            logger.warning("webhook %s answered HTTP %s; retry %d of %d", url, status, attempt + 1, retries)
        sleep(rng.uniform(0, backoff_s * 2**attempt))
    raise AssertionError("unreachable")  # pragma: no cover


def send_alerts(report: MonitorReport, cfg: MonitorConfig, **retry: Any) -> bool:
    """Log every alert; POST them to ``cfg.webhook_url`` when set (with retries; ``retry`` goes to
    :func:`post_with_retries`). True when nothing failed to send."""
    for c in report.alerts:
        logger.warning("regression alert: %s", c.message())
    if not report.alerts or not cfg.webhook_url:
        return True
    try:
        status = post_with_retries(
            cfg.webhook_url,
            report.to_dict(),
            timeout=cfg.webhook_timeout_s,
            retries=cfg.webhook_retries,
            backoff_s=cfg.webhook_backoff_s,
            **retry,
        )
    except OSError as err:
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
    "drift_checks",
    "feedback_outcome",
    "post_json",
    "post_with_retries",
    "run_monitor",
    "send_alerts",
]
