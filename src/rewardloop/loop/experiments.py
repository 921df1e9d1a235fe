"""Champion/challenger experiments: hash assignment, traffic shares, ramps, shadow mode, auto-rollback.

Assignment
    By salted hash of a unit id (:mod:`rewardloop.loop.assignment`): stable across processes and
    machines, independent across experiments, monotone while a ramp raises the challenger's share.
    The variant's share is logged on the decision as ``variant_share``, so the propensity of what was
    served is ``variant_share × pscore`` and A/B traffic is reusable for off-policy evaluation.

Ramp
    The challenger share steps through ``ramp`` (default 5% → 25% → 50% → 100%). :meth:`Experiments.advance`
    evaluates the current stage only (decisions since it began, so shares never mix inside a
    comparison): a broken guardrail rolls back at once; otherwise, with enough outcomes per variant,
    the share steps up; the step to 100% is the promotion and needs a "promote" verdict.

Shadow mode
    The challenger decides on the same requests and its decision is logged (``metadata.shadow``), but
    the champion's is served. A "promote" verdict in shadow mode starts the live ramp.

Examples
--------
>>> exp = Experiment(name="e", policy="p", variants={"champion": "1.0.0", "challenger": "1.1.0"},
...                  shares={"champion": 0.95, "challenger": 0.05}, salt="s")
>>> assign_variant(exp, "user-42") == assign_variant(exp, "user-42")
True
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from rewardloop.config.faults import fault_point
from rewardloop.config.sections import ExperimentsConfig
from rewardloop.evaluation.abtest import VariantStats, Verdict, VerdictRules, ab_verdict
from rewardloop.evaluation.evidence import OfflineEvidence
from rewardloop.loop.assignment import assign_variant, bucket, layout, stage_shares
from rewardloop.loop.experiment_errors import ExperimentError, ExperimentNotFound
from rewardloop.loop.triggering import stage_trigger
from rewardloop.registry import CHALLENGER, CHAMPION, ArtifactError, GateEvidence, Registry, RegistryError
from rewardloop.store import Store
from rewardloop.store.experiments import (
    ExperimentStoreError,
    VariantOutcome,
    get_experiment,
    insert_experiment,
    read_experiments,
    update_experiment,
    variant_outcomes,
)
from rewardloop.types import Decision, Experiment, RecordError, utcnow


@dataclass(frozen=True)
class Assignment:
    """Where one request goes: the serving variant, its version and share, and shadow deciders."""

    experiment: str
    policy: str
    variant: str
    version: str
    share: float
    shadow: tuple[tuple[str, str], ...] = ()  # (variant, version): decide and log, never serve

    def tag(self, decision: Decision) -> Decision:
        """The served decision, with the experiment, variant and its share (the assignment propensity)."""
        return dataclasses.replace(
            decision, experiment=self.experiment, variant=self.variant, variant_share=self.share
        )

    def tag_shadow(self, decision: Decision, variant: str = CHALLENGER) -> Decision:
        """A shadow variant's decision, logged but not served (``metadata["shadow"] = True``)."""
        if variant not in dict(self.shadow):
            raise ExperimentError(f"variant: {variant!r} is not a shadow variant of {self.experiment!r}")
        meta = {**decision.metadata, "shadow": True}
        return dataclasses.replace(
            decision, experiment=self.experiment, variant=variant, variant_share=1.0, metadata=meta
        )


@dataclass(frozen=True)
class Step:
    """What :meth:`Experiments.advance` did: ``held``, ``advanced``, ``promoted`` or ``rolled_back``."""

    action: Literal["held", "advanced", "promoted", "rolled_back"]
    experiment: Experiment
    verdict: Verdict

    def summary(self) -> str:
        share = self.experiment.shares.get(CHALLENGER)
        where = (
            "shadow"
            if self.experiment.shadow
            else f"challenger share {share:.0%}"
            if share is not None
            else ""
        )
        return f"{self.experiment.name}: {self.action} ({where}); {self.verdict.summary()}"


def _rules(cfg: ExperimentsConfig) -> VerdictRules:
    """The verdict's thresholds: each field of :class:`VerdictRules`, from the config key of its name."""
    return VerdictRules(**{f.name: getattr(cfg, f.name) for f in dataclasses.fields(VerdictRules)})


