"""Issue 13, item 18: the dashboard's numbers, on a hand-made store where the old formula is wrong.

20 classifier decisions: 16 confident and right (d00–d15), 4 unsure and wrong (d16–d19); the true
accuracy is 16/20 = 0.8. The review queue sends the 4 unsure ones for correction; the hashed audit
sample (rate 0.5, salt "c") draws d01 d02 d03 d04 d07 d08 d11 d15 d16 d18: 8 right, 2 wrong. Every
drawn decision is corrected too. The old headline (accuracy over corrected decisions) is then 8/12 =
0.667; the audit estimate is 8/10 = 0.8 with Wilson 95% interval [0.490, 0.943].
"""

from __future__ import annotations

import pytest

from rewardloop.loop.review import ReviewPolicy
from rewardloop.service import panels
from rewardloop.store import write_decisions, write_feedback
from rewardloop.store.experiments import VariantOutcome
from rewardloop.types import Decision, DecisionBatch, Feedback

from .conftest import Api

AUDIT = ReviewPolicy(audit_rate=0.5, audit_salt="c")
DRAWN = {"d01", "d02", "d03", "d04", "d07", "d08", "d11", "d15", "d16", "d18"}


def _store_like() -> DecisionBatch:
    decisions, feedback = [], {}
    for i in range(20):
        right = i < 16
        d = Decision(
            id=f"d{i:02d}", policy="news", policy_version="1", kind="classifier", actions=("a", "b"),
            action="a", action_dist=(0.9, 0.1) if right else (0.6, 0.4), pscore=0.9 if right else 0.6,
            confidence=0.9 if right else 0.6, text=f"t{i}", metadata={"project": "acme"},
        )  # fmt: skip
        decisions.append(d)
        if not right or d.id in DRAWN:
            feedback[d.id] = [Feedback(decision_id=d.id, kind="correction", label="a" if right else "b")]
    return DecisionBatch(decisions, feedback)


def test_the_audit_sample_is_the_headline_not_the_corrections() -> None:
    batch = _store_like()
    assert {d.id for d in batch.decisions if AUDIT.audit_draw(d.id) < 0.5} == DRAWN
    assert panels.accuracy(batch)["overall"] == pytest.approx(8 / 12)  # the old, biased number
    est = panels.accuracy_estimates(batch, AUDIT)
    head = est["headline"]
    assert head["source"] == "audit"
    assert (head["rate"]["value"], head["rate"]["n"]) == (0.8, 10)
    assert (round(head["rate"]["low"], 3), round(head["rate"]["high"], 3)) == (0.49, 0.943)
    assert "hashed audit sample: 10 corrected of the 10 decisions drawn" in head["what"]
    biased = est["estimates"][-1]
    assert biased["source"] == "corrections" and biased["biased"] and biased["rate"]["n"] == 12


def test_the_reward_spec_over_all_rewarded_decisions() -> None:
    batch = _store_like()
    rewards = {("judge", 1): {f"d{i:02d}": 0.0 for i in range(16, 20)}, ("judge", 2): {}}
    rewards[("judge", 2)] = {f"d{i:02d}": (1.0 if i < 16 else 0.0) for i in range(20)}
    est = panels.accuracy_estimates(batch, None, rewards, spec=None, success_at=0.5)
    head = est["headline"]
    assert head["source"] == "reward" and "judge v2" in head["what"]  # the newest version
    assert (head["rate"]["value"], head["rate"]["n"]) == (0.8, 20)
    # Several specs and none named: no reward estimate (which one would it be?).
    two = {("judge", 1): {"d00": 1.0}, ("clicks", 1): {"d00": 1.0}}
    assert panels.accuracy_estimates(batch, None, two)["headline"] is None
    assert panels.accuracy_estimates(batch, None, two, spec="clicks")["headline"]["rate"]["n"] == 1


def test_exploration_picks_are_left_out_of_misclassifications() -> None:
    explored = Decision(
        id="x1", policy="news", policy_version="1", kind="classifier", actions=("a", "b"), action="b",
        action_dist=(0.95, 0.05), pscore=0.05, confidence=0.05, metadata={"project": "acme"},
    )  # fmt: skip
    batch = DecisionBatch([explored], {"x1": [Feedback(decision_id="x1", kind="correction", label="a")]})
    assert panels.explored(explored) and panels.misclassifications(batch) == []
    (row,) = panels.misclassifications(batch, include_exploration=True)
    assert row["explored"] is True


def test_the_ab_panel_shows_the_experiments_own_statistic() -> None:
    outcomes = {
        "champion": VariantOutcome("champion", 1000, 800, 635, 635.0, 0, 0.0, 0.0),
        "challenger": VariantOutcome("challenger", 1000, 800, 710, 710.0, 0, 0.0, 0.0),
    }
    verdict = {
        "last": {"action": "promote", "sequential": {"p_value": 0.0012, "effect": 0.09375}, "reasons": ["ok"]}
    }
    row = panels.experiment_panel(
        "ab", "running", {"champion": "1.0.0", "challenger": "1.0.1"}, outcomes, verdict, 0.5
    )
    champion, challenger = row["variants"]
    assert (champion["success"]["value"], champion["success"]["n"]) == (635 / 800, 800)
    assert (challenger["success"]["value"], challenger["rewarded"]) == (710 / 800, 800)
    assert (row["verdict"], row["p_always_valid"], row["effect"]) == ("promote", 0.0012, 0.09375)


def test_the_overview_page_shows_the_unbiased_headline(api: Api) -> None:
    batch = _store_like()
    write_decisions(api.store, batch.decisions)
    write_feedback(api.store, [f for rows in batch.feedback.values() for f in rows])
    api.client.app.state.rl.review = AUDIT
    api.client.cookies.set("rl_key", api.keys["admin"])
    page = api.client.get("/").text
    assert '<div class="v" id="accuracy">80.0%</div>' in page
    assert "[49.0%, 94.3%] 95% CI, n=10" in page
    assert "66.7%" in page and "(biased)" in page  # the corrections-only figure, labelled


def test_docstring_examples() -> None:
    import doctest

    from rewardloop.evaluation import intervals
    from rewardloop.service import dashboard

    for module in (intervals, panels, dashboard):
        result = doctest.testmod(module)
        assert result.attempted > 0 and result.failed == 0, module.__name__
