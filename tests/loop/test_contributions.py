"""Contributors: the leaderboard's exact totals over a time range, and the measured impact of a
contributor's feedback (a leave-one-contributor-out retrain scored on the golden set, recorded as runs)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import torch

from rewardloop.config import ProjectConfig
from rewardloop.loop.contributions import leaderboard, measure_impact, read_impact, top_contributors, without
from rewardloop.loop.training import TrainingError
from rewardloop.store import Store, read_decisions, read_runs, write_decisions, write_feedback
from rewardloop.store.contributors import contributor_totals
from rewardloop.store.voids import void_feedback
from rewardloop.types import Decision, DecisionBatch, Feedback

T0 = datetime(2026, 3, 1, tzinfo=UTC)
LABELS = ["lights_on", "lights_off", "weather", "timer"]
TEXTS = {
    "lights_on": ["turn on the kitchen lights", "lights on in the hall", "switch the lamp on",
                  "put the lights on", "light up the living room", "turn the bedroom light on"],
    "lights_off": ["turn off the bedroom light", "lights off please", "kill the lights in the garage",
                   "switch the lamp off", "put the lights out", "turn the hall light off"],
    "weather": ["what's the weather tomorrow", "will it rain today", "how cold is it outside",
                "is it sunny this afternoon", "weather forecast for the weekend", "do I need an umbrella"],
    "timer": ["set a timer for ten minutes", "start a 5 minute timer", "timer for the pasta",
              "count down three minutes", "set a twenty second timer", "remind me in an hour with a timer"],
}  # fmt: skip
GOLDEN = {
    "lights_on": ["please turn the lights on", "lamp on now"],
    "lights_off": ["please turn the lights off", "lamp off now"],
    "weather": ["what is the forecast", "is it going to snow"],
    "timer": ["start a timer", "set a one minute timer"],
}  # fmt: skip


def _decision(text: str, at: datetime, project: str = "acme") -> Decision:
    return Decision(
        policy="intent", policy_version="1", kind="classifier", actions=tuple(LABELS), action="lights_on",
        action_dist=(0.4, 0.2, 0.2, 0.2), pscore=0.4, text=text, metadata={"project": project},
        created_at=at,
    )  # fmt: skip


def _fb(d: Decision, rater: str, label: str, at: datetime, **kw: object) -> Feedback:
    return Feedback(decision_id=d.id, kind="correction", label=label, rater_id=rater, created_at=at, **kw)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------ leaderboard


def test_leaderboard_counts_people_in_the_range_exactly(store: Store) -> None:
    ds = [_decision(f"text {i}", T0) for i in range(5)]
    other = _decision("elsewhere", T0, project="other")
    write_decisions(store, [*ds, other])
    t = T0 + timedelta(hours=1)
    rows = [
        _fb(ds[0], "ann", "lights_on", t),  # confirms the model's action: a correction, not a change
        _fb(ds[1], "ann", "weather", t),  # changes it
        _fb(ds[2], "ann", "timer", t + timedelta(days=2)),  # outside the range below
        Feedback(decision_id=ds[3].id, kind="rating", value=1, scale=(0, 1), rater_id="ann", created_at=t),
        _fb(ds[0], "bob", "weather", t),
        _fb(ds[4], "judge", "timer", t, source="judge"),  # not a person
        Feedback(decision_id=ds[4].id, kind="implicit", value=1.0, source="implicit", created_at=t),
        _fb(other, "ann", "weather", t),  # another project
    ]
    write_feedback(store, rows)
    void = _fb(ds[3], "bob", "timer", t)
    write_feedback(store, [void])
    void_feedback(store, void.id, reason="spam", actor="admin", project="acme")
    totals = contributor_totals(store, "acme", since=T0, until=T0 + timedelta(days=1))
    assert [
        (x.rater, x.feedback, x.corrections, x.label_corrections, x.changes, x.decisions) for x in totals
    ] == [
        ("ann", 3, 2, 2, 1, 3),
        ("bob", 1, 1, 1, 1, 1),
    ]
    assert totals[0].first_at == t and totals[0].last_at == t
    board = leaderboard(store, "acme")  # all time: ann's third correction counts
    assert [(r.rank, r.totals.rater, r.totals.feedback) for r in board] == [(1, "ann", 4), (2, "bob", 1)]
    # ann changed 2 of 3 label corrections: Wilson 95% interval of 2/3
    assert board[0].changed is not None and board[0].changed["n"] == 3
    assert (round(board[0].changed["low"], 4), round(board[0].changed["high"], 4)) == (0.2077, 0.9385)


def test_without_drops_one_persons_feedback_and_top_contributors_ranks_by_rows() -> None:
    d1, d2 = _decision("a", T0), _decision("b", T0)
    fb = {
        d1.id: [
            _fb(d1, "ann", "timer", T0),
            _fb(d1, "bob", "timer", T0),
            _fb(d1, "ann", "x", T0, source="judge"),
        ],
        d2.id: [_fb(d2, "ann", "weather", T0)],
    }
    batch = DecisionBatch([d1, d2], fb)
    kept = without(batch, "ann")
    assert {i: [(f.rater_id, f.source) for f in v] for i, v in kept.feedback.items()} == {
        d1.id: [("bob", "human"), ("ann", "judge")]
    }
    assert top_contributors(batch, 5) == [("ann", 2), ("bob", 1)]
    assert top_contributors(batch, 1) == [("ann", 2)]


# --------------------------------------------------------------------------------------- impact


@pytest.fixture(scope="module")
def encoder():
    torch.set_num_threads(1)
    from rewardloop.encoders import default_encoder

    return default_encoder()


def project_dict(tmp_path: Path, golden: bool = True) -> dict[str, Any]:
    """The project file's content: the intent classifier, the supervised learner, the golden set."""
    cfg: dict[str, Any] = {
        "policies": [{"name": "intent", "kind": "classifier", "labels": LABELS}],
        "training": {"learner": "supervised", "min_feedback": 4, "output_dir": str(tmp_path / "art")},
    }
    if golden:
        path = tmp_path / "golden.jsonl"
        path.write_text(
            "\n".join(json.dumps({"text": t, "label": k}) for k, ts in GOLDEN.items() for t in ts)
        )
        cfg["evaluation"] = {"golden": str(path)}
    return cfg


