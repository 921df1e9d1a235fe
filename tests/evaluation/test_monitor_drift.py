"""The monitor's input-drift checks, the Slack-compatible body and the webhook's retries with backoff."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from tests.evaluation._evaluation_data import MONITOR_NOW

from rewardloop.config.sections import MonitorConfig
from rewardloop.evaluation.monitor import (
    MonitorCheck,
    MonitorReport,
    drift_checks,
    post_with_retries,
    run_monitor,
    send_alerts,
)
from rewardloop.store import write_decisions, write_feedback
from rewardloop.types.batches import DecisionBatch
from rewardloop.types.records import Decision, Feedback

ACTIONS = ("a", "b", "c", "d")


def _batch(rng, n, mix, *, start, feedback_share=0.5, text_shift=0.0):
    ds, fb = [], {}
    for i in range(n):
        k = int(rng.choice(4, p=mix))
        conf = float(rng.uniform(0.4, 0.95))
        dist = [conf if j == k else (1 - conf) / 3 for j in range(4)]
        word = "other" if rng.random() < text_shift else ACTIONS[k]
        d = Decision(
            policy="intent",
            policy_version="1",
            kind="classifier",
            actions=ACTIONS,
            action=ACTIONS[k],
            action_dist=dist,
            pscore=conf,
            text=f"{word} {i}",
            created_at=start + timedelta(seconds=20 * i),
        )
        ds.append(d)
        if rng.random() < feedback_share:
            fb[d.id] = [
                Feedback(decision_id=d.id, kind="correction", label=d.action, created_at=d.created_at)
            ]
    return DecisionBatch(ds, fb)


def _embed(texts):
    """A stand-in encoder: one-hot of the first word, so that new words move the embedding mix."""
    vocab = [*ACTIONS, "other"]
    return np.array([[float(t.split()[0] == w) for w in vocab] for t in texts])


T0 = datetime(2026, 3, 1, tzinfo=UTC)
CFG = MonitorConfig(drift_permutations=100)


def test_no_drift_no_alert_and_every_check_reported():
    rng = np.random.default_rng(1)
    base = _batch(rng, 300, [0.4, 0.3, 0.2, 0.1], start=T0)
    cur = _batch(rng, 300, [0.4, 0.3, 0.2, 0.1], start=T0 + timedelta(days=1))
    checks = drift_checks(cur, base, CFG, "intent", "1", _embed)
    assert [c.check for c in checks] == ["label_psi", "confidence_psi", "embedding_mmd", "feedback_rate"]
    assert [c.status for c in checks] == ["ok"] * 4
    assert all(c.threshold == 0.01 and c.n == 300 for c in checks)


def test_each_kind_of_drift_is_flagged():
    rng = np.random.default_rng(11)
    base = _batch(rng, 300, [0.4, 0.3, 0.2, 0.1], start=T0)
    mix = _batch(rng, 300, [0.1, 0.2, 0.3, 0.4], start=T0)
    quiet = _batch(rng, 300, [0.4, 0.3, 0.2, 0.1], start=T0, feedback_share=0.2)
    texts = _batch(rng, 300, [0.4, 0.3, 0.2, 0.1], start=T0, text_shift=0.2)

    def status(cur):
        return {c.check: c.status for c in drift_checks(cur, base, CFG, "intent", "1", _embed)}

    assert status(mix)["label_psi"] == "alert"
    assert status(quiet)["feedback_rate"] == "alert"
    assert status(texts) == {
        "label_psi": "ok",
        "confidence_psi": "ok",
        "embedding_mmd": "alert",
        "feedback_rate": "ok",
    }


def test_drift_checks_skip_and_say_why():
    rng = np.random.default_rng(2)
    cur = _batch(rng, 30, [0.25] * 4, start=T0)
    checks = drift_checks(cur, None, CFG, "intent", "1")
    assert {c.status for c in checks} == {"skipped"}
    assert checks[0].detail == "needs 20 decisions in this window and the previous one (have 30 and 0)"
    base = _batch(rng, 30, [0.25] * 4, start=T0)
    by = {c.check: c for c in drift_checks(cur, base, CFG, "intent", "1")}
    assert by["embedding_mmd"].status == "skipped" and by["embedding_mmd"].detail == "no encoder given"
    assert by["label_psi"].status == "ok"


def test_run_monitor_reports_drift_per_version(store):
    rng = np.random.default_rng(3)
    base = _batch(rng, 120, [0.4, 0.3, 0.2, 0.1], start=MONITOR_NOW - timedelta(hours=47))
    cur = _batch(rng, 120, [0.05, 0.05, 0.1, 0.8], start=MONITOR_NOW - timedelta(hours=23))
    write_decisions(store, base.decisions + cur.decisions)
    write_feedback(store, [f for b in (base, cur) for fs in b.feedback.values() for f in fs])
    report = run_monitor(store, CFG, now=MONITOR_NOW, embed=_embed)
    by = {c.check: c for c in report.checks}
    assert by["label_psi"].alert and by["embedding_mmd"].alert
    assert by["label_psi"].figure > 0.25
    assert not MonitorConfig(drift=False).drift
    assert "label_psi" not in {
        c.check for c in run_monitor(store, MonitorConfig(drift=False), now=MONITOR_NOW).checks
    }


def _report():
    alert = MonitorCheck("label_psi", "intent", "1", "alert", 0.4, 0.01, 300, "p = 0.005")
    ok = MonitorCheck("p95_latency", "intent", "1", "ok", 20.0, 500.0, 300, "p95 20.0 ms")
    return MonitorReport(datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 2, tzinfo=UTC), [alert, ok])


def test_the_body_is_slack_compatible():
    body = _report().to_dict()
    assert body["text"] == (
        "rewardloop monitor: 1 alert(s) in 2 checks, 2026-03-01 00:00 → 2026-03-02 00:00 UTC\n"
        "• intent@1 label_psi: 0.4 (threshold 0.01); p = 0.005"
    )
    assert [a["check"] for a in body["alerts"]] == ["label_psi"]


def _poster(answers):
    calls = []

    def post(url, payload, timeout):
        calls.append((url, timeout))
        answer = answers[len(calls) - 1]
        if isinstance(answer, Exception):
            raise answer
        return answer

    return post, calls


def test_retries_back_off_exponentially_with_full_jitter():
    post, calls = _poster([OSError("refused"), 503, 429, 204])
    waits = []
    status = post_with_retries(
        "http://x", {}, retries=3, backoff_s=1.0, sleep=waits.append, rng=random.Random(0), post=post
    )
    assert status == 204 and len(calls) == 4
    r = random.Random(0)
    assert waits == [r.uniform(0, 1.0), r.uniform(0, 2.0), r.uniform(0, 4.0)]
    assert all(0 <= w <= 2**i for i, w in enumerate(waits))


def test_no_retry_on_a_client_error_and_the_last_failure_is_kept():
    post, calls = _poster([400])
    assert post_with_retries("http://x", {}, sleep=lambda s: None, post=post) == 400 and len(calls) == 1
    post, calls = _poster([500, 500])
    assert post_with_retries("http://x", {}, retries=1, sleep=lambda s: None, post=post) == 500
    post, calls = _poster([OSError("a"), OSError("b")])
    with pytest.raises(OSError, match="b"):
        post_with_retries("http://x", {}, retries=1, sleep=lambda s: None, post=post)


def test_send_alerts_uses_the_configured_retries():
    post, calls = _poster([502, 502, 200])
    cfg = MonitorConfig(webhook_url="http://hook", webhook_retries=2, webhook_backoff_s=0.0)
    assert send_alerts(_report(), cfg, post=post, sleep=lambda s: None) is True and len(calls) == 3
    post, calls = _poster([502, 502, 502])
    assert send_alerts(_report(), cfg, post=post, sleep=lambda s: None) is False
