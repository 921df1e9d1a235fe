"""The review queue's staleness term, on SQLite and PostgreSQL: an item ranks by ``priority +
staleness_per_day × days waited``, the same order at every moment, paged by key without a gap or a
repeat, and a reviewer's page follows it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from tests.loop.test_review_queue import dec

from rewardloop.config import ReviewConfig
from rewardloop.store import Store, write_decisions
from rewardloop.store.review import enqueue_review, read_review_queue
from rewardloop.store.review_order import day_number
from rewardloop.store.review_work import reviewer_queue
from rewardloop.types import ReviewItem

NOW = datetime.now(UTC)


def _queued(store: Store, rows: list[tuple[str, float, float]]) -> dict[str, str]:
    """Queue (name, priority, days waited) items; their ids by name."""
    decisions = {name: dec("on", (0.6, 0.3, 0.1)) for name, _, _ in rows}
    write_decisions(store, list(decisions.values()))
    items = {
        name: ReviewItem(
            decision_id=decisions[name].id,
            reason="low_confidence",
            priority=priority,
            created_at=NOW - timedelta(days=days),
        )
        for name, priority, days in rows
    }
    assert enqueue_review(store, items.values()) == len(rows)
    return {name: item.id for name, item in items.items()}


#: name, priority, days waited. With 0.1 a day the ranks are a 1.5, b 1.0 + 0.6 = 1.6,
#: c 1.0 + 0.4 = 1.4, d 0.0 + 20 × 0.1 = 2.0 (the audit item that waited twenty days), e 1.5 + 0 = 1.5
#: queued 86 s after a (without the term, a and e tie and the older goes first).
ROWS = [("a", 1.5, 0.001), ("b", 1.0, 6.0), ("c", 1.0, 4.0), ("d", 0.0, 20.0), ("e", 1.5, 0.0)]


@pytest.mark.parametrize(
    ("staleness", "order"),
    [(0.0, ["a", "e", "b", "c", "d"]), (0.1, ["d", "b", "a", "e", "c"]), (1.0, ["d", "b", "c", "a", "e"])],
)
def test_the_queue_ranks_by_priority_plus_days_waited(
    store: Store, staleness: float, order: list[str]
) -> None:
    ids = _queued(store, ROWS)
    name = {v: k for k, v in ids.items()}
    got = [name[e.item.id] for e in read_review_queue(store, "acme", staleness_per_day=staleness)]
    assert got == order
    page, total = reviewer_queue(store, "acme", "rev", limit=2, staleness_per_day=staleness)
    assert ([name[e.item.id] for e in page], total) == (order[:2], 5)


def test_keyset_pages_follow_the_staleness_order_without_gap_or_repeat(store: Store) -> None:
    ids = _queued(store, ROWS)
    name = {v: k for k, v in ids.items()}
    seen: list[str] = []
    after = None
    while True:
        page = read_review_queue(store, "acme", limit=2, after=after, staleness_per_day=0.1)
        if not page:
            break
        seen += [name[e.item.id] for e in page]
        last = page[-1].item
        after = (last.priority, last.created_at, last.id)
    assert seen == ["d", "b", "a", "e", "c"]


def test_day_number_counts_days_since_the_unix_epoch(store: Store) -> None:
    from rewardloop.store.tables import ReviewItemRow

    _queued(store, [("x", 0.0, 0.0)])
    when = datetime(2026, 1, 2, 12, 0, tzinfo=UTC)  # 20,455.5 days after 1970-01-01
    with store.engine.begin() as conn:
        conn.execute(ReviewItemRow.__table__.update().values(created_at=when))
        got = conn.execute(select(day_number(ReviewItemRow.created_at))).scalar_one()
    assert float(got) == pytest.approx((when - datetime(1970, 1, 1, tzinfo=UTC)).days + 0.5, abs=1e-6)


def test_the_config_default_and_its_bounds() -> None:
    assert ReviewConfig().staleness_per_day == 0.1
    with pytest.raises(ValueError, match="staleness_per_day"):
        ReviewConfig(staleness_per_day=-0.1)
