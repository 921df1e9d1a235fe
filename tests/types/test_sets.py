"""Set-valued decisions and set feedback: propensities, validation with errors naming the field."""

from __future__ import annotations

import math

import pytest

from rewardloop.types import (
    OTHER_SETS,
    Decision,
    Feedback,
    RecordError,
    decision_from_dict,
    feedback_from_dict,
    record_to_dict,
    set_decision_fields,
    set_pscore,
)

SPACE = ("pay_invoice", "set_payment_reminder", "archive")


def set_decision(chosen=("pay_invoice",), probs=(0.9, 0.4, 0.2), **kw) -> Decision:
    return Decision(
        policy="email", policy_version="1", kind="set", **set_decision_fields(SPACE, chosen, probs), **kw
    )


def test_the_logged_sets_propensity_is_the_product_of_p_and_one_minus_p():
    d = set_decision(("archive", "pay_invoice"))
    # chosen: pay_invoice 0.9, archive 0.2; left out: set_payment_reminder 1 - 0.4
    assert d.set_pscore == pytest.approx(0.9 * 0.6 * 0.2)
    assert d.pscore == pytest.approx(0.108)
    assert d.chosen_set == ("pay_invoice", "archive")  # label-space order
    assert d.action == "{pay_invoice,archive}"
    assert d.actions == ("{pay_invoice,archive}", OTHER_SETS)
    assert d.action_dist == pytest.approx((0.108, 0.892))


def test_the_empty_set_and_a_certain_set():
    assert set_pscore(SPACE, (), (0.5, 0.5, 0.5)) == pytest.approx(0.125)
    d = set_decision(("pay_invoice",), (1.0, 0.0, 0.0))
    assert (d.pscore, d.actions, d.action_dist) == (1.0, ("{pay_invoice}",), (1.0,))


def test_a_huge_label_space_does_not_underflow_to_zero():
    space = [f"l{i}" for i in range(2000)]
    assert set_pscore(space, [], [0.9] * 2000) > 0.0
    assert math.isclose(set_pscore(space[:3], [], [0.9] * 3), 0.1**3)


def test_a_classifier_decision_carries_a_set_beside_its_label():
    d = Decision(
        policy="email",
        policy_version="1",
        kind="classifier",
        actions=("invoice", "spam"),
        action="invoice",
        action_dist=(0.7, 0.3),
        pscore=0.7,
        label_space=SPACE,
        chosen_set=("set_payment_reminder",),
        label_probs=(0.5, 0.8, 0.1),
    )
    assert d.pscore == 0.7
    assert d.set_pscore == pytest.approx(0.5 * 0.8 * 0.9)
    assert Decision(policy="p", policy_version="1", kind="classifier", actions=("a",), action="a",
                    action_dist=(1.0,), pscore=1.0).set_pscore is None  # fmt: skip


BAD_SETS = [
    (dict(label_space=None, label_probs=None), "label_space", "together"),
    (dict(chosen_set=("refund",)), "chosen_set", "'refund' is not in the label space"),
    (dict(chosen_set=("archive", "archive")), "chosen_set", "must not repeat"),
    (dict(label_space=("a", "a")), "label_space", "must not repeat"),
    (dict(label_space=()), "label_space", "at least one label"),
    (dict(label_probs=(0.5, 1.5, 0.1)), "label_probs", r"in \[0, 1\], got 1.5"),
    (dict(label_probs=(0.5, float("nan"), 0.1)), "label_probs", r"in \[0, 1\], got nan"),
    (dict(label_probs=(0.5, 0.5)), "label_probs", "2 probabilities for 3 labels"),
    (dict(label_probs=(0.0, 0.5, 0.1)), "label_probs", "'pay_invoice' was chosen with probability 0"),
    (
        dict(label_probs=(0.5, 1.0, 0.1)),
        "label_probs",
        "'set_payment_reminder' was left out with probability 1",
    ),
]


@pytest.mark.parametrize(("change", "field", "message"), BAD_SETS)
def test_a_bad_set_is_refused_naming_the_field(change, field, message):
    fields = dict(label_space=SPACE, chosen_set=("pay_invoice",), label_probs=(0.5, 0.5, 0.1))
    fields.update(change)
    with pytest.raises(RecordError, match=message) as err:
        Decision(policy="p", policy_version="1", kind="classifier", actions=("a",), action="a",
                 action_dist=(1.0,), pscore=1.0, **fields)  # fmt: skip
    assert err.value.field == field


def test_a_set_decision_needs_its_set_and_its_joint_action():
    with pytest.raises(RecordError, match="a set decision needs label_space"):
        Decision(policy="p", policy_version="1", kind="set", actions=("{}",), action="{}",
                 action_dist=(1.0,), pscore=1.0)  # fmt: skip
    fields = set_decision_fields(SPACE, ("archive",), (0.5, 0.5, 0.5))
    with pytest.raises(RecordError, match="is not the logged set's propensity"):
        Decision(
            policy="p", policy_version="1", kind="set", **{**fields, "action_dist": (0.5, 0.5), "pscore": 0.5}
        )
    with pytest.raises(RecordError, match=r"its set's key '\{archive\}'"):
        Decision(policy="p", policy_version="1", kind="set",
                 **{**fields, "actions": ("{x}", OTHER_SETS), "action": "{x}"})  # fmt: skip


def test_set_feedback_kinds_carry_labels():
    missed = Feedback(decision_id="d", kind="missed_actions", labels=["archive"], rater_id="ann")
    assert missed.labels == ("archive",)
    assert Feedback(decision_id="d", kind="set_correction", labels=[]).labels == ()
    for kind, labels, message in [
        ("missed_actions", None, "is required for missed_actions"),
        ("unnecessary_actions", [], "must name at least one label"),
        ("missed_actions", ["a", "a"], "must not repeat"),
        ("rating", ["a"], "only missed_actions, unnecessary_actions, set_correction feedback"),
    ]:
        with pytest.raises(RecordError, match=message) as err:
            Feedback(decision_id="d", kind=kind, labels=labels, value=1, scale=(0, 1))
        assert err.value.field == "labels"


def test_set_records_round_trip_through_dicts():
    d = set_decision(("archive",), (0.3, 0.3, 0.6))
    assert decision_from_dict(record_to_dict(d)) == d
    f = Feedback(decision_id=d.id, kind="unnecessary_actions", labels=("archive",))
    assert feedback_from_dict(record_to_dict(f)) == f
