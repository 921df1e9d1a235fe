"""What the dashboard's pages look at: a time range, a policy and a version (the selectors at the top of
the overview, carried on to its drill-down links).

The range is the last ``hours`` hours (0: all time); whatever it is, at most :data:`WINDOW` of the
newest decisions in it are read (the page says when the cap was hit), so a page stays cheap.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated
from urllib.parse import urlencode

from fastapi import Depends, Query

from rewardloop.store import Store
from rewardloop.store.insights import recent_decisions
from rewardloop.types import utcnow
from rewardloop.types.batches import DecisionBatch

#: Most decisions a page reads (the newest in the range).
WINDOW = 20_000

#: The range selector's choices: hours → label.
RANGES = {1: "last hour", 24: "last 24 hours", 168: "last 7 days", 720: "last 30 days", 0: "all time"}


@dataclass(frozen=True)
class Scope:
    """A time range (``hours``, 0: all), a policy and a version (None: all)."""

    hours: int = 0
    policy: str | None = None
    version: str | None = None

    @property
    def label(self) -> str:
        return RANGES.get(self.hours, f"last {self.hours} hours")

    def query(self, **more: str | int | None) -> str:
        """The scope (and ``more``) as a query string, empty values left out."""
        pairs = {"hours": self.hours, "policy": self.policy, "version": self.version, **more}
        return urlencode({k: v for k, v in pairs.items() if v is not None and v != ""})

    def read(self, store: Store, project: str) -> tuple[DecisionBatch, bool]:
        """The scope's decisions with their feedback (the newest :data:`WINDOW`) and whether the cap
        was hit."""
        since = utcnow() - timedelta(hours=self.hours) if self.hours else None
        batch = recent_decisions(store, project, limit=WINDOW, policy=self.policy, since=since)
        capped = len(batch) >= WINDOW
        if self.version is not None:
            kept = [d for d in batch.decisions if d.policy_version == self.version]
            batch = DecisionBatch(kept, {d.id: batch.feedback[d.id] for d in kept if d.id in batch.feedback})
        return batch, capped


def scope_of(
    hours: Annotated[int, Query(ge=0, le=24 * 3650, description="the last this many hours (0: all)")] = 0,
    policy: Annotated[str | None, Query(max_length=200)] = None,
    version: Annotated[str | None, Query(max_length=100)] = None,
) -> Scope:
    return Scope(hours, policy or None, version or None)


ScopeDep = Annotated[Scope, Depends(scope_of)]

__all__ = ["RANGES", "WINDOW", "Scope", "ScopeDep", "scope_of"]
