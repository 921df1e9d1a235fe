"""Quality gauges in ``/metrics``: the regression monitor's latest verdicts, aggregated over policies.

No policy label, for the same reason as the request metrics (``/metrics`` needs no key, and policy names
are project data): per check, the number of policy versions alerting and the worst figure among them.
The monitor runs in a worker thread every ``evaluation.monitor.metrics_interval_s`` seconds (0: never);
per-policy detail is in ``rewardloop monitor``.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict

import anyio
from prometheus_client import Gauge

from rewardloop.config.sections import MonitorConfig
from rewardloop.evaluation.monitor import MonitorReport, run_monitor
from rewardloop.service.middleware import Metrics
from rewardloop.store import Store

logger = logging.getLogger("rewardloop.monitor")


class QualityGauges:
    """Two gauges per monitor check, in the service's registry (``max`` across workers)."""

    def __init__(self, metrics: Metrics) -> None:
        r = metrics.registry
        self.alerts = Gauge(
            "rewardloop_quality_alerts",
            "policy versions whose monitor check alerts (latest run)",
            ["check"],
            registry=r,
            multiprocess_mode="max",
        )
        self.worst = Gauge(
            "rewardloop_quality_worst",
            "largest figure of a monitor check over policy versions (PSI, p95 ms, ECE, share, ...)",
            ["check"],
            registry=r,
            multiprocess_mode="max",
        )
        self.runs = Gauge(
            "rewardloop_quality_last_run_timestamp_seconds",
            "end of the window of the latest monitor run",
            registry=r,
            multiprocess_mode="max",
        )

    def record(self, report: MonitorReport) -> None:
        alerts: dict[str, int] = defaultdict(int)
        worst: dict[str, float] = {}
        for c in report.checks:
            alerts[c.check] += int(c.alert)
            if c.figure is not None:
                worst[c.check] = max(worst.get(c.check, c.figure), c.figure)
        for check, n in alerts.items():
            self.alerts.labels(check).set(n)
        for check, figure in worst.items():
            self.worst.labels(check).set(figure)
        self.runs.set(report.window_end.timestamp())


async def monitor_forever(store: Store, cfg: MonitorConfig, gauges: QualityGauges) -> None:
    """Run the monitor every ``cfg.metrics_interval_s`` seconds and record it (until cancelled)."""
    while True:
        try:
            report = await anyio.to_thread.run_sync(lambda: run_monitor(store, cfg))
            gauges.record(report)
        except Exception as err:  # a failing run must not stop the service; the next one retries
            logger.error("monitor for /metrics failed: %s: %s", type(err).__name__, err)
        await asyncio.sleep(cfg.metrics_interval_s)


__all__ = ["QualityGauges", "monitor_forever"]
