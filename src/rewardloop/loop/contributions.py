"""Contributors: who gave the loop its feedback, and what each one's feedback is measured to be worth.

**The leaderboard** (:func:`leaderboard`) counts each contributor's feedback in a time range
(:func:`~rewardloop.store.contributors.contributor_totals`): rows, corrections, decisions, answered
review items, and the share of their label corrections that named another action than the model chose
(``changed``, a Wilson 95% interval with its n) — how often they caught the model wrong.

**The measured impact** (:func:`measure_impact`) is a leave-one-contributor-out retrain: the training
section's learner, config and seed fit once on the whole window (the *reference*) and once per
contributor on the same window without that contributor's feedback; every model is scored on the golden
set (``evaluation.golden``), and each fit is a TrainingRun whose config carries ``impact``
(measurement id, role ``all`` or ``without``, contributor). A contributor's impact is the reference's
golden accuracy minus the accuracy without them, measured on the same golden items: paired, with
Newcombe's score interval (:func:`~rewardloop.evaluation.intervals.paired_difference_interval`) and
the counts behind it — golden items only the reference gets right (``fixed``: the contributor's
feedback made the difference) and items only the model without them gets right (``broken``).

Cost: ``1 + top_k`` fits of the configured learner (the supervised head on cached sentence embeddings
fits in seconds); only the ``top_k`` contributors with the most feedback rows in the window are
measured, and only a classifier's label learner is accepted. It runs on demand (``rewardloop
contributors impact``) or from a job; pages and the API read the newest measurement's runs, they never
train. A difference within the interval around 0 is noise: with the same seed, a retrain on slightly
different data moves a few golden items either way.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from rewardloop.config import ProjectConfig
from rewardloop.evaluation.golden import GoldenError, GoldenSet, load_golden
from rewardloop.evaluation.intervals import paired_difference_interval, wilson_interval
from rewardloop.learners.data import LabelLearner
from rewardloop.loop.training import (
    TrainingError,
    TrainingPlan,
    build_data,
    check_enough,
    data_window,
    plan_run,
    read_window,
    resolve_plan,
    start_policy,
    train_plan,
)
from rewardloop.store import Store, read_runs
from rewardloop.store.contributors import ContributorTotals, contributor_totals
from rewardloop.store.insights import policies_of_project
from rewardloop.types import DecisionBatch, TimeWindow, TrainingRun, new_id

#: The run config key of an impact measurement's runs.
IMPACT_KEY = "impact"
#: Contributors measured by default (each costs one fit).
DEFAULT_TOP_K = 5


def _rate(successes: int, n: int) -> dict[str, Any] | None:
    """A share with its n and Wilson 95% interval (None with n = 0: nothing to measure)."""
    if n <= 0:
        return None
    r = wilson_interval(successes, n)
    return {"value": r.value, "low": r.low, "high": r.high, "n": n, "successes": successes}


def without(batch: DecisionBatch, contributor: str) -> DecisionBatch:
    """The batch without ``contributor``'s human feedback (everyone else's kept as is)."""
    kept = {
        i: [f for f in fbs if not (f.source == "human" and f.rater_id == contributor)]
        for i, fbs in batch.feedback.items()
    }
    return DecisionBatch(batch.decisions, {i: fbs for i, fbs in kept.items() if fbs}, batch.rewards)


def top_contributors(batch: DecisionBatch, top_k: int) -> list[tuple[str, int]]:
    """The ``top_k`` contributors with the most human feedback rows in the batch, with their counts
    (ties: by name)."""
    counts = Counter(
        f.rater_id for fbs in batch.feedback.values() for f in fbs if f.source == "human" and f.rater_id
    )
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:top_k]


def _golden(cfg: ProjectConfig, base: Path, labels: Sequence[str] | None) -> GoldenSet:
    path = cfg.evaluation.golden
    if path is None:
        raise TrainingError(
            "evaluation.golden: measuring a contributor's impact scores each retrain on the golden set; "
            "set evaluation.golden to a JSONL or CSV file"
        )
    full = Path(path) if Path(path).is_absolute() else base / path
    try:
        golden = load_golden(full, labels)
    except (GoldenError, OSError) as err:
        raise TrainingError(f"evaluation.golden: {err}") from None
    if golden.is_sets:
        raise TrainingError("evaluation.golden: a set golden set; impact is measured for classifiers")
    return golden


def _hits(fitted: Any, golden: GoldenSet) -> np.ndarray:
    """Whether ``fitted`` gets each golden item right, shape (n_golden,)."""
    return np.array([p == t for p, t in zip(fitted.predict(golden.texts), golden.expected, strict=True)])


def _golden_metrics(hits: np.ndarray) -> dict[str, float]:
    return {
        "golden_accuracy": float(hits.mean()),
        "golden_n": float(len(hits)),
        "golden_correct": float(hits.sum()),
    }


def _paired_metrics(ref: np.ndarray, hits: np.ndarray) -> dict[str, float]:
    """The 2×2 table of the reference's hits against these: a both right, b only the reference, c only
    these, d neither."""
    return {
        "impact/a": float(np.sum(ref & hits)),
        "impact/b": float(np.sum(ref & ~hits)),
        "impact/c": float(np.sum(~ref & hits)),
        "impact/d": float(np.sum(~ref & ~hits)),
    }


@dataclass(frozen=True)
class Impact:
    """One contributor's measured impact: the golden accuracy of the model trained without their
    feedback (``accuracy``) and the reference's accuracy minus it (``delta``: value, 95% interval, the
    golden items ``fixed`` and ``broken`` by their feedback, n); ``skipped`` says why it was not
    measured (then the rest is None)."""

    contributor: str
    removed: int
    examples: int | None
    accuracy: dict[str, Any] | None
    delta: dict[str, Any] | None
    run_id: str | None
    skipped: str | None = None


@dataclass(frozen=True)
class ImpactReport:
    """One measurement: the reference fit on the whole window and each measured contributor."""

    measurement: str
    policy: str
    learner: str
    reference_run: str
    examples: int
    accuracy: dict[str, Any] | None
    contributors: list[Impact]
    measured_at: datetime
    window: tuple[datetime | None, datetime | None]


def measure_impact(
    store: Store,
    cfg: ProjectConfig,
    base: Path,
    *,
    top_k: int = DEFAULT_TOP_K,
    window: TimeWindow = TimeWindow(),
    progress: Callable[[str], None] | None = None,
) -> ImpactReport:
    """Measure the impact of the ``top_k`` contributors of the training window (see the module
    docstring); records ``1 + measured`` TrainingRuns and returns the measurement as read back from them
    (:func:`read_impact`). A TrainingError names the key when it cannot run: no golden set, not a
    classifier's label learner, too little data."""
    if top_k < 1:
        raise TrainingError(f"top_k: must be at least 1, got {top_k}")
    plan = resolve_plan(cfg, base, window=window)
    if plan.policy.kind != "classifier" or not issubclass(plan.learner_cls, LabelLearner):
        raise TrainingError(
            f"training.learner: impact is measured by retraining a classifier with a label learner "
            f"(supervised, lora); {plan.policy.name!r} is a {plan.policy.kind} trained by {plan.learner}"
        )
    golden = _golden(cfg, base, plan.policy.labels or None)
    batch = read_window(store, plan)
    recorded = data_window(plan, batch)
    dump = cfg.training.model_dump(mode="json")
    data = build_data(plan, batch, start_policy(plan))
    check_enough(plan, data)
    mid = new_id()
    measured: list[tuple[str, int, Any]] = []
    skipped: dict[str, str] = {}
    for who, rows in top_contributors(batch, top_k):
        rest = build_data(plan, without(batch, who), start_policy(plan))
        try:
            check_enough(plan, rest)
        except TrainingError as err:
            skipped[who] = f"{rows} rows; without them: {err}"
            continue
        measured.append((who, rows, rest))
    say = progress or (lambda _msg: None)
    say(f"reference: {len(data)} examples, {len(measured)} contributors to measure")
    info = {"measurement": mid, "role": "all", "top_k": top_k, "skipped": skipped}
    ref_hits = _fit(store, plan, data, recorded, dump, info, golden, None)
    for who, rows, rest in measured:
        say(f"without {who}: {len(rest)} examples")
        info = {"measurement": mid, "role": "without", "contributor": who, "removed": rows}
        _fit(store, plan, rest, recorded, dump, info, golden, ref_hits)
    report = read_impact(store, plan.policy.name, mid)
    assert report is not None  # just recorded
    return report


