"""The release gate: a candidate passes only if every configured check passes.

Checks (each only when its threshold in :class:`~rewardloop.config.GateConfig` is set):

========================= ===========================================================================
check                     passes when
========================= ===========================================================================
``accuracy``              candidate golden accuracy ≥ ``min_accuracy``
``critical_accuracy``     candidate accuracy on critical items ≥ ``min_critical_accuracy``
``ece``                   candidate expected calibration error ≤ ``max_ece``
``max_class_drop``        max over classes of (champion − candidate recall) ≤ ``max_class_drop``
``ope_lower_vs_champion`` candidate's OPE lower bound − champion's value ≥ ``min_ope_lower_vs_champion``
========================= ===========================================================================

A configured check that cannot be computed (no critical items, no champion, no OPE estimate) fails and
says why: a gate in CI must never pass by omission.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from rewardloop.config.sections import GateConfig
from rewardloop.evaluation.metrics import GoldenReport
from rewardloop.evaluation.offline import OfflineEvaluation
from rewardloop.evaluation.ope import PolicyValueInterval


@dataclass(frozen=True)
class GateCheck:
    """One gate check: its figure, its threshold, and whether it passed."""

    name: str
    figure: float | None
    threshold: float
    passed: bool
    comparison: str  # ">=" or "<="
    detail: str = ""


@dataclass(frozen=True)
class OPEComparison:
    """What the OPE check reads: the candidate's interval and the champion's value (same estimator).

    Like with like: the champion's value is its logged mean reward, i.e. the champion as deployed (with
    its exploration), so the candidate's interval must be of the candidate as it will be deployed —
    :func:`~rewardloop.evaluation.offline.evaluate_candidate_on_logs` scores it with its serving
    exploration, and ``served_as`` says which (printed in the check's detail).

    Examples
    --------
    >>> iv = PolicyValueInterval("dr", 0.52, 0.52, 0.49, 0.55, 0.05, 1000)
    >>> round(OPEComparison(iv, champion_value=0.50).lower_minus_champion, 6)
    -0.01
    """

    candidate: PolicyValueInterval
    champion_value: float
    served_as: str | None = None

    @classmethod
    def from_offline(cls, offline: OfflineEvaluation, estimator: str = "dr") -> OPEComparison:
        """The comparison of an offline evaluation on the champion's logs, for one estimator."""
        return cls(offline.report.value(estimator), offline.logging_policy_value, offline.served_as)

    @property
    def lower_minus_champion(self) -> float:
        return self.candidate.lower - self.champion_value


@dataclass(frozen=True)
class GateReport:
    """The gate's verdict and every check behind it.

    Examples
    --------
    >>> r = GateReport(candidate="v2", champion="v1",
    ...                checks=[GateCheck("accuracy", 0.97, 0.95, True, ">=")])
    >>> r.passed, r.exit_code
    (True, 0)
    """

    candidate: str
    champion: str | None
    checks: list[GateCheck] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def exit_code(self) -> int:
        return 0 if self.passed else 1

    @property
    def failed(self) -> list[GateCheck]:
        return [c for c in self.checks if not c.passed]

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "candidate": self.candidate,
            "champion": self.champion,
            "checks": [asdict(c) for c in self.checks],
        }

    def to_markdown(self) -> str:
        verdict = "PASSED" if self.passed else "FAILED"
        vs = f" vs champion `{self.champion}`" if self.champion else ""
        lines = [
            f"## Release gate: {verdict}",
            "",
            f"Candidate `{self.candidate}`{vs}.",
            "",
            "| check | figure | threshold | result | detail |",
            "|---|---|---|---|---|",
        ]
        for c in self.checks:
            fig = "—" if c.figure is None or math.isnan(c.figure) else f"{c.figure:.4f}"
            res = "pass" if c.passed else "**FAIL**"
            lines.append(f"| {c.name} | {fig} | {c.comparison} {c.threshold:.4f} | {res} | {c.detail} |")
        if not self.checks:
            lines.append("| (no thresholds configured) | | | pass | |")
        return "\n".join(lines) + "\n"