def _project(tmp_path: Path, golden: bool = True) -> ProjectConfig:
    return ProjectConfig.model_validate(project_dict(tmp_path, golden))


def _seed_labels(store: Store) -> None:
    """ann labels half of every intent right; bob swaps weather and timer on the other half of those;
    cat labels the other half of the lights right."""
    ds, fb = [], []
    for k, texts in TEXTS.items():
        for i, text in enumerate(texts):
            d = _decision(text, T0 + timedelta(minutes=len(ds)))
            ds.append(d)
            if i < 3:
                fb.append(_fb(d, "ann", k, d.created_at + timedelta(seconds=1)))
            elif k in ("weather", "timer"):
                fb.append(_fb(d, "bob", "timer" if k == "weather" else "weather", d.created_at))
            else:
                fb.append(_fb(d, "cat", k, d.created_at))
    write_decisions(store, ds)
    write_feedback(store, fb)


def test_impact_retrains_without_each_contributor_and_records_the_runs(
    store: Store, tmp_path: Path, encoder: object
) -> None:
    _seed_labels(store)
    cfg = _project(tmp_path)
    report = measure_impact(store, cfg, tmp_path, top_k=2)
    runs = [r for r in read_runs(store, policy="intent") if "impact" in r.config]
    assert len(runs) == 3 and {r.status for r in runs} == {"succeeded"}
    roles = sorted((r.config["impact"]["role"], r.config["impact"].get("contributor")) for r in runs)
    assert roles == [("all", None), ("without", "ann"), ("without", "bob")]  # ann 12 rows, bob and cat 6
    assert {r.config["learner"]["seed"] for r in runs} == {runs[0].config["learner"]["seed"]}
    assert report.examples == 24 and report.accuracy is not None and report.accuracy["n"] == 8
    by = {i.contributor: i for i in report.contributors}
    assert (by["ann"].examples, by["ann"].removed, by["bob"].examples, by["bob"].removed) == (12, 12, 18, 6)
    for imp in by.values():
        assert imp.delta is not None and imp.accuracy is not None
        # the difference is the reference's accuracy minus this one's, on the same 8 golden items
        ref_right = report.accuracy["successes"]
        assert imp.delta["value"] == pytest.approx((ref_right - imp.accuracy["successes"]) / 8)
        assert imp.delta["value"] == pytest.approx((imp.delta["fixed"] - imp.delta["broken"]) / 8)
        assert imp.delta["low"] <= imp.delta["value"] <= imp.delta["high"]
    # ann's right labels help (without them weather and timer are learned swapped); bob's swapped ones
    # do not
    assert by["ann"].delta["value"] > 0 and by["ann"].delta["fixed"] >= 2
    assert by["bob"].delta["value"] <= 0
    # read back: the newest measurement of the policy, the same figures
    again = read_impact(store, "intent")
    assert again is not None and again.measurement == report.measurement
    assert {i.contributor: i.delta for i in again.contributors} == {
        i.contributor: i.delta for i in report.contributors
    }


def test_a_contributor_without_whom_too_little_is_left_is_reported_not_trained(
    store: Store, tmp_path: Path, encoder: object
) -> None:
    _seed_labels(store)
    cfg = _project(tmp_path)
    cfg.training.min_feedback = 13  # 24 in all; 12 without ann
    report = measure_impact(store, cfg, tmp_path, top_k=1)
    (ann,) = report.contributors
    assert ann.contributor == "ann" and ann.delta is None and ann.run_id is None
    assert ann.skipped is not None and "12 training examples" in ann.skipped
    assert len([r for r in read_runs(store) if "impact" in r.config]) == 1


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("golden", "evaluation.golden: measuring a contributor's impact"),
        ("learner", "training.learner: impact is measured by retraining a classifier with a label learner"),
        ("top_k", "top_k: must be at least 1, got 0"),
    ],
)
def test_what_cannot_be_measured_is_refused_naming_the_key(
    store: Store, tmp_path: Path, change: str, message: str
) -> None:
    cfg = _project(tmp_path, golden=change != "golden")
    if change == "learner":
        cfg.training.learner = "reinforce"
        cfg.training.reward_spec = "thumbs"
        cfg = ProjectConfig.model_validate(
            {**cfg.model_dump(), "rewards": [{"name": "thumbs", "version": 1, "function": "accuracy"}]}
        )
    with pytest.raises(TrainingError, match=message):
        measure_impact(store, cfg, tmp_path, top_k=0 if change == "top_k" else 2)
    assert read_decisions(store).decisions == []
