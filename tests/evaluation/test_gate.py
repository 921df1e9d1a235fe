"""The release gate: a candidate worse on a critical class fails; a better one passes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rewardloop.config.sections import GateConfig
from rewardloop.evaluation.gate import GateCheck, GateReport, OPEComparison, largest_class_drop, run_gate
from rewardloop.evaluation.golden import GoldenItem, GoldenSet
from rewardloop.evaluation.metrics import evaluate_predictions
from rewardloop.evaluation.ope import PolicyValueInterval

LABELS = ["fraud", "billing", "other"]
# 50 items: 10 critical fraud, 20 billing, 20 other.
GOLDEN = GoldenSet(
    [GoldenItem(f"f{i}", f"fraud {i}", "fraud", critical=True) for i in range(10)]
    + [GoldenItem(f"b{i}", f"bill {i}", "billing") for i in range(20)]
    + [GoldenItem(f"o{i}", f"other {i}", "other") for i in range(20)]
)
THRESHOLDS = GateConfig(min_accuracy=0.9, min_critical_accuracy=0.98, max_ece=0.2, max_class_drop=0.05)


def _report(name: str, wrong: dict[str, int], confidence: float = 0.9):
    """Predictions right except ``wrong[label]`` items of each label, answered 'other' (or 'billing')."""
    proba = []
    seen: dict[str, int] = {}
    for item in GOLDEN.items:
        k = seen.get(item.label, 0)
        seen[item.label] = k + 1
        target = item.label
        if k < wrong.get(item.label, 0):
            target = "other" if item.label != "other" else "billing"
        row = np.full(3, (1 - confidence) / 2)
        row[LABELS.index(target)] = confidence
        proba.append(row)
    return evaluate_predictions(GOLDEN, LABELS, np.array(proba), policy=name)


CHAMPION = _report("v1", {"billing": 2, "other": 2})  # 46/50, fraud all right


def test_candidate_worse_on_critical_class_fails():
    # Better overall (48/50) but misses 2 of the 10 critical fraud items.
    cand = _report("v2", {"fraud": 2})
    assert cand.accuracy > CHAMPION.accuracy
    gate = run_gate(cand, CHAMPION, THRESHOLDS)
    assert not gate.passed and gate.exit_code == 1
    failed = {c.name: c for c in gate.failed}
    assert set(failed) == {"critical_accuracy", "max_class_drop"}
    assert failed["critical_accuracy"].figure == pytest.approx(0.8)
    assert failed["max_class_drop"].figure == pytest.approx(0.2)
    assert "'fraud': 1.000 → 0.800" in failed["max_class_drop"].detail


def test_better_candidate_passes():
    cand = _report("v2", {"billing": 1})
    gate = run_gate(cand, CHAMPION, THRESHOLDS)
    assert gate.passed and gate.exit_code == 0
    assert [c.name for c in gate.checks] == ["accuracy", "critical_accuracy", "ece", "max_class_drop"]
    assert gate.checks[0].figure == pytest.approx(49 / 50)


def test_overconfident_candidate_fails_ece():
    cand = _report("v2", {"billing": 10, "other": 10}, confidence=0.99)  # 60% right at 99% confidence
    ece = run_gate(cand, None, GateConfig(max_ece=0.1)).checks[0]
    assert ece.name == "ece" and not ece.passed and ece.figure == pytest.approx(0.99 - 0.6)


def test_checks_that_cannot_be_computed_fail_and_say_why():
    no_crit = evaluate_predictions(GoldenSet(GOLDEN.items[10:]), LABELS, np.tile([0.05, 0.9, 0.05], (40, 1)))
    gate = run_gate(
        no_crit,
        None,
        GateConfig(min_critical_accuracy=0.9, max_class_drop=0.1, min_ope_lower_vs_champion=0.0),
    )
    assert [(c.name, c.passed, c.detail) for c in gate.checks] == [
        ("critical_accuracy", False, "the golden set has no critical items"),
        ("max_class_drop", False, "no champion to compare"),
        ("ope_lower_vs_champion", False, "no OPE estimate given"),
    ]


def test_ope_check_reads_the_lower_bound():
    iv = PolicyValueInterval(
        "dr", value=0.52, mean=0.52, lower=0.49, upper=0.55, alpha=0.05, n_bootstrap_samples=100
    )
    cfg = GateConfig(min_ope_lower_vs_champion=-0.02)
    assert run_gate(CHAMPION, None, cfg, OPEComparison(iv, champion_value=0.50)).passed  # 0.49 − 0.50 ≥ −0.02
    low = run_gate(CHAMPION, None, cfg, OPEComparison(iv, champion_value=0.52))
    assert not low.passed and low.checks[0].figure == pytest.approx(-0.03)


def test_no_thresholds_passes_with_no_checks():
    gate = run_gate(CHAMPION, CHAMPION, GateConfig())
    assert gate.passed and gate.checks == []
    assert "no thresholds configured" in gate.to_markdown()


def test_min_class_support_skips_tiny_classes():
    cand = _report("v2", {"fraud": 1})
    assert largest_class_drop(cand, CHAMPION) == (pytest.approx(0.1), "fraud")
    # With fraud's 10 items below the support floor, the worst is billing's gain of 0.1 (18/20 → 20/20).
    assert largest_class_drop(cand, CHAMPION, min_support=11) == (pytest.approx(-0.1), "billing")


def test_report_serialises():
    gate = run_gate(_report("v2", {"fraud": 2}), CHAMPION, THRESHOLDS)
    d = json.loads(json.dumps(gate.to_dict()))
    assert d["passed"] is False and d["candidate"] == "v2" and d["champion"] == "v1"
    assert {c["name"] for c in d["checks"]} == {"accuracy", "critical_accuracy", "ece", "max_class_drop"}
    md = gate.to_markdown()
    assert md.startswith("## Release gate: FAILED")
    assert "| critical_accuracy | 0.8000 | >= 0.9800 | **FAIL** |" in md


def test_gate_report_example():
    r = GateReport("v2", None, [GateCheck("accuracy", 0.5, 0.9, False, ">=")])
    assert not r.passed and r.exit_code == 1
