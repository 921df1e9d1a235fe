"""Regression monitor over stored decisions + feedback (SQLite and PostgreSQL), alerts to a local webhook."""

from __future__ import annotations

import json
import logging
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import ClassVar

import pytest
from tests.evaluation._evaluation_data import MONITOR_NOW, fill_monitor_logs

from rewardloop.config.sections import MonitorConfig
from rewardloop.evaluation.monitor import feedback_outcome, run_monitor, send_alerts
from rewardloop.types.records import Decision, Feedback

NOW = MONITOR_NOW
REGRESSION_CHECKS = {"accuracy_drop", "p95_latency", "calibration", "category_dominance"}


def _fill(store):
    fill_monitor_logs(store)


def test_monitor_finds_the_four_regressions(store):
    _fill(store)
    report = run_monitor(store, MonitorConfig(), now=NOW)
    by = {(c.version, c.check): c for c in report.checks}
    assert {k for k, c in by.items() if c.alert and c.check in REGRESSION_CHECKS} == {
        ("1", "accuracy_drop"),
        ("1", "p95_latency"),
        ("1", "calibration"),
        ("1", "category_dominance"),
    }
    # One category taking over is also a shift of the predicted-label mix: the drift check sees it.
    assert {k for k, c in by.items() if c.alert and c.check not in REGRESSION_CHECKS} == {("1", "label_psi")}
    assert by[("1", "accuracy_drop")].figure == pytest.approx(39 / 40 - 32 / 40)
    assert by[("1", "p95_latency")].figure == pytest.approx(600.0)
    assert by[("1", "calibration")].figure == pytest.approx(0.99 - 0.8)
    assert by[("1", "category_dominance")].figure == 1.0
    # Version 2 is healthy; it has no previous window, so its accuracy-drop check is skipped.
    assert by[("2", "accuracy_drop")].status == "skipped"
    assert [by[("2", c)].status for c in ("p95_latency", "calibration", "category_dominance")] == ["ok"] * 3
    assert by[("2", "category_dominance")].figure == pytest.approx(0.25)


def test_thresholds_are_configurable(store):
    _fill(store)
    loose = MonitorConfig(
        drift=False,
        max_accuracy_drop=0.5,
        max_p95_latency_ms=1000,
        max_calibration_error=0.5,
        max_category_share=1.0,
    )
    assert run_monitor(store, loose, now=NOW).alerts == []
    few = MonitorConfig(min_samples=1000)
    assert {c.status for c in run_monitor(store, few, now=NOW).checks} == {"skipped"}


def test_outcome_from_feedback_kinds():
    d = Decision(
        policy="p",
        policy_version="1",
        kind="classifier",
        actions=("x", "y"),
        action="x",
        action_dist=(0.6, 0.4),
        pscore=0.6,
    )
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    assert feedback_outcome(d, []) is None
    assert feedback_outcome(d, [Feedback(decision_id=d.id, kind="rating", value=4, scale=(1, 5))]) is True
    assert feedback_outcome(d, [Feedback(decision_id=d.id, kind="implicit", value=0)]) is False
    late_fix = [
        Feedback(decision_id=d.id, kind="rating", value=5, scale=(1, 5), created_at=t0),
        Feedback(decision_id=d.id, kind="correction", label="y", created_at=t0 + timedelta(hours=1)),
    ]
    assert feedback_outcome(d, late_fix) is False  # the latest word counts


class _Sink(BaseHTTPRequestHandler):
    received: ClassVar[list[dict]] = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Sink.received.append(
            {"path": self.path, "type": self.headers["Content-Type"], "json": json.loads(body)}
        )
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def webhook():
    _Sink.received = []
    server = HTTPServer(("127.0.0.1", 0), _Sink)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hooks/rewardloop", _Sink.received
    server.shutdown()
    server.server_close()


def test_alerts_go_to_the_log_and_the_webhook(sqlite_store, webhook, caplog):
    url, received = webhook
    _fill(sqlite_store)
    cfg = MonitorConfig(webhook_url=url, drift=False)
    report = run_monitor(sqlite_store, cfg, now=NOW)
    with caplog.at_level(logging.WARNING, logger="rewardloop.monitor"):
        assert send_alerts(report, cfg) is True
    assert len([r for r in caplog.records if "regression alert" in r.message]) == 4
    assert len(received) == 1
    body = received[0]
    assert body["path"] == "/hooks/rewardloop" and body["type"] == "application/json"
    assert body["json"]["source"] == "rewardloop.monitor"
    assert sorted(a["check"] for a in body["json"]["alerts"]) == [
        "accuracy_drop",
        "calibration",
        "category_dominance",
        "p95_latency",
    ]
    assert all(a["policy"] == "intent" and a["version"] == "1" for a in body["json"]["alerts"])


def test_unreachable_webhook_is_logged_not_raised(sqlite_store, caplog):
    _fill(sqlite_store)
    cfg = MonitorConfig(
        webhook_url="http://127.0.0.1:9/nothing-listens-here", webhook_timeout_s=2, webhook_backoff_s=0.01
    )
    report = run_monitor(sqlite_store, cfg, now=NOW)
    with caplog.at_level(logging.ERROR, logger="rewardloop.monitor"):
        assert send_alerts(report, cfg) is False
    assert any("webhook" in r.message and "failed" in r.message for r in caplog.records)
