"""Experiments (champion/challenger splits) and the per-variant aggregates their statistics need.

:func:`variant_outcomes` is one aggregate query over decisions left-joined to their rewards, so
that the verdict on a million logged decisions costs one round trip, not a million rows.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, func, literal, select, update
from sqlalchemy.exc import IntegrityError

from rewardloop.store.engine import Store
from rewardloop.store.rows import read_records, record_from_row, row_values
from rewardloop.store.tables import DecisionRow, ExperimentRow, RewardRow
from rewardloop.types import Experiment, utcnow


class ExperimentStoreError(ValueError):
    """An experiment write or read was refused; the message says why. Nothing was stored."""


def insert_experiment(store: Store, exp: Experiment) -> Experiment:
    """Store a new experiment; a name in use already is refused."""
    try:
        with store.session() as s:
            if s.get(ExperimentRow, exp.name) is not None:
                raise ExperimentStoreError(f"name: an experiment named {exp.name!r} exists already")
            s.add(ExperimentRow(**row_values(exp)))
    except IntegrityError:
        raise ExperimentStoreError(f"name: an experiment named {exp.name!r} exists already") from None
    return exp


def _from_row(r: ExperimentRow) -> Experiment:
    return record_from_row(Experiment, r, ramp=tuple(r.ramp), shadow=bool(r.shadow))


def get_experiment(store: Store, name: str) -> Experiment | None:
    with store.session() as s:
        row = s.get(ExperimentRow, name)
        return _from_row(row) if row is not None else None


def read_experiments(store: Store, policy: str | None = None, status: str | None = None) -> list[Experiment]:
    """Experiments, oldest first, optionally of one policy and/or one status."""
    query = select(ExperimentRow).order_by(ExperimentRow.created_at)
    return read_records(
        store, query, _from_row, (ExperimentRow.policy, policy), (ExperimentRow.status, status)
    )


def update_experiment(store: Store, exp: Experiment, expected_stage: int | None = None) -> Experiment:
    """Write an experiment's shares, stage, shadow flag, status and verdict; returns it as stored.

    With ``expected_stage``, the update applies only if the stored stage is still that one (two
    ``advance`` calls at once cannot both step the ramp); otherwise :class:`ExperimentStoreError`.
    """
    now = utcnow()
    stmt = update(ExperimentRow).where(ExperimentRow.name == exp.name)
    if expected_stage is not None:
        stmt = stmt.where(ExperimentRow.stage == expected_stage)
    with store.session() as s:
        result = s.execute(
            stmt.values(
                shares=dict(exp.shares),
                stage=exp.stage,
                shadow=exp.shadow,
                status=exp.status,
                verdict=dict(exp.verdict) if exp.verdict is not None else None,
                updated_at=now,
            )
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            raise ExperimentStoreError(
                f"name: experiment {exp.name!r} does not exist or changed meanwhile (re-read and retry)"
            )
    return dataclasses.replace(exp, updated_at=now)


@dataclass(frozen=True)
class VariantOutcome:
    """Aggregates over one variant's logged decisions (and their rewards under one spec)."""

    variant: str
    n: int
    n_outcomes: int
    successes: int
    reward_sum: float
    latency_n: int
    latency_mean: float
    latency_var: float  # sample variance, ddof=1


def reward_specs_of_experiment(store: Store, name: str) -> list[tuple[str, int]]:
    """The (spec, version) pairs that have rewards on this experiment's decisions."""
    with store.session() as s:
        rows = s.execute(
            select(RewardRow.spec, RewardRow.spec_version)
            .join(DecisionRow, DecisionRow.id == RewardRow.decision_id)
            .where(DecisionRow.experiment == name)
            .distinct()
            .order_by(RewardRow.spec, RewardRow.spec_version)
        )
        return [(spec, int(v)) for spec, v in rows]


#: ``Decision.metadata`` key of the serving path's counterfactual flag: True when the experiment's
#: other variant would have served the request differently (another action distribution), False when
#: it would have served it the same way (see :func:`trigger_counts`).
TRIGGER_KEY = "triggered"


def _triggered() -> Any:
    return DecisionRow.meta[TRIGGER_KEY].as_boolean()


@dataclass(frozen=True)
class TriggerCounts:
    """An experiment's decisions (shadow ones left out), how many carry the counterfactual flag,
    and how many of those are triggered (the variants would have served them differently)."""

    n: int
    flagged: int
    triggered: int

    @property
    def complete(self) -> bool:
        """Every decision carries the flag: the triggered analysis may read them."""
        return self.n > 0 and self.flagged == self.n


def trigger_counts(store: Store, name: str, since: datetime | None = None) -> TriggerCounts:
    """:class:`TriggerCounts` of experiment ``name`` (decisions created at or after ``since``)."""
    flag = _triggered()
    query = (
        select(
            func.count(DecisionRow.id),
            func.count(flag),
            func.sum(case((flag.is_(True), 1), else_=0)),
        )
        .where(DecisionRow.experiment == name)
        .where(func.coalesce(DecisionRow.meta["shadow"].as_boolean(), False).is_(False))
    )
    if since is not None:
        query = query.where(DecisionRow.created_at >= since)
    with store.session() as s:
        n, flagged, triggered = s.execute(query).one()
    return TriggerCounts(int(n or 0), int(flagged or 0), int(triggered or 0))


