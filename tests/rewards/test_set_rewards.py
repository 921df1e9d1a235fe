"""Set rewards and the email plan's weighted reward, on hand-computed cases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import yaml

from rewardloop.config import ConfigError, parse_config
from rewardloop.loop.compile import compile_rewards
from rewardloop.rewards import RewardError, RewardSpec, compile_feedback
from rewardloop.rewards.sets import Penalties, held_right, jaccard, set_f1, set_penalty
from rewardloop.store import Store, read_rewards, write_decisions, write_feedback
from rewardloop.types import Decision, Feedback

SPACE = ("pay_invoice", "set_payment_reminder", "archive")
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def email(did: str = "e1", chosen=("pay_invoice", "archive"), confidence: float = 0.8) -> Decision:
    """Category + actions: the label ``invoice`` and a set of suggested actions, in one decision."""
    return Decision(
        id=did,
        policy="email",
        policy_version="1",
        kind="classifier",
        actions=("invoice", "other"),
        action="invoice",
        action_dist=(0.8, 0.2),
        pscore=0.8,
        confidence=confidence,
        label_space=SPACE,
        chosen_set=chosen,
        label_probs=(0.9, 0.3, 0.6),
    )


def fb(i: int, kind: str, did: str = "e1", **kw) -> Feedback:
    return Feedback(id=f"f{i}", decision_id=did, kind=kind, created_at=T0 + timedelta(seconds=i), **kw)


def test_set_functions_on_hand_computed_sets():
    assert jaccard(["a", "b"], ["b", "c"]) == pytest.approx(1 / 3)
    assert set_f1(["a", "b"], ["b", "c"]) == pytest.approx(0.5)
    assert jaccard([], []) == set_f1([], []) == 1.0
    assert jaccard(["a"], []) == set_f1(["a"], []) == 0.0
    assert set_penalty(["a", "b"], ["b", "c", "d"], Penalties()) == pytest.approx(-(0.5 + 0.5 + 0.3))
    per_action = Penalties.from_options(
        {"unnecessary_penalty": 0.1, "action_penalties": {"c": {"missed": 2}}}
    )
    assert set_penalty(["a", "b"], ["b", "c", "d"], per_action) == pytest.approx(-(2.0 + 0.5 + 0.1))


def test_a_raters_set_rows_fold_into_one_set_oldest_first():
    rows = [
        fb(1, "missed_actions", labels=("set_payment_reminder",)),
        fb(2, "unnecessary_actions", labels=("archive",)),
    ]
    assert held_right(("pay_invoice", "archive"), rows) == ("pay_invoice", "set_payment_reminder")
    later = [
        *rows,
        fb(3, "set_correction", labels=("archive",)),
        fb(4, "missed_actions", labels=("pay_invoice",)),
    ]
    assert held_right(("pay_invoice", "archive"), later) == ("archive", "pay_invoice")


def test_jaccard_and_f1_rewards_combine_raters_by_authority():
    rows = [
        # rater a (authority 1): archive unnecessary -> T = {pay_invoice}: J = 1/2, F1 = 2/3
        fb(1, "unnecessary_actions", labels=("archive",), rater_id="a"),
        # rater b (authority 0.5): reminder missed -> T = all three: J = 2/3, F1 = 4/5
        fb(2, "missed_actions", labels=("set_payment_reminder",), rater_id="b", authority=0.5),
    ]
    j = compile_feedback([email()], {"e1": rows}, RewardSpec("j", function="set_jaccard")).rewards[0]
    assert j.value == pytest.approx((1 * 0.5 + 0.5 * 2 / 3) / 1.5)
    assert j.components == {"set_jaccard": pytest.approx(0.5555556)}
    assert j.feedback_ids == ("f1", "f2")
    f1 = compile_feedback(
        [email()], {"e1": rows}, RewardSpec("f", function="set_f1", scale="signed")
    ).rewards[0]
    assert f1.value == pytest.approx(2 * (1 * 2 / 3 + 0.5 * 0.8) / 1.5 - 1)


def test_set_penalty_reward_with_per_action_penalties():
    spec = RewardSpec(
        "pen",
        function="set_penalty",
        scale="raw",
        options={"action_penalties": {"pay_invoice": {"missed": 2.0}}},
    )
    d = email(chosen=("archive",))
    rows = [fb(1, "missed_actions", labels=("pay_invoice",), rater_id="a"),
            fb(2, "unnecessary_actions", labels=("archive",), rater_id="a")]  # fmt: skip
    (r,) = compile_feedback([d], {"e1": rows}, spec).rewards
    assert r.value == pytest.approx(-2.3)  # -2.0 (pay_invoice missed) - 0.3 (archive unnecessary)
    no_set = compile_feedback([d], {"e1": [fb(3, "rating", value=1, scale=(0, 1))]}, spec)
    assert no_set.skipped == {"no set_penalty signal (from feedback with authority > 0)": 1}


PLAN_YAML = """
rewards:
  - name: email_plan
    function: weighted
    scale: raw                   # each component on its own range
    weights:
      classification: 0.4        # +1 right, -1 wrong (corrections of the category)
      set_penalty: 0.3           # -0.5 per missed action, -0.3 per unnecessary one
      calibration: 0.2           # 1 - |confidence - correct|
      implicit: 0.1              # engagement: the user acted
    options: {missed_penalty: 0.5, unnecessary_penalty: 0.3}
