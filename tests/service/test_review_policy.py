"""The review-queue policy (loop/review.py) and its persistence (store/review.py)."""

from __future__ import annotations

import pytest

from rewardloop.config import ReviewConfig
from rewardloop.loop.review import ReviewPolicy
from rewardloop.store import Store, log_decision
from rewardloop.store.review import (
    ReviewError,
    claim_review_item,
    enqueue_review,
    read_review_queue,
    resolve_review_item,
    review_counts,
)
from rewardloop.types import Decision, ReviewItem


def decision(conf: float, project: str = "acme", **kw: object) -> Decision:
    return Decision(
        policy="intent", policy_version="1", kind="classifier", actions=("a", "b"), action="a",
        action_dist=(conf, 1 - conf), pscore=conf, metadata={"project": project}, **kw,  # type: ignore[arg-type]
    )  # fmt: skip


# confidence, shadow action, audit_rate → reason, priority (weight + 1 - confidence)
CASES = [
    (0.60, None, 0.0, "low_confidence", 1.4),
    (0.70, None, 0.0, None, None),  # not strictly below the threshold
    (0.95, "b", 0.0, "disagreement", 2.05),
    (0.60, "b", 0.0, "disagreement", 2.4),  # disagreement wins over low confidence
    (0.95, "a", 0.0, None, None),  # the shadow agreed
    (0.95, None, 1.0, "audit", 0.05),  # an audit rate of 1 samples everything else
]


@pytest.mark.parametrize("conf,shadow,audit,reason,priority", CASES)
def test_reason_and_priority(
    conf: float, shadow: str | None, audit: float, reason: str | None, priority: float | None
) -> None:
    item = ReviewPolicy(confidence_below=0.7, audit_rate=audit).assess(decision(conf), shadow)
    if reason is None:
        assert item is None
    else:
        assert item is not None and item.reason == reason
        assert item.priority == pytest.approx(priority)


def test_disagreement_can_be_switched_off() -> None:
    assert ReviewPolicy(disagreement=False).reason(decision(0.95), "b") is None


def test_audit_sample_is_deterministic_and_near_its_rate() -> None:
    policy = ReviewPolicy(confidence_below=0.0, audit_rate=0.1, audit_salt="s1")
    ids = [f"d{i}" for i in range(20_000)]
    chosen = [i for i in ids if policy.reason(decision(0.9, id=i)) == "audit"]
    again = [i for i in ids if ReviewPolicy(0.0, 0.1, "s1").reason(decision(0.9, id=i)) == "audit"]
    assert chosen == again
    # Binomial(20000, 0.1): sd = 42.4; allow 4 sd.
    assert abs(len(chosen) - 2000) < 170
    other = {i for i in ids if ReviewPolicy(0.0, 0.1, "s2").reason(decision(0.9, id=i)) == "audit"}
    assert len(other & set(chosen)) < 400  # a fresh salt draws a fresh sample (expected overlap 200)


def test_from_config() -> None:
    cfg = ReviewConfig(confidence_below=0.5, audit_rate=0.2, audit_salt="x", disagreement=False)
    assert ReviewPolicy.from_config(cfg) == ReviewPolicy(0.5, 0.2, "x", False)
    cfg = ReviewConfig(overlap_rate=0.25)
    assert ReviewPolicy.from_config(cfg).overlap_rate == 0.25


def test_enqueue_deduplicates_and_orders_by_priority(store: Store) -> None:
    policy = ReviewPolicy(confidence_below=0.7)
    low, lower, sure = decision(0.65), decision(0.55), decision(0.9)
    for d in (low, lower, sure):
        log_decision(store, d)
    assert policy.enqueue(store, [(low, None), (lower, None), (sure, None)]) == 2
    assert policy.enqueue(store, [(low, None), (lower, "b")]) == 0  # already queued: not again
    queue = read_review_queue(store, "acme")
    assert [(e.decision.id, e.item.reason) for e in queue] == [
        (lower.id, "low_confidence"),
        (low.id, "low_confidence"),
    ]
    assert [round(e.item.priority, 9) for e in queue] == [1.45, 1.35]
    assert read_review_queue(store, "other") == []


def test_claim_and_resolve_rules(store: Store) -> None:
    d = decision(0.6)
    log_decision(store, d)
    item = ReviewItem(decision_id=d.id, reason="low_confidence", priority=1.4)
    assert enqueue_review(store, [item]) == 1
    assert claim_review_item(store, item.id, "ann", "acme").claimed_by == "ann"
    assert claim_review_item(store, item.id, "ann", "acme").status == "claimed"  # idempotent for ann
    with pytest.raises(ReviewError, match="already claimed by 'ann'") as err:
        claim_review_item(store, item.id, "bob", "acme")
    assert err.value.kind == "conflict"
    with pytest.raises(ReviewError, match="no review item") as err:
        resolve_review_item(store, item.id, "other", label="b", reviewer="ann")
    assert err.value.kind == "not_found"
    with pytest.raises(ReviewError, match="label: 'z' is not one of"):
        resolve_review_item(store, item.id, "acme", label="z", reviewer="ann")
    done, fb = resolve_review_item(store, item.id, "acme", label="b", reviewer="ann", authority=0.8)
    assert (done.status, done.feedback_id, fb.label, fb.authority) == ("resolved", fb.id, "b", 0.8)
    assert review_counts(store, "acme") == {"open": 0, "claimed": 0, "resolved": 1}
    with pytest.raises(ReviewError, match="already resolved"):
        resolve_review_item(store, item.id, "acme", label="a", reviewer="ann")
    with pytest.raises(ReviewError, match="status: must be one of"):
        read_review_queue(store, "acme", ("done",))


def test_the_overlap_share_is_a_hashed_draw_independent_of_the_audit() -> None:
    ids = [f"d{i}" for i in range(20_000)]
    policy = ReviewPolicy(confidence_below=0.7, audit_rate=0.1, overlap_rate=0.1)
    two = {i for i in ids if policy.assess(decision(0.5, id=i)).answers_needed == 2}  # type: ignore[union-attr]
    # Binomial(20000, 0.1): sd = 42.4; allow 4 sd.
    assert abs(len(two) - 2000) < 170
    assert two == {i for i in ids if policy.audit_draw(i, "overlap") < 0.1}  # the same draw on every worker
    audit = {i for i in ids if policy.audit_draw(i) < 0.1}
    assert abs(len(two & audit) - 200) < 60  # independent of the audit draw (expected 200)
    assert ReviewPolicy(confidence_below=0.7).assess(decision(0.5)).answers_needed == 1  # type: ignore[union-attr]


def test_a_review_item_needs_one_or_two_answers() -> None:
    from rewardloop.types import RecordError

    with pytest.raises(RecordError, match="answers_needed: must be 1 or 2; got 3"):
        ReviewItem(decision_id="d", reason="audit", answers_needed=3)
