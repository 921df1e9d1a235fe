"""The store on SQLite and PostgreSQL: round trips, validation with nothing lost, idempotency, reads."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import create_engine, inspect

from rewardloop.store import (
    BatchError,
    Store,
    current_revision,
    finish_run,
    get_run,
    head_revision,
    log_decision,
    read_decisions,
    read_feedback,
    read_rewards,
    read_runs,
    start_run,
    store_stats,
    upgrade,
    write_decisions,
    write_feedback,
    write_rewards,
)
from rewardloop.store.engine import StoreError
from rewardloop.types import Decision, Feedback, Reward, TraceStep, TrainingRun

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def make_decision(i: int, **changes) -> Decision:
    base = dict(
        id=f"d{i}",
        policy="intent",
        policy_version="1",
        kind="classifier",
        actions=("on", "off"),
        action="on",
        action_dist=(0.75, 0.25),
        pscore=0.75,
        text=f"turn it on {i}",
        created_at=T0 + timedelta(minutes=i),
    )
    return Decision(**{**base, **changes})


def test_decision_round_trip_keeps_every_field(store: Store):
    d = Decision(
        policy="router",
        policy_version="2.0.1",
        kind="router",
        actions=("naive_rag", "agentic_rag", "hybrid"),
        action="hybrid",
        action_dist=(0.1, 0.3, 0.6),
        pscore=0.6,
        confidence=0.55,
        latency_ms=12.5,
        text="how do I reset my password?",
        features=(0.5, -1.25),
        candidates=("a1", "a2", "a3"),
        metadata={"user_id": "u7", "category": "account", "nested": {"k": [1, 2]}},
        experiment="exp1",
        variant="challenger",
        variant_share=0.05,
        trace=(TraceStep("expert", "hybrid", math.log(0.6)), TraceStep("graph", "node4", -0.2)),
        idempotency_key="req-123",
        created_at=T0,
    )
    write_decisions(store, [d])
    (back,) = read_decisions(store).decisions
    assert back == d


def test_reranker_ranking_round_trip(store: Store):
    d = Decision(
        policy="rr",
        policy_version="1",
        kind="reranker",
        actions=("c1", "c2", "c3"),
        action="c2",
        action_dist=(0.2, 0.5, 0.3),
        pscore=0.5,
        ranking=("c2", "c3", "c1"),
        candidates=("answer one", "answer two", "answer three"),
        created_at=T0,
    )
    write_decisions(store, [d])
    assert read_decisions(store).decisions[0].ranking == ("c2", "c3", "c1")


def test_feedback_of_every_kind_round_trips(store: Store):
    write_decisions(store, [make_decision(1)])
    rows = [
        Feedback(decision_id="d1", kind="rating", value=4, scale=(1, 5), rater_id="ann", authority=0.9),
        Feedback(decision_id="d1", kind="correction", label="off", rater_id="bob", source="golden"),
        Feedback(decision_id="d1", kind="preference", preferred="on", rejected="off", source="judge"),
        Feedback(
            decision_id="d1",
            kind="multilevel",
            scores={"retrieval": 0.8, "reasoning": 0.6},
            value=0.7,
            scale=(0, 1),
            rater_id="expert",
            authority=1.0,
        ),
        Feedback(decision_id="d1", kind="implicit", value=1, source="implicit", comment="clicked"),
    ]
    for i, f in enumerate(rows):
        object.__setattr__(f, "created_at", T0 + timedelta(seconds=i))
    assert write_feedback(store, rows).written == 5
    back = read_feedback(store, policy="intent")
    assert back == rows
    batch = read_decisions(store, include_feedback=True)
    assert batch.feedback["d1"] == rows


def test_rewards_and_training_runs_round_trip(store: Store):
    write_decisions(store, [make_decision(1), make_decision(2)])
    r = Reward(
        decision_id="d1",
        spec="thumbs",
        spec_version=1,
        value=0.75,
        components={"accuracy": 1.0, "calibration": 0.5},
        feedback_ids=("f1", "f2"),
        disagreement=0.1,
        created_at=T0,
    )
    write_rewards(store, [r])
    assert read_rewards(store, "thumbs", 1) == [r]
    # Same decision, spec and version: replaced, not duplicated.
    r2 = Reward(decision_id="d1", spec="thumbs", spec_version=1, value=0.25, created_at=T0)
    write_rewards(store, [r2])
    assert read_rewards(store, "thumbs", 1) == [r2]
    batch = read_decisions(store, reward_spec=("thumbs", 1))
    assert batch.reward_array().tolist()[0] == 0.25 and math.isnan(batch.reward_array()[1])
    assert [d.id for d in batch.with_rewards()] == ["d1"]

    run = start_run(store, TrainingRun(policy="intent", learner="ppo", config={"lr": 0.01}, n_samples=2))
    assert get_run(store, run.id).status == "running"
    done = finish_run(store, run, {"golden_acc": 0.9}, artifact_path="/tmp/a")
    (back,) = read_runs(store, policy="intent")
    assert back.status == "succeeded" and back.metrics == {"golden_acc": 0.9} and back.id == done.id


def test_a_batch_with_one_bad_row_writes_nothing(store: Store):
    write_decisions(store, [make_decision(0)])
    batch = [_as_dict(make_decision(i)) for i in range(1, 6)]
    batch[3]["pscore"] = 0.5  # not the chosen action's probability
    with pytest.raises(BatchError) as err:
        write_decisions(store, batch)
    assert [(e.row, e.field) for e in err.value.errors] == [(3, "pscore")]
    assert "row 3: pscore" in str(err.value)
    assert read_decisions(store).ids == ["d0"]


def test_skip_invalid_writes_the_good_rows_and_reports_the_bad(store: Store):
    batch = [_as_dict(make_decision(i)) for i in range(4)]
    batch[1]["action"] = "toggle"
    batch[2]["action_dist"] = [0.9, 0.2]
    report = write_decisions(store, batch, skip_invalid=True)
    assert report.written == 2
    assert [(e.row, e.field) for e in report.invalid] == [(1, "action"), (2, "action_dist")]
    assert read_decisions(store).ids == ["d0", "d3"]


def test_feedback_must_reference_a_stored_decision(store: Store):
    write_decisions(store, [make_decision(1)])
    rows = [
        Feedback(decision_id="d1", kind="implicit", value=1),
        Feedback(decision_id="ghost", kind="implicit", value=0),
        {"decision_id": "d1", "kind": "rating", "value": 9, "scale": [1, 5]},
    ]
    with pytest.raises(BatchError) as err:
        write_feedback(store, rows)
    assert [(e.row, e.field) for e in err.value.errors] == [(1, "decision_id"), (2, "value")]
    assert "no decision 'ghost' in the store" in str(err.value)
    assert read_feedback(store) == []
    report = write_feedback(store, rows, skip_invalid=True)
    assert report.written == 1 and [e.row for e in report.invalid] == [1, 2]


def test_idempotency_key_and_id_do_not_duplicate(store: Store):
    first = make_decision(1, idempotency_key="req-1")
    assert log_decision(store, first) == "d1"
    resent = make_decision(1, id="d99", idempotency_key="req-1")  # a retry: new id, same key and body
    assert log_decision(store, resent) == "d1"
    report = write_decisions(store, [make_decision(1), make_decision(2)])
    assert (report.written, report.duplicates) == (1, 1)
    assert read_decisions(store).ids == ["d1", "d2"]
    f = Feedback(decision_id="d1", kind="implicit", value=1, id="f1")
    assert write_feedback(store, [f]).written == 1
    assert write_feedback(store, [f]).duplicates == 1


def test_bulk_write_of_many_rows(store: Store):
    # Large enough to take PostgreSQL's COPY path.
    report = write_decisions(store, [make_decision(i, idempotency_key=f"k{i}") for i in range(500)])
    assert report.written == 500
    again = write_decisions(
        store, [make_decision(i, id=f"d{i + 1000}", idempotency_key=f"k{i}") for i in range(450, 550)]
    )
    assert (again.written, again.duplicates) == (50, 50)
    assert len(read_decisions(store)) == 550


def test_read_filters(store: Store):
    rows = [
        make_decision(1),
        make_decision(2, policy_version="2"),
        make_decision(3, experiment="e1", variant="challenger", variant_share=0.5),
        make_decision(4, policy="router", kind="router"),
    ]
    write_decisions(store, rows)
    write_feedback(store, [Feedback(decision_id="d2", kind="implicit", value=1)])
    assert read_decisions(store, policy="intent").ids == ["d1", "d2", "d3"]
    assert read_decisions(store, version="2").ids == ["d2"]
    assert read_decisions(store, experiment="e1", variant="challenger").ids == ["d3"]
    assert read_decisions(store, kind="router").ids == ["d4"]
    assert read_decisions(store, with_feedback=True).ids == ["d2"]
    assert read_decisions(store, with_feedback=False).ids == ["d1", "d3", "d4"]
    window = read_decisions(store, since=T0 + timedelta(minutes=2), until=T0 + timedelta(minutes=4))
    assert window.ids == ["d2", "d3"]
    # A naive time is UTC; another zone is converted.
    plus_one = datetime(2026, 11, 1, 13, 2, tzinfo=__import__("zoneinfo").ZoneInfo("Europe/Paris"))
    assert read_decisions(store, since=plus_one).ids == ["d2", "d3", "d4"]
    assert read_decisions(store, limit=2).ids == ["d1", "d2"]
    assert read_decisions(store, ids=["d4", "d1"]).ids == ["d1", "d4"]


def test_stats_hand_computed(store: Store):
    # Two actions, pscores 0.5, 0.5, 1.0 (one deterministic): w = (1/2)/p = 1, 1, 0.5.
    rows = [
        make_decision(1, action_dist=(0.5, 0.5), pscore=0.5),
        make_decision(2, action_dist=(0.5, 0.5), pscore=0.5),
        make_decision(3, action_dist=(1.0, 0.0), pscore=1.0),
        make_decision(4, policy_version="2"),
    ]
    write_decisions(store, rows)
    write_feedback(
        store,
        [
            Feedback(decision_id="d1", kind="implicit", value=1),
            Feedback(decision_id="d1", kind="correction", label="off", source="golden"),
        ],
    )
    s = store_stats(store)
    v1 = s.groups[0]
    assert (v1.policy, v1.version, v1.decisions, v1.with_feedback) == ("intent", "1", 3, 1)
    assert v1.deterministic_share == pytest.approx(1 / 3)
    assert v1.ess == pytest.approx((1 + 1 + 0.5) ** 2 / (1 + 1 + 0.25))  # 2.777...
    assert s.feedback_by_kind == {"implicit": 1, "correction": 1}
    assert s.feedback_by_source == {"human": 1, "golden": 1}
    assert s.coverage == pytest.approx(1 / 4)


def test_migrations_upgrade_an_empty_database_to_head(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    assert current_revision(engine) is None
    upgrade(engine)
    assert current_revision(engine) == head_revision()
    tables = set(inspect(engine).get_table_names())
    assert {
        "decisions",
        "feedback",
        "rewards",
        "policy_versions",
        "aliases",
        "alias_events",
        "training_runs",
        "experiments",
        "review_items",
        "api_keys",
    } <= tables


def test_migrations_on_postgres_schema(pg_store: Store):
    assert current_revision(pg_store.engine) == head_revision()


def test_opening_an_unmigrated_store_without_migrate_is_refused(tmp_path):
    with pytest.raises(StoreError, match="run `rewardloop init` to migrate it"):
        Store.open(f"sqlite:///{tmp_path / 'new.db'}", migrate=False)


def _as_dict(d: Decision) -> dict:
    from rewardloop.types import record_to_dict

    return record_to_dict(d)
