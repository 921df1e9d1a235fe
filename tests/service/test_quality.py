"""The /metrics quality gauges: the monitor's verdicts aggregated over policies, with no policy names."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from prometheus_client import generate_latest

from rewardloop.config.sections import MonitorConfig
from rewardloop.evaluation.monitor import MonitorCheck, MonitorReport
from rewardloop.service.middleware import Metrics
from rewardloop.service.quality import QualityGauges, monitor_forever

END = datetime(2026, 3, 2, tzinfo=UTC)


def _report():
    checks = [
        MonitorCheck("label_psi", "secret-policy", "1", "alert", 0.4, 0.01, 300),
        MonitorCheck("label_psi", "secret-policy", "2", "ok", 0.05, 0.01, 300),
        MonitorCheck("p95_latency", "other-policy", "1", "ok", 20.0, 500.0, 300),
        MonitorCheck("calibration", "other-policy", "1", "skipped", None, 0.1, 3),
    ]
    return MonitorReport(datetime(2026, 3, 1, tzinfo=UTC), END, checks)


def test_gauges_aggregate_without_policy_names():
    metrics = Metrics()
    QualityGauges(metrics).record(_report())
    text = generate_latest(metrics.registry).decode()
    assert 'rewardloop_quality_alerts{check="label_psi"} 1.0' in text
    assert 'rewardloop_quality_worst{check="label_psi"} 0.4' in text
    assert 'rewardloop_quality_worst{check="p95_latency"} 20.0' in text
    assert 'rewardloop_quality_alerts{check="calibration"} 0.0' in text
    assert 'rewardloop_quality_worst{check="calibration"}' not in text  # skipped: no figure
    assert (
        metrics.registry.get_sample_value("rewardloop_quality_last_run_timestamp_seconds") == END.timestamp()
    )
    assert "secret-policy" not in text and "other-policy" not in text


def test_monitor_loop_records_and_survives_a_failure(sqlite_store, caplog):
    metrics = Metrics()
    gauges = QualityGauges(metrics)

    async def run(store):
        task = asyncio.create_task(monitor_forever(store, MonitorConfig(metrics_interval_s=0.01), gauges))
        await asyncio.sleep(0.3)
        task.cancel()

    asyncio.run(run(sqlite_store))
    assert gauges.runs._value.get() > 0  # one run (an empty store) recorded
    gauges = QualityGauges(Metrics())
    asyncio.run(run(object()))  # not a store: every run fails, the loop keeps going
    assert any("monitor for /metrics failed: AttributeError" in r.message for r in caplog.records)