def threshold_check(
    name: str, figure: float | None, threshold: float, at_least: bool, detail: str = ""
) -> GateCheck:
    """``figure ≥ threshold`` (``at_least``) or ``≤``; a None or NaN figure fails ("not measurable")."""
    if figure is None or math.isnan(figure):
        return GateCheck(
            name, figure, threshold, False, ">=" if at_least else "<=", detail or "not measurable"
        )
    ok = figure >= threshold if at_least else figure <= threshold
    return GateCheck(name, figure, threshold, ok, ">=" if at_least else "<=", detail)


def largest_class_drop(
    candidate: GoldenReport, champion: GoldenReport, min_support: int = 1
) -> tuple[float, str | None]:
    """The largest per-class recall drop from champion to candidate, and its class (ties: first label)."""
    worst, worst_label = -math.inf, None
    for label, champ in champion.per_class.items():
        cand = candidate.per_class.get(label)
        if cand is None or champ.support < min_support:
            continue
        drop = champ.recall - cand.recall
        if drop > worst:
            worst, worst_label = drop, label
    return (worst, worst_label) if worst_label is not None else (math.nan, None)


def ope_check(ope: OPEComparison | None, threshold: float) -> GateCheck:
    """``ope_lower_vs_champion``: the candidate's OPE lower bound − the champion's value ≥ ``threshold``."""
    if ope is None:
        return threshold_check("ope_lower_vs_champion", None, threshold, True, "no OPE estimate given")
    iv = ope.candidate
    served = f" (candidate served {ope.served_as})" if ope.served_as else ""
    detail = (
        f"{iv.estimator} {iv.value:.4f} [{iv.lower:.4f}, {iv.upper:.4f}]{served} vs champion "
        f"{ope.champion_value:.4f}"
    )
    return threshold_check("ope_lower_vs_champion", ope.lower_minus_champion, threshold, True, detail)


def run_gate(
    candidate: GoldenReport,
    champion: GoldenReport | None,
    thresholds: GateConfig,
    ope: OPEComparison | None = None,
) -> GateReport:
    """Compare a candidate's golden report (and OPE estimate) with the thresholds and the champion.

    Examples
    --------
    >>> from rewardloop.evaluation.golden import GoldenItem, GoldenSet
    >>> from rewardloop.evaluation.metrics import evaluate_predictions
    >>> g = GoldenSet([GoldenItem("a", "x", "spam", critical=True), GoldenItem("b", "y", "ham")])
    >>> cand = evaluate_predictions(g, ["ham", "spam"], [[0.4, 0.6], [0.3, 0.7]], policy="v2")
    >>> run_gate(cand, None, GateConfig(min_critical_accuracy=0.98)).passed
    True
    >>> run_gate(cand, None, GateConfig(min_accuracy=0.95)).passed
    False
    """
    t = thresholds
    checks: list[GateCheck] = []
    if t.min_accuracy is not None:
        checks.append(
            threshold_check("accuracy", candidate.accuracy, t.min_accuracy, True, f"{candidate.n} items")
        )
    if t.min_critical_accuracy is not None:
        detail = (
            f"{candidate.n_critical} critical items"
            if candidate.n_critical
            else "the golden set has no critical items"
        )
        checks.append(
            threshold_check(
                "critical_accuracy", candidate.critical_accuracy, t.min_critical_accuracy, True, detail
            )
        )
    if t.max_ece is not None:
        checks.append(threshold_check("ece", candidate.ece, t.max_ece, False, f"{candidate.n_bins} bins"))
    if t.max_class_drop is not None:
        if champion is None:
            checks.append(
                threshold_check("max_class_drop", None, t.max_class_drop, False, "no champion to compare")
            )
        else:
            drop, label = largest_class_drop(candidate, champion, t.min_class_support)
            detail = (
                f"class {label!r}: {champion.class_accuracy(label):.3f} → "
                f"{candidate.class_accuracy(label):.3f}"
                if label is not None
                else "no class in common"
            )
            checks.append(threshold_check("max_class_drop", drop, t.max_class_drop, False, detail))
    if t.min_ope_lower_vs_champion is not None:
        checks.append(ope_check(ope, t.min_ope_lower_vs_champion))
    return GateReport(candidate.policy, None if champion is None else champion.policy, checks)


__all__ = [
    "GateCheck",
    "GateReport",
    "OPEComparison",
    "largest_class_drop",
    "ope_check",
    "run_gate",
    "threshold_check",
]