def _fit(
    store: Store,
    plan: TrainingPlan,
    data: Any,
    window: tuple[datetime | None, datetime | None],
    dump: Mapping[str, Any],
    info: Mapping[str, Any],
    golden: GoldenSet,
    reference: np.ndarray | None,
) -> np.ndarray:
    """One recorded fit of the measurement scored on the golden set; its per-item hits."""
    run = plan_run(plan, data, window, dump, {IMPACT_KEY: dict(info)})
    box: list[np.ndarray] = []

    def score(fitted: Any) -> dict[str, float]:
        box.append(_hits(fitted, golden))
        paired = _paired_metrics(reference, box[0]) if reference is not None else {}
        return _golden_metrics(box[0]) | paired

    train_plan(store, plan, data, start_policy(plan), window, dump, run=run, evaluate=score)
    return box[0]


def _accuracy(run: TrainingRun) -> dict[str, Any] | None:
    m = run.metrics
    return _rate(int(m["golden_correct"]), int(m["golden_n"])) if "golden_n" in m else None


def _impact(run: TrainingRun) -> Impact:
    info, m = run.config[IMPACT_KEY], run.metrics
    if run.status != "succeeded" or "impact/a" not in m:
        return Impact(
            info["contributor"], int(info["removed"]), None, None, None, run.id, f"run {run.status}"
        )
    a, b, c, d = (int(m[f"impact/{x}"]) for x in "abcd")
    diff = paired_difference_interval(a, b, c, d)
    delta = {"value": diff.value, "low": diff.low, "high": diff.high, "n": diff.n, "fixed": b, "broken": c}
    return Impact(info["contributor"], int(info["removed"]), run.n_samples, _accuracy(run), delta, run.id)


