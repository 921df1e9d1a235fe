"""Set decisions and set feedback in the store (SQLite and PostgreSQL), in files, and refused when
their labels do not fit the decision's set."""

from __future__ import annotations

import pytest

from rewardloop.store import BatchError, Store, read_decisions, write_decisions, write_feedback
from rewardloop.store.files import read_rows, write_rows
from rewardloop.store.imports import import_rows
from rewardloop.types import Decision, Feedback, decision_from_dict, record_to_dict, set_decision_fields

SPACE = ("area", "name", "brightness")


def set_decision(i: int, chosen=("area",), probs=(0.8, 0.3, 0.2)) -> Decision:
    return Decision(
        id=f"s{i}",
        policy="slots",
        policy_version="1",
        kind="set",
        text=f"turn on the kitchen light {i}",
        **set_decision_fields(SPACE, chosen, probs),
    )


def composed(i: int) -> Decision:
    """Category + actions in one decision: a classifier label with a set beside it."""
    return Decision(
        id=f"c{i}",
        policy="email",
        policy_version="1",
        kind="classifier",
        actions=("invoice", "other"),
        action="invoice",
        action_dist=(0.9, 0.1),
        pscore=0.9,
        label_space=("pay_invoice", "set_payment_reminder"),
        chosen_set=("pay_invoice",),
        label_probs=(0.7, 0.2),
    )


def test_sets_and_set_feedback_round_trip_through_the_store(store: Store):
    decisions = [set_decision(0), set_decision(1, (), (0.1, 0.1, 0.1)), composed(0)]
    write_decisions(store, decisions)
    feedback = [
        Feedback(id="f1", decision_id="s0", kind="missed_actions", labels=("name",), rater_id="ann"),
        Feedback(id="f2", decision_id="s0", kind="unnecessary_actions", labels=("area",), rater_id="ann"),
        Feedback(id="f3", decision_id="s1", kind="set_correction", labels=(), rater_id="bob"),
        Feedback(id="f4", decision_id="c0", kind="correction", label="invoice", rater_id="bob"),
    ]
    write_feedback(store, feedback)
    batch = read_decisions(store, include_feedback=True)
    assert sorted(batch.decisions, key=lambda d: d.id) == sorted(decisions, key=lambda d: d.id)
    assert {f.id: f.labels for fs in batch.feedback.values() for f in fs} == {
        "f1": ("name",),
        "f2": ("area",),
        "f3": (),
        "f4": None,
    }


BAD_FEEDBACK = [
    ("missed_actions", ("volume",), "'volume' is not in the decision's label space"),
    ("missed_actions", ("area",), "'area' was in the chosen set; it cannot have been missed"),
    ("unnecessary_actions", ("name",), "'name' was not in the chosen set; it cannot be unnecessary"),
    ("set_correction", ("area", "color"), "'color' is not in the decision's label space"),
]


@pytest.mark.parametrize(("kind", "labels", "message"), BAD_FEEDBACK)
def test_set_feedback_that_does_not_fit_the_decision_is_refused_whole(store: Store, kind, labels, message):
    write_decisions(store, [set_decision(0)])
    good = Feedback(decision_id="s0", kind="missed_actions", labels=("name",))
    with pytest.raises(BatchError, match=message) as err:
        write_feedback(store, [good, Feedback(decision_id="s0", kind=kind, labels=labels)])
    assert (err.value.errors[0].field, err.value.errors[0].row) == ("labels", 1)
    assert read_decisions(store, include_feedback=True).feedback == {}  # all or nothing


def test_set_feedback_on_a_decision_without_a_set_is_refused(store: Store):
    d = Decision(id="plain", policy="p", policy_version="1", kind="classifier", actions=("a", "b"),
                 action="a", action_dist=(0.5, 0.5), pscore=0.5)  # fmt: skip
    write_decisions(store, [d])
    with pytest.raises(BatchError, match="the decision carries no set"):
        write_feedback(store, [Feedback(decision_id="plain", kind="missed_actions", labels=("a",))])


@pytest.mark.parametrize("suffix", ["jsonl", "csv", "parquet"])
def test_set_decisions_survive_every_file_format_and_import(tmp_path, sqlite_store: Store, suffix):
    decisions = [set_decision(0), composed(1)]
    path = tmp_path / f"d.{suffix}"
    write_rows([record_to_dict(d) for d in decisions], path)
    assert [decision_from_dict(r) for r in read_rows(path)] == decisions
    report = import_rows(sqlite_store, "decisions", read_rows(path))
    assert report.written == 2
    stored = {d.id: d for d in read_decisions(sqlite_store)}
    assert stored["s0"].chosen_set == ("area",) and stored["c1"].set_pscore == pytest.approx(0.7 * 0.8)


def test_migration_0004_keeps_earlier_decisions_and_adds_the_set_columns(tmp_path):
    from sqlalchemy import create_engine, inspect, text

    from rewardloop.store import current_revision, upgrade

    engine = create_engine(f"sqlite:///{tmp_path / 'old.db'}")
    upgrade(engine, "0003_registry_project")
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO decisions (id, policy, policy_version, kind, actions, action, action_dist, "
                "pscore, confidence, created_at) VALUES ('old', 'p', '1', 'classifier', '[\"a\"]', 'a', "
                "'[1.0]', 1.0, 1.0, '2026-01-01 00:00:00.000000')"
            )
        )
    upgrade(engine, "0004_action_sets")
    assert current_revision(engine) == "0004_action_sets"
    assert "action_set" in {c["name"] for c in inspect(engine).get_columns("decisions")}
    assert "labels" in {c["name"] for c in inspect(engine).get_columns("feedback")}
    engine.dispose()
    store = Store.open(f"sqlite:///{tmp_path / 'old.db'}")
    (old,) = read_decisions(store)
    assert (old.id, old.label_space, old.set_pscore) == ("old", None, None)
    store.close()
