"""Rolling a champion back while experiments run: the experiments stop first, then the alias moves.

A running experiment serves its recorded champion version (and a challenger) whatever the alias says,
so a rollback that left it running would change nothing that is served. :func:`rollback_champion`
checks that the rollback can happen (a version to return to, its artifact intact), stops each running
experiment of the policy with the rollback as its logged reason (which also removes the ``challenger``
alias, recorded in the alias history), and only then moves the champion. Each of these moves bumps the
policy's alias counter, which tells every serving worker to drop what it cached.
"""

from __future__ import annotations

from dataclasses import dataclass

from rewardloop.loop.experiments import Experiments
from rewardloop.registry import CHAMPION, Registry
from rewardloop.types import AliasEvent, Experiment


@dataclass(frozen=True)
class RollbackOutcome:
    """The champion's move, and the experiments it stopped (in the state they were stopped in)."""

    event: AliasEvent
    stopped: tuple[Experiment, ...]

    def summary(self) -> str:
        e = self.event
        text = f"{e.policy}@{e.alias}: {e.from_version} → {e.to_version} (rolled back)"
        if self.stopped:
            text += f"; stopped experiment(s) {', '.join(x.name for x in self.stopped)}"
        return text


def rollback_champion(
    registry: Registry,
    experiments: Experiments,
    policy: str,
    *,
    actor: str | None = None,
    reason: str = "",
    alias: str = CHAMPION,
) -> RollbackOutcome:
    """Stop ``policy``'s running experiments, then roll ``alias`` back one step.

    Refused (nothing stopped, nothing moved) when there is nothing to roll back to or the previous
    version's artifact does not verify.
    """
    current = registry.aliases(policy).get(alias)
    target = registry.previous(policy, alias)
    if current is None or target is None:  # the registry refuses it, saying why
        return RollbackOutcome(registry.rollback(policy, actor=actor, reason=reason, alias=alias), ())
    registry.verify(registry.get(policy, target))
    why = f"{policy}@{alias} rolled back {current} → {target}" + (f": {reason}" if reason else "")
    stopped = tuple(
        experiments.stop(exp, actor=actor, reason=why)
        for exp in experiments.list(policy=policy, status="running")
    )
    if stopped:
        names = ", ".join(x.name for x in stopped)
        reason = f"{reason}; " if reason else ""
        reason += f"stopped running experiment(s) {names}"
    event = registry.rollback(policy, actor=actor, reason=reason, alias=alias)
    return RollbackOutcome(event, stopped)


__all__ = ["RollbackOutcome", "rollback_champion"]