"""


def plan_spec() -> RewardSpec:
    cfg = parse_config(yaml.safe_load(PLAN_YAML))
    return RewardSpec.from_config(cfg.reward_spec("email_plan"))


def plan_rows(did: str, right: bool) -> list[Feedback]:
    if right:  # category right; reminder missed, archive unnecessary; the user acted
        return [
            fb(1, "correction", did, label="invoice", rater_id="ann"),
            fb(2, "missed_actions", did, labels=("set_payment_reminder",), rater_id="ann"),
            fb(3, "unnecessary_actions", did, labels=("archive",), rater_id="ann"),
            fb(4, "implicit", did, value=1, rater_id="user"),
        ]
    return [  # category wrong; no action was needed; the user did not act
        fb(5, "correction", did, label="other", rater_id="ann"),
        fb(6, "set_correction", did, labels=(), rater_id="ann"),
        fb(7, "implicit", did, value=0, rater_id="user"),
    ]


def test_the_email_plans_weighted_reward_from_the_yaml():
    spec = plan_spec()
    right, wrong = email("e1"), email("e2")
    result = compile_feedback(
        [right, wrong], {"e1": plan_rows("e1", True), "e2": plan_rows("e2", False)}, spec
    )
    r1, r2 = result.rewards
    # 0.4·(+1) + 0.3·(−0.5 − 0.3) + 0.2·(1 − |0.8 − 1|) + 0.1·1
    assert r1.value == pytest.approx(0.4 - 0.24 + 0.16 + 0.1)
    assert r1.components == pytest.approx(
        {"classification": 1.0, "set_penalty": -0.8, "calibration": 0.8, "implicit": 1.0}
    )
    # 0.4·(−1) + 0.3·(−0.3 − 0.3) + 0.2·(1 − |0.8 − 0|) + 0.1·0
    assert r2.value == pytest.approx(-0.4 - 0.18 + 0.04)
    assert r1.feedback_ids == ("f1", "f4", "f2", "f3")


def test_the_plan_compiles_in_the_store(store: Store):
    write_decisions(store, [email("e1"), email("e2")])
    write_feedback(store, plan_rows("e1", True) + plan_rows("e2", False))
    report = compile_rewards(store, plan_spec())
    assert report.written == 2
    values = {r.decision_id: r.value for r in read_rewards(store, "email_plan", 1)}
    assert values == pytest.approx({"e1": 0.42, "e2": -0.54})


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"function": "set_penalty"}, "scale: a set_penalty reward is a sum of penalties"),
        ({"function": "weighted", "weights": {"set_penalty": 1.0}}, "use scale: raw"),
        ({"function": "set_penalty", "scale": "raw", "options": {"missed_penalty": -1}},
         r"options.missed_penalty: must be a number >= 0, got -1"),
        ({"function": "set_penalty", "scale": "raw", "options": {"action_penalties": {"a": {"late": 1}}}},
         r"options.action_penalties.a: must be \{missed: x, unnecessary: y\}"),
    ],
)  # fmt: skip
def test_bad_set_specs_name_the_key(fields, message):
    with pytest.raises(RewardError, match=message):
        RewardSpec("x", **fields)
    with pytest.raises(ConfigError, match=message):
        parse_config({"rewards": [{"name": "x", **fields}]})