def read_impact(store: Store, policy: str, measurement: str | None = None) -> ImpactReport | None:
    """The measurement ``measurement`` of ``policy`` (default: its newest) from its TrainingRuns, or
    None when there is none."""
    runs = [r for r in read_runs(store, policy=policy) if IMPACT_KEY in r.config]
    refs = [r for r in runs if r.config[IMPACT_KEY].get("role") == "all"]
    if measurement is not None:
        refs = [r for r in refs if r.config[IMPACT_KEY].get("measurement") == measurement]
    if not refs:
        return None
    ref = refs[-1]  # read_runs is oldest first
    info = ref.config[IMPACT_KEY]
    mine = [
        r for r in runs if r.config[IMPACT_KEY].get("measurement") == info["measurement"] and r is not ref
    ]
    impacts = [_impact(r) for r in mine]
    impacts += [Impact(who, 0, None, None, None, None, why) for who, why in info.get("skipped", {}).items()]
    return ImpactReport(
        measurement=str(info["measurement"]),
        policy=policy,
        learner=ref.learner,
        reference_run=ref.id,
        examples=ref.n_samples,
        accuracy=_accuracy(ref),
        contributors=impacts,
        measured_at=ref.started_at,
        window=ref.data_window,
    )


@dataclass(frozen=True)
class ContributorRow:
    """A leaderboard row: the contributor's totals in the range and the share of their label
    corrections that changed the model's answer (``changed``: value, 95% interval, n)."""

    rank: int
    totals: ContributorTotals
    changed: dict[str, Any] | None


def leaderboard(store: Store, project: str, window: TimeWindow = TimeWindow()) -> list[ContributorRow]:
    """The project's contributors with feedback in ``window``, most feedback first."""
    totals = contributor_totals(store, project, window.since, window.until)
    return [
        ContributorRow(i, t, _rate(t.changes, t.label_corrections)) for i, t in enumerate(totals, start=1)
    ]


@dataclass(frozen=True)
class ContributorsView:
    """What the contributors page, ``GET /v1/contributors`` and ``rewardloop contributors board``
    show: the leaderboard of the range and each policy's newest impact measurement (whatever its
    window: a measurement is a training window's, made when it was run)."""

    project: str
    since: datetime | None
    until: datetime | None
    items: list[ContributorRow]
    impact: list[ImpactReport]


def contributors_view(store: Store, project: str, window: TimeWindow = TimeWindow()) -> ContributorsView:
    """The leaderboard of ``project`` in ``window`` and its policies' newest measurements."""
    reports = [read_impact(store, name) for name in policies_of_project(store, project)]
    return ContributorsView(
        project,
        window.since,
        window.until,
        leaderboard(store, project, window),
        [r for r in reports if r is not None],
    )


__all__ = [
    "DEFAULT_TOP_K",
    "IMPACT_KEY",
    "ContributorRow",
    "ContributorsView",
    "Impact",
    "ImpactReport",
    "contributors_view",
    "leaderboard",
    "measure_impact",
    "read_impact",
    "top_contributors",
    "without",
]