def _aggregate(
    store: Store,
    name: str,
    join_on: Any,
    success_at: float,
    since: datetime | None,
    by_spec: bool,
    triggered_only: bool = False,
) -> list[tuple[Any, ...]]:
    """Rows of (variant, spec, spec_version, n, n_out, successes, reward_sum, lat_n, lat_sum, lat_sq)."""
    lat = DecisionRow.latency_ms
    spec_cols = (RewardRow.spec, RewardRow.spec_version) if by_spec else (literal(None), literal(None))
    query = (
        select(
            DecisionRow.variant,
            *spec_cols,
            func.count(DecisionRow.id),
            func.count(RewardRow.value),
            func.sum(case((RewardRow.value >= success_at, 1), else_=0)),
            func.sum(RewardRow.value),
            func.count(lat),
            func.sum(lat),
            func.sum(lat * lat),
        )
        .select_from(DecisionRow)
        .outerjoin(RewardRow, join_on)
        .where(DecisionRow.experiment == name)
        .group_by(DecisionRow.variant, *((RewardRow.spec, RewardRow.spec_version) if by_spec else ()))
    )
    if since is not None:
        query = query.where(DecisionRow.created_at >= since)
    if triggered_only:
        query = query.where(_triggered().is_(True))
    with store.session() as s:
        return [tuple(r) for r in s.execute(query)]


def variant_outcomes(
    store: Store,
    name: str,
    spec: str | None = None,
    spec_version: int | None = None,
    success_at: float = 0.5,
    since: datetime | None = None,
    triggered_only: bool = False,
) -> dict[str, VariantOutcome]:
    """Per variant of experiment ``name``: decisions, rewarded decisions, successes, latency moments.

    ``triggered_only`` keeps the decisions the serving path flagged as triggered (``TRIGGER_KEY``).

    A success is a reward ``>= success_at``. ``spec`` names the reward spec (and ``spec_version`` its
    version, default: the newest); without one, the experiment's rewards must come from exactly one
    spec, else the error lists them. ``since`` keeps decisions created at or after that time (one
    ramp stage). The usual case (one spec, one version) is one aggregate query.
    """
    rows: list[tuple[Any, ...]] | None = None
    if spec is None:
        # One pass grouped by spec too: with exactly one (spec, version) on the experiment's decisions
        # the groups add up to the answer; otherwise say which specs there are, or re-ask for the newest.
        rows = _aggregate(
            store, name, RewardRow.decision_id == DecisionRow.id, success_at, since, True, triggered_only
        )
        specs = sorted({(r[1], int(r[2])) for r in rows if r[1] is not None})
        if len({p[0] for p in specs}) > 1:
            listed = ", ".join(f"{p[0]}@v{p[1]}" for p in specs)
            raise ExperimentStoreError(
                f"spec: experiment {name!r} has rewards of several specs ({listed}); name one"
            )
        if len(specs) > 1:  # one spec, several versions: the newest only
            spec, spec_version, rows = specs[-1][0], specs[-1][1], None
    elif spec_version is None:
        versions = [v for p, v in reward_specs_of_experiment(store, name) if p == spec]
        spec_version = max(versions) if versions else 1
    if rows is None:
        joined = and_(
            RewardRow.decision_id == DecisionRow.id,
            RewardRow.spec == spec,
            RewardRow.spec_version == spec_version,
        )
        rows = _aggregate(store, name, joined, success_at, since, False, triggered_only)
    totals: dict[str, list[float]] = {}
    for variant, _spec, _version, *numbers in rows:
        if variant is None:
            continue
        acc = totals.setdefault(str(variant), [0.0] * 7)
        for k, x in enumerate(numbers):
            acc[k] += float(x or 0)
    out: dict[str, VariantOutcome] = {}
    for variant, (n, n_out, succ, rsum, lat_n, lat_sum, lat_sq) in totals.items():
        mean = lat_sum / lat_n if lat_n else 0.0
        # Sample variance from the sums: (Σx² − n x̄²) / (n − 1); clipped at 0 against rounding.
        var = max(0.0, (lat_sq - lat_n * mean * mean) / (lat_n - 1)) if lat_n > 1 else 0.0
        out[variant] = VariantOutcome(
            variant=variant,
            n=int(n),
            n_outcomes=int(n_out),
            successes=int(succ),
            reward_sum=rsum,
            latency_n=int(lat_n),
            latency_mean=mean,
            latency_var=var,
        )
    return out


__all__ = [
    "TRIGGER_KEY",
    "ExperimentStoreError",
    "TriggerCounts",
    "VariantOutcome",
    "get_experiment",
    "insert_experiment",
    "read_experiments",
    "reward_specs_of_experiment",
    "trigger_counts",
    "update_experiment",
    "variant_outcomes",
]