def _check_ramp(ramp: Sequence[float]) -> tuple[float, ...]:
    ramp = tuple(float(x) for x in ramp)
    if not ramp or not all(0 < x <= 1 for x in ramp):
        raise ExperimentError(f"ramp: shares must be in (0, 1], got {list(ramp)}")
    if any(b <= a for a, b in itertools.pairwise(ramp)):
        raise ExperimentError(f"ramp: shares must increase, got {list(ramp)}")
    if ramp[0] >= 1:
        raise ExperimentError(f"ramp: needs a stage below 1.0 to compare on, got {list(ramp)}")
    return ramp


def _finite_or_none(x: float) -> float | None:
    return x if math.isfinite(x) else None  # JSON (and PostgreSQL JSONB) have no infinities


def _bounds(stored: Any) -> tuple[float, float]:
    """The stored always-valid confidence sequence ``[lower, upper]`` (None: unbounded)."""
    lo, hi = stored if isinstance(stored, list | tuple) and len(stored) == 2 else (None, None)
    return (-math.inf if lo is None else float(lo), math.inf if hi is None else float(hi))


def _arm(o: VariantOutcome | None) -> VariantStats:
    if o is None:
        return VariantStats(0)
    return VariantStats(o.n, o.n_outcomes, o.successes, o.latency_n, o.latency_mean, o.latency_var)


