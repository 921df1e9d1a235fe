"""The evaluation section of rewardloop.yaml: defaults, and bad values named by their key."""

from __future__ import annotations

import pytest

from rewardloop.config import ConfigError, parse_config


def test_defaults_check_nothing_at_the_gate_and_watch_24h():
    cfg = parse_config({})
    assert cfg.evaluation.gate.min_accuracy is None and cfg.evaluation.gate.ope_estimator == "dr"
    m = cfg.evaluation.monitor
    assert (m.window_hours, m.max_accuracy_drop, m.max_p95_latency_ms, m.max_calibration_error) == (
        24.0,
        0.02,
        500.0,
        0.10,
    )


def test_issue_thresholds_parse():
    cfg = parse_config(
        {"evaluation": {"golden": "g.jsonl", "gate": {"min_accuracy": 0.95, "min_critical_accuracy": 0.98}}}
    )
    assert cfg.evaluation.gate.min_critical_accuracy == 0.98


@pytest.mark.parametrize(
    ("section", "key"),
    [
        ({"gate": {"min_accuracy": 1.5}}, "evaluation.gate.min_accuracy"),
        ({"gate": {"max_ece": -0.1}}, "evaluation.gate.max_ece"),
        ({"gate": {"min_acuracy": 0.9}}, "evaluation.gate.min_acuracy"),
        ({"monitor": {"window_hours": 0}}, "evaluation.monitor.window_hours"),
        ({"monitor": {"max_category_share": 0}}, "evaluation.monitor.max_category_share"),
        ({"n_bins": 1}, "evaluation.n_bins"),
    ],
)
def test_bad_values_name_their_key(section, key):
    with pytest.raises(ConfigError) as err:
        parse_config({"evaluation": section}, "rewardloop.yaml")
    assert f"  {key}:" in str(err.value)
