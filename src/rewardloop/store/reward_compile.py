"""Store queries the reward compiler needs beyond the generic readers."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple

import orjson
from sqlalchemy import Text, and_, cast, func, select

from rewardloop.store.engine import Store
from rewardloop.store.repository import decision_filter
from rewardloop.store.tables import DecisionRow, FeedbackRow, RewardRow
from rewardloop.types import TimeWindow


def latest_reward_time(
    store: Store, spec: str, spec_version: int, policy: str | None = None
) -> datetime | None:
    """When rewards of ``spec``/``spec_version`` (for ``policy``'s decisions) were last compiled, or None."""
    query = select(func.max(RewardRow.created_at)).where(
        RewardRow.spec == spec, RewardRow.spec_version == spec_version
    )
    if policy is not None:
        query = query.where(
            RewardRow.decision_id.in_(
                select(DecisionRow.id).where(DecisionRow.policy == policy).scalar_subquery()
            )
        )
    with store.engine.connect() as conn:
        t = conn.scalar(query)
    if t is None:
        return None
    if isinstance(t, str):  # SQLite's max() over a DateTime column returns the stored text
        t = datetime.fromisoformat(t)
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


class DecisionView(NamedTuple):
    """The columns of a decision the reward compiler reads."""

    id: str
    action: str
    confidence: float | None
    latency_ms: float | None
    action_set_raw: Any = None

    @property
    def chosen_set(self) -> tuple[str, ...] | None:
        """The chosen set of a decision that carries one (JSON decoded only where present)."""
        stored = _json(self.action_set_raw)
        return None if stored is None else tuple(stored["chosen"])


class FeedbackView(NamedTuple):
    """The columns of a feedback row the reward compiler reads, in the order of the query's columns.

    ``created_at`` is as stored (it only orders one decision's rows); ``scores_raw`` is JSON text on
    SQLite, decoded by :attr:`scores` only when read.
    """

    id: str
    decision_id: str
    kind: str
    value: float | None
    scale_low: float | None
    scale_high: float | None
    label: str | None
    preferred: str | None
    rejected: str | None
    scores_raw: Any
    rater_id: str | None
    authority: float
    created_at: Any
    labels_raw: Any = None

    @property
    def labels(self) -> tuple[str, ...] | None:
        decoded = _json(self.labels_raw)
        return None if decoded is None else tuple(decoded)

    @property
    def scale(self) -> tuple[float, float] | None:
        return (
            None if self.scale_low is None or self.scale_high is None else (self.scale_low, self.scale_high)
        )

    @property
    def scores(self) -> dict[str, float] | None:
        raw = self.scores_raw
        decoded: dict[str, float] | None = _json(raw)
        return decoded


def _json(raw: Any) -> Any:
    """A JSON column as read: text on SQLite (decoded here), already decoded on PostgreSQL."""
    return orjson.loads(raw) if isinstance(raw, str | bytes) else raw


def read_compile_inputs(
    store: Store,
    *,
    policy: str | None = None,
    window: TimeWindow = TimeWindow(),
    ids: Sequence[str] | None = None,
) -> tuple[list[DecisionView], dict[str, list[FeedbackView]]]:
    """Decisions with feedback (in a policy/time window, or among ``ids``) and their feedback rows.

    A columnar fast path for the reward compiler: plain tuples of the columns it needs, no record
    validation (the rows were validated when written), and feedback JSON decoded only where present.
    Voided feedback is left out.
    """
    d, f = DecisionRow, FeedbackRow
    conds = decision_filter(store, policy, None, window, None, None, None, None, ids)
    sqlite = store.dialect == "sqlite"
    # One join, no ORDER BY (the compiler orders each decision's rows itself), raw JSON and time
    # columns on SQLite (decoded below only where present): the cheapest read of 100k rows.
    query = (
        select(
            f.id,
            f.decision_id,
            f.kind,
            f.value,
            f.scale_low,
            f.scale_high,
            f.label,
            f.preferred,
            f.rejected,
            cast(f.scores, Text) if sqlite else f.scores,
            f.rater_id,
            f.authority,
            cast(f.created_at, Text) if sqlite else f.created_at,
            cast(f.labels, Text) if sqlite else f.labels,
            d.action,
            d.confidence,
            d.latency_ms,
            cast(d.action_set, Text) if sqlite else d.action_set,
        )
        .join(d, d.id == f.decision_id)
        .where(and_(f.voided_at.is_(None), *conds))
    )
    decisions: dict[str, DecisionView] = {}
    feedback: dict[str, list[FeedbackView]] = {}
    make = FeedbackView._make
    with store.engine.connect() as conn:
        rows = conn.execute(query).all()
    for r in rows:
        did = r[1]
        group = feedback.get(did)
        if group is None:
            group = feedback[did] = []
            decisions[did] = DecisionView(did, r[14], r[15], r[16], r[17])
        group.append(make(r[:14]))
    return list(decisions.values()), feedback


__all__ = ["DecisionView", "FeedbackView", "latest_reward_time", "read_compile_inputs"]