class Experiments:
    """Start, route, evaluate, ramp, promote, roll back and stop experiments stored in ``store``.

    Parameters
    ----------
    store : Store
    registry : Registry, optional
        With one, ``start`` points the ``challenger`` alias at the challenger, a promotion moves
        ``champion`` (with the promoting verdict as its gate report) and a rollback removes
        ``challenger``; every move lands in the registry's alias history.
    config : ExperimentsConfig, optional
        Ramp, thresholds and reward spec; the project defaults otherwise.

    Examples
    --------
    >>> store = Store.open("sqlite://")
    >>> ex = Experiments(store)
    >>> exp = ex.start("canary-1", "intent", challenger="1.1.0", champion="1.0.0", salt="fixed")
    >>> exp.shares["challenger"], exp.stage
    (0.05, 0)
    """

    def __init__(
        self, store: Store, registry: Registry | None = None, config: ExperimentsConfig | None = None
    ) -> None:
        self.store = store
        self.registry = registry
        self.config = config or ExperimentsConfig()

    # -- lifecycle -----------------------------------------------------------------------------------

    def start(
        self,
        name: str,
        policy: str,
        challenger: str | Mapping[str, str],
        *,
        champion: str | None = None,
        ramp: Sequence[float] | None = None,
        shadow: bool | None = None,
        salt: str | None = None,
        gate_report: GateEvidence | None = None,
        offline: OfflineEvidence | None = None,
        actor: str | None = None,
        reason: str = "",
    ) -> Experiment:
        """Start an experiment of ``policy``: champion vs ``challenger`` (a version) or N variants.

        ``challenger`` may map variant names to versions for an N-variant test. ``champion``
        defaults to the registry's champion. ``salt`` defaults to a fresh random one (recorded, so
        assignment is reproducible). Refused while another experiment of the policy is running.
        ``offline`` is the challenger's gate evidence (golden set, OPE), stored with the gate report:
        with it, a non-inferior canary that is better offline is promoted (``non_inferiority_margin``).
        """
        ramp_t = _check_ramp(ramp if ramp is not None else self.config.ramp)
        shadow = self.config.shadow if shadow is None else shadow
        running = [e.name for e in read_experiments(self.store, policy=policy, status="running")]
        if running:
            raise ExperimentError(f"policy: {policy} already has a running experiment ({', '.join(running)})")
        others = {CHALLENGER: challenger} if isinstance(challenger, str) else dict(challenger)
        variants = self._variants(policy, champion, others)
        shares = (
            {v: (1.0 if v == CHAMPION else 0.0) for v in variants}
            if shadow
            else stage_shares(list(variants), ramp_t[0])
        )
        now = utcnow()
        started: dict[str, Any] = {"at": now.isoformat(), "stage": 0, "step": "started", "actor": actor}
        if gate_report is not None:
            started["gate_report"] = dict(gate_report.to_dict())
        state: dict[str, Any] = {"stage_started_at": now.isoformat(), "p_always_valid": 1.0, "log": [started]}
        if offline is not None:
            state["offline"] = offline.to_dict()
        try:
            exp = Experiment(
                name=name,
                policy=policy,
                variants=variants,
                shares=shares,
                salt=salt or secrets.token_hex(8),
                ramp=ramp_t,
                stage=0,
                shadow=shadow,
                verdict=state,
                created_at=now,
                updated_at=now,
            )
            insert_experiment(self.store, exp)
        except (RecordError, ExperimentStoreError) as err:
            raise ExperimentError(str(err)) from None
        fault_point("experiment.inserted")  # crash-safety tests only (no-op otherwise)
        reg = self.registry
        if reg is not None and len(others) == 1:
            (version,) = others.values()
            why = reason or f"experiment {name} started"
            if reg.aliases(policy).get(CHALLENGER) != version:
                try:
                    reg.set_alias(f"{policy}@{version}", CHALLENGER, actor=actor, reason=why)
                except RegistryError as err:  # do not leave a running experiment behind
                    update_experiment(self.store, dataclasses.replace(exp, status="stopped"))
                    raise ExperimentError(f"registry: {err} (experiment {name} not started)") from None
        return exp

    def _variants(self, policy: str, champion: str | None, others: dict[str, str]) -> dict[str, str]:
        """Variant → version: the champion (the registry's when None) and the checked challengers."""
        if not others or CHAMPION in others:
            raise ExperimentError("challenger: name at least one challenger version, and not 'champion'")
        if champion is None:
            if self.registry is None:
                raise ExperimentError("champion: give the champion version (no registry to look it up in)")
            try:
                champion = self.registry.resolve(f"{policy}@{CHAMPION}").version
            except RegistryError as err:
                raise ExperimentError(f"champion: {err}") from None
        if self.registry is not None:
            for variant, version in others.items():
                try:
                    self.registry.verify(self.registry.get(policy, version))
                except (RegistryError, ArtifactError) as err:
                    raise ExperimentError(f"challenger.{variant}: {err}") from None
        if champion in others.values():
            raise ExperimentError(f"challenger: {champion} is the champion already")
        return {CHAMPION: champion, **others}

    def supersede(
        self,
        name: str,
        policy: str,
        challenger: str,
        offline: OfflineEvidence,
        *,
        gate_report: GateEvidence | None = None,
        actor: str | None = None,
        salt: str | None = None,
    ) -> tuple[Experiment | None, str]:
        """Start ``challenger``'s canary, replacing the policy's running one if its evidence is beaten.

        With no running experiment this is :meth:`start`. A running canary is stopped (with the
        reason logged) and replaced only when ``offline`` :meth:`~OfflineEvidence.beats` the evidence
        it started with (a canary started without any is replaced by a challenger better offline);
        otherwise it keeps running and nothing changes. Returns (the new experiment or None, why).
        """
        running = self.running_for(policy)
        if running is not None:
            held = self.offline_evidence(running)
            if not (offline.beats(held) if held is not None else offline.better):
                against = held.summary() if held is not None else "no offline evidence"
                return None, (
                    f"{running.name} keeps running: {challenger}'s {offline.summary()} does not beat "
                    f"{running.variants.get(CHALLENGER)}'s {against}"
                )
            why = (
                f"replaced by {challenger} ({name}): {offline.summary()} beats "
                f"{held.summary() if held is not None else 'no offline evidence'}"
            )
            self.stop(running, actor=actor, reason=why)
        exp = self.start(
            name, policy, challenger, gate_report=gate_report, offline=offline, actor=actor, salt=salt
        )
        return exp, f"{name} started" if running is None else f"{name} started; {running.name} {why}"

    def _registry_move(self, move: Callable[[], object], exp: Experiment) -> None:
        try:
            move()
        except RegistryError as err:
            raise ExperimentError(f"registry: {err} (experiment {exp.name})") from None

    def get(self, name: str) -> Experiment:
        exp = get_experiment(self.store, name)
        if exp is None:
            known = ", ".join(e.name for e in read_experiments(self.store)) or "none"
            raise ExperimentNotFound(f"name: no experiment named {name!r} (known: {known})")
        return exp

    def list(self, policy: str | None = None, status: str | None = None) -> list[Experiment]:
        return read_experiments(self.store, policy=policy, status=status)

    def running_for(self, policy: str) -> Experiment | None:
        """The policy's running experiment, if any (None: serve the champion)."""
        running = read_experiments(self.store, policy=policy, status="running")
        return running[-1] if running else None

    # -- routing -------------------------------------------------------------------------------------

    def assign(self, experiment: str | Experiment, unit_id: str) -> Assignment:
        """Where ``unit_id``'s request goes in a running experiment (variant, version, share, shadows)."""
        exp = self.get(experiment) if isinstance(experiment, str) else experiment
        if exp.status != "running":
            raise ExperimentError(
                f"name: experiment {exp.name!r} is {exp.status}; serve {exp.policy}@champion"
            )
        try:
            variant, share = assign_variant(exp, unit_id)
        except ValueError as err:
            raise ExperimentError(str(err)) from None
        shadows = tuple((v, exp.variants[v]) for v in layout(exp) if v != CHAMPION) if exp.shadow else ()
        return Assignment(exp.name, exp.policy, variant, exp.variants[variant], share, shadows)

    # -- statistics ----------------------------------------------------------------------------------

    def _stage_start(self, exp: Experiment) -> datetime | None:
        started = (exp.verdict or {}).get("stage_started_at")
        return datetime.fromisoformat(started) if isinstance(started, str) else None

    def outcomes(
        self, experiment: str | Experiment, whole: bool = False, triggered: bool = False
    ) -> dict[str, VariantOutcome]:
        """Per-variant aggregates of the stage (``whole``: the experiment; ``triggered``: its triggered)."""
        exp = self.get(experiment) if isinstance(experiment, str) else experiment
        try:
            return variant_outcomes(
                self.store,
                exp.name,
                spec=self.config.reward_spec,
                success_at=self.config.success_at,
                since=None if whole else self._stage_start(exp),
                triggered_only=triggered,
            )
        except ExperimentStoreError as err:
            raise ExperimentError(str(err)) from None

    def trigger(self, experiment: str | Experiment) -> tuple[float, float] | None:
        """The current stage's (trigger-rate bound, τ) for a triggered verdict, or None
        (:func:`rewardloop.loop.triggering.stage_trigger`)."""
        exp = self.get(experiment) if isinstance(experiment, str) else experiment
        return stage_trigger(self.store, exp, self._stage_start(exp), self.config)

    def evaluate(self, experiment: str | Experiment, variant: str = CHALLENGER) -> Verdict:
        """The verdict on ``variant`` vs the champion over the current stage; changes nothing stored."""
        exp = self.get(experiment) if isinstance(experiment, str) else experiment
        if variant not in exp.variants or variant == CHAMPION:
            raise ExperimentError(f"variant: {variant!r} is not a challenger of {exp.name!r}")
        trigger = self.trigger(exp)
        out = self.outcomes(exp, triggered=trigger is not None)
        shares = None
        if not exp.shadow:
            pair = exp.shares[CHAMPION] + exp.shares[variant]
            shares = {"champion": exp.shares[CHAMPION] / pair, "challenger": exp.shares[variant] / pair}
        state = exp.verdict or {}
        prev_p = float(state.get("p_always_valid", 1.0))
        prev_ci = _bounds(state.get("cs_always_valid"))
        # The sample budget counts the whole experiment, every stage (the verdict reads this stage).
        whole = self.outcomes(exp, whole=True)
        spent = min(_arm(whole.get(CHAMPION)).n_outcomes, _arm(whole.get(variant)).n_outcomes)
        champion, challenger = _arm(out.get(CHAMPION)), _arm(out.get(variant))
        offline = self.offline_evidence(exp)
        better = offline is not None and offline.better
        rate, tau = trigger if trigger is not None else (1.0, None)
        return ab_verdict(
            champion, challenger, _rules(self.config), shares, prev_p, prev_ci, spent, better, rate, tau
        )

    def offline_evidence(self, experiment: str | Experiment) -> OfflineEvidence | None:
        """The challenger's offline evidence stored when the experiment started (None: none given)."""
        exp = self.get(experiment) if isinstance(experiment, str) else experiment
        try:
            return OfflineEvidence.from_mapping((exp.verdict or {}).get("offline"), f"{exp.name}.offline")
        except ValueError as err:
            raise ExperimentError(str(err)) from None

    # -- acting --------------------------------------------------------------------------------------

    def _save(
        self,
        exp: Experiment,
        *,
        verdict: Verdict | None = None,
        new_stage: bool = False,
        log_entry: Mapping[str, Any] | None = None,
        expected_stage: int | None = None,
        **changes: Any,
    ) -> Experiment:
        state = dict(exp.verdict or {})
        log = list(state.get("log", []))
        now = utcnow()
        if verdict is not None:
            state["last"] = verdict.to_dict()
            state["p_always_valid"] = verdict.sequential.p_value
            state["cs_always_valid"] = [_finite_or_none(x) for x in verdict.sequential.ci]
            if verdict.sequential.tau != self.config.tau:  # a triggered test's τ, kept for the stage
                state["tau_triggered"] = verdict.sequential.tau
        if log_entry is not None:
            log.append({"at": now.isoformat(), "stage": exp.stage, **log_entry})
        if new_stage:
            state["stage_started_at"] = now.isoformat()
            state["p_always_valid"] = 1.0
            state["cs_always_valid"] = [None, None]
            state.pop("tau_triggered", None)
        state["log"] = log
        updated = dataclasses.replace(exp, verdict=state, **changes)
        try:
            return update_experiment(self.store, updated, expected_stage=expected_stage)
        except ExperimentStoreError as err:
            raise ExperimentError(str(err)) from None

    def advance(self, experiment: str | Experiment, *, actor: str | None = None) -> Step:
        """Evaluate the current stage and act on it.

        - guardrail broken (SRM, significantly worse, slower, futile): roll back (status
          ``rolled_back``; the registry's ``challenger`` alias is removed, the champion untouched);
        - guardrails hold, enough outcomes, and a small expected loss (``verdict.ramp_ok``): step the
          challenger share up the ramp; at the last stage only a "promote" verdict moves on, promoting
          the challenger to champion (status ``promoted``);
        - otherwise hold.
        """
        exp = self.get(experiment) if isinstance(experiment, str) else experiment
        if exp.status != "running":
            raise ExperimentError(f"name: experiment {exp.name!r} is {exp.status}, not running")
        challengers = [v for v in exp.variants if v != CHAMPION]
        if challengers != [CHALLENGER]:
            raise ExperimentError(
                f"variants: advance drives one challenger's ramp; evaluate {', '.join(challengers)} "
                "one by one with evaluate(name, variant)"
            )
        verdict = self.evaluate(exp)
        entry = {"action": verdict.action, "summary": verdict.summary()}
        stage = exp.stage
        if verdict.action == "rollback":
            return self._rollback(exp, verdict, actor)
        live = [s for s in exp.ramp if s < 1.0]
        if exp.shadow:
            if verdict.action == "promote":
                exp = self._save(
                    exp,
                    verdict=verdict,
                    new_stage=True,
                    log_entry={**entry, "step": "shadow→live"},
                    expected_stage=stage,
                    shadow=False,
                    stage=0,
                    shares=stage_shares(list(exp.variants), exp.ramp[0]),
                )
                return Step("advanced", exp, verdict)
        elif stage >= len(live) - 1:  # the last stage below 100%: only a promote verdict moves on
            if verdict.action == "promote":
                return self._promote(exp, verdict, entry, actor)
        elif verdict.ramp_ok:
            nxt = stage + 1
            exp = self._save(
                exp,
                verdict=verdict,
                new_stage=True,
                log_entry={**entry, "step": f"ramp {exp.ramp[stage]:.0%}→{exp.ramp[nxt]:.0%}"},
                expected_stage=stage,
                stage=nxt,
                shares=stage_shares(list(exp.variants), exp.ramp[nxt]),
            )
            return Step("advanced", exp, verdict)
        # A hold is not logged (advance may run every few minutes); the last verdict is kept.
        exp = self._save(exp, verdict=verdict, expected_stage=stage)
        return Step("held", exp, verdict)

    def _promote(
        self, exp: Experiment, verdict: Verdict, entry: Mapping[str, Any], actor: str | None
    ) -> Step:
        # Claim the transition first (compare-and-set on the stage), so that two concurrent advances
        # cannot both promote; if the registry then refuses, put the experiment back as it was.
        before = exp
        final = len(exp.ramp) - 1
        exp = self._save(
            exp,
            verdict=verdict,
            log_entry={**entry, "step": "promoted"},
            expected_stage=exp.stage,
            status="promoted",
            stage=final,
            shares=stage_shares(list(exp.variants), 1.0),
        )
        reg = self.registry
        if reg is None:
            return Step("promoted", exp, verdict)
        version = exp.variants[CHALLENGER]
        try:
            reg.promote(
                f"{exp.policy}@{version}",
                verdict,
                actor=actor,
                reason=f"experiment {exp.name}: {'; '.join(verdict.reasons)}",
            )
        except (RegistryError, ArtifactError) as err:
            update_experiment(self.store, before, expected_stage=final)
            raise ExperimentError(f"registry: {err} (experiment {exp.name} left running)") from None
        if reg.aliases(exp.policy).get(CHALLENGER) == version:
            self._registry_move(
                lambda: reg.remove_alias(
                    exp.policy, CHALLENGER, actor=actor, reason=f"experiment {exp.name} promoted"
                ),
                exp,
            )
        return Step("promoted", exp, verdict)

    def guard(self, experiment: str | Experiment, *, actor: str | None = None) -> Step:
        """Check the guardrails only: roll back if one broke, else hold (never ramps or promotes).

        Cheap enough to call after every batch of traffic (the sequential test stays valid however
        often it is checked); :meth:`advance` is the scheduled step that may also move the ramp.
        """
        exp = self.get(experiment) if isinstance(experiment, str) else experiment
        if exp.status != "running":
            raise ExperimentError(f"name: experiment {exp.name!r} is {exp.status}, not running")
        verdict = self.evaluate(exp)
        if verdict.action == "rollback":
            return self._rollback(exp, verdict, actor)
        exp = self._save(exp, verdict=verdict, expected_stage=exp.stage)
        return Step("held", exp, verdict)

    def _rollback(self, exp: Experiment, verdict: Verdict, actor: str | None) -> Step:
        entry = {"action": verdict.action, "summary": verdict.summary(), "step": "rolled_back"}
        exp = self._save(
            exp, verdict=verdict, log_entry=entry, expected_stage=exp.stage, status="rolled_back"
        )
        reg = self.registry
        if reg is not None and reg.aliases(exp.policy).get(CHALLENGER) == exp.variants.get(CHALLENGER):
            self._registry_move(
                lambda: reg.remove_alias(
                    exp.policy,
                    CHALLENGER,
                    actor=actor,
                    reason=f"experiment {exp.name} rolled back: {'; '.join(verdict.reasons)}",
                ),
                exp,
            )
        return Step("rolled_back", exp, verdict)

    def stop(self, experiment: str | Experiment, *, actor: str | None = None, reason: str = "") -> Experiment:
        """Stop a running experiment by hand: all traffic to the champion, the challenger alias removed."""
        exp = self.get(experiment) if isinstance(experiment, str) else experiment
        if exp.status != "running":
            raise ExperimentError(f"name: experiment {exp.name!r} is {exp.status} already")
        exp = self._save(
            exp,
            log_entry={"step": "stopped", "actor": actor, "reason": reason},
            expected_stage=exp.stage,
            status="stopped",
        )
        version = exp.variants.get(CHALLENGER)
        if (
            self.registry is not None
            and version
            and self.registry.aliases(exp.policy).get(CHALLENGER) == version
        ):
            reg = self.registry
            self._registry_move(
                lambda: reg.remove_alias(
                    exp.policy, CHALLENGER, actor=actor, reason=reason or f"experiment {exp.name} stopped"
                ),
                exp,
            )
        return exp


__all__ = [
    "Assignment",
    "ExperimentError",
    "ExperimentNotFound",
    "Experiments",
    "Step",
    "assign_variant",
    "bucket",
    "stage_shares",
]
