"""The loop picks its challenger on evidence: several candidates a round, the one the logs prefer kept.

Each round :func:`train_candidates` splits the logged decisions that have a reward (seeded, by
decision) into a training share and a held-out share, and trains on the training share:

- ``supervised``: the label learner on every correction and confirmation (and the base examples);
- ``supervised+<rl>``: then the bandit learner (CRM by ``benchmarks/learning.py``) on the logged
  bandit feedback, thumbs-down included, its hyperparameters chosen by
  :func:`rewardloop.learners.selection.select_and_fit` on a split of the training share.

Every candidate is scored on the held-out share by V̂_SN, exactly as the learners' own selection
scores (:func:`rewardloop.learners.selection.snips_value`; corrected rows as full information), and
by doubly robust OPE on the champion's traffic, as it would be served. The winner has the highest
V̂_SN; the OPE value breaks a tie. It is then refitted on every logged decision (as
:func:`~rewardloop.learners.selection.sweep` refits its best point) and registered; the golden set
stays the gate's, never the chooser's: it only vetoes. When the gate stops the preferred candidate,
the next one in the ranking is refitted and gated in the same round
(:func:`challengers_on_evidence`), so a round does not idle on a veto — in the demo of issue 14 the
logs preferred CRM every round and the gate stopped it on a dropped class, while the supervised
candidate would have passed. Each candidate's fit is a TrainingRun of its own
(``config.candidate``) with its figures (``valid/snips``, ``ope/dr``, ``ope/dr_lower``,
``golden_accuracy``); the registered one's run lists them all (``config.candidates``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from rewardloop.evaluation.gate import OPEComparison
from rewardloop.learners import LEARNERS
from rewardloop.learners.base import DataSpec, LearnerConfig
from rewardloop.learners.crm import crm_data_from_batch
from rewardloop.learners.selection import select_and_fit, snips_value
from rewardloop.loop.training import fit_and_record
from rewardloop.policies.classifier import ClassifierPolicy
from rewardloop.store import read_decisions
from rewardloop.types import DecisionBatch, TrainingRun

if TYPE_CHECKING:
    from rewardloop.loop.iteration import LoopRunner

#: Share of the rewarded logged decisions held out to choose between candidates.
VALID_FRACTION = 0.25
#: ``TrainingRun.config["source"]`` of a candidate's run.
CANDIDATE_SOURCE = "loop-candidate"
#: The bandit learners' hyperparameter grids, chosen on held-out logs (those of benchmarks/learning.py).
RL_GRIDS: dict[str, dict[str, list[Any]]] = {
    "crm": {"baseline": [0.4, 0.6], "max_weight": [0.0, 3.0]},
}


@dataclass
class Candidate:
    """One candidate of a round: its policy and the evidence it is chosen on."""

    name: str
    policy: ClassifierPolicy
    history: list[dict[str, float]]
    snips: float = math.nan
    ope: OPEComparison | None = None
    golden_accuracy: float = math.nan
    params: dict[str, Any] | None = None  # the bandit learner's chosen hyperparameters

    @property
    def ope_value(self) -> float:
        return self.ope.candidate.value if self.ope is not None else -math.inf

    def rank(self) -> tuple[float, float]:
        """The order candidates are chosen in: V̂_SN on held-out logs, then the OPE value."""
        return (self.snips if math.isfinite(self.snips) else -math.inf, self.ope_value)

    def figures(self) -> dict[str, float]:
        out = {"valid/snips": self.snips, "golden_accuracy": self.golden_accuracy}
        if self.ope is not None:
            out |= {"ope/dr": self.ope.candidate.value, "ope/dr_lower": self.ope.candidate.lower}
        return out

    def to_dict(self) -> dict[str, Any]:
        figures = {k: (v if math.isfinite(v) else None) for k, v in self.figures().items()}
        return {"name": self.name, "params": self.params, **figures}


def split_logged(
    logged: DecisionBatch, valid_fraction: float = VALID_FRACTION, seed: int = 0
) -> tuple[DecisionBatch, DecisionBatch]:
    """(training batch, held-out batch): a seeded share of the rewarded decisions held out.

    The training batch keeps every other decision (with its feedback): a held-out decision is in
    neither the label learner's data nor the bandit learner's.
    """
    rewarded = [d.id for d in logged if d.id in logged.rewards]
    n_valid = round(valid_fraction * len(rewarded))
    rng = np.random.default_rng(seed)
    held = {rewarded[i] for i in rng.permutation(len(rewarded))[:n_valid]}
    train = DecisionBatch([d for d in logged if d.id not in held], logged.feedback, logged.rewards)
    valid = DecisionBatch([d for d in logged if d.id in held], logged.feedback, logged.rewards)
    return train, valid


def fit_bandit(
    name: str,
    config: LearnerConfig,
    start: ClassifierPolicy,
    logged: DecisionBatch,
    params: dict[str, Any] | None,
    seed: int,
) -> tuple[ClassifierPolicy, list[dict[str, float]], dict[str, Any] | None]:
    """The bandit learner ``name`` from ``start`` on ``logged``: with ``params`` when given, else with
    its hyperparameters chosen on held-out logs (:func:`select_and_fit` over ``RL_GRIDS[name]``).

    Returns the fitted policy, its history and the parameters used (None: the config as given).
    """
    cls = LEARNERS[name]
    data = cls.data_from_batch(logged, DataSpec(config=config, labels=start.labels, embed=start.embed))
    if not len(data):
        return start, [], params
    grid = RL_GRIDS.get(name, {})
    if params is not None or not grid or len(data) < 8:
        learner = cls(dataclasses.replace(config, **(params or {})))
        return learner.fit(data, policy=start), learner.history_, params
    learner = select_and_fit(cls, config, grid, data, policy=start, seed=seed)
    return learner.policy_, learner.history_, dict(learner.selection_.params)


def score_candidates(
    candidates: Sequence[Candidate],
    valid: DecisionBatch,
    ope: Callable[[ClassifierPolicy], OPEComparison | None],
    golden: Callable[[ClassifierPolicy], float],
) -> Candidate:
    """Fill in every candidate's evidence and return the winner (highest :meth:`Candidate.rank`;
    the first of equals)."""
    for c in candidates:
        spec = DataSpec(labels=c.policy.labels, embed=c.policy.embed)
        data = crm_data_from_batch(valid, spec) if len(valid) else None
        c.snips = snips_value(c.policy, data) if data is not None and len(data) else math.nan
        c.ope = ope(c.policy)
        c.golden_accuracy = golden(c.policy)
    return max(candidates, key=Candidate.rank)


def train_candidates(
    runner: LoopRunner, logged: DecisionBatch, champion_logs: DecisionBatch
) -> tuple[list[Candidate], Candidate]:
    """Train the round's candidates on the training share of ``logged``, score them (see the module)
    on its held-out share and by OPE on ``champion_logs``; returns them all and the winner."""
    train, valid = split_logged(logged, VALID_FRACTION, runner.seed)
    data = runner.labelled_data(train)
    base = runner.fit_supervised(data.texts, data.labels, data.sample_weight)
    candidates = [Candidate(runner.label_learner, base, list(runner.history_))]
    rl = runner.rl_learner
    if rl is not None:
        config = runner.rl_config or LEARNERS[rl].config_class.from_dict({"seed": runner.seed})
        fitted, history, params = fit_bandit(rl, config, base, train, None, runner.seed)
        if isinstance(fitted, ClassifierPolicy) and fitted is not base:  # DQN learns a gate instead
            fitted._encoder = base._encoder
            candidates.append(Candidate(f"{runner.label_learner}+{rl}", fitted, history, params=params))
    winner = score_candidates(
        candidates,
        valid,
        ope=lambda p: runner.ope(p, champion_logs),
        golden=lambda p: runner.evaluate(p, "candidate").accuracy,
    )
    return candidates, winner


def record_candidates(runner: LoopRunner, candidates: Sequence[Candidate], winner: Candidate) -> None:
    """One TrainingRun per candidate (``config.candidate``, ``config.chosen``) with its figures and
    history; its artifact under ``artifacts/candidates/`` (only the winner's refit is registered)."""
    version = runner._next_version()
    for c in candidates:
        run = TrainingRun(
            policy=runner.policy,
            learner=f"{c.name} (candidate)",
            config={
                "source": CANDIDATE_SOURCE,
                "candidate": c.name,
                "chosen": c is winner,
                "params": c.params,
            },
            n_samples=0,
        )
        fit_and_record(
            runner.store,
            run,
            lambda c=c: (c.policy, c.history),  # type: ignore[misc]
            runner.artifacts / "candidates" / f"{runner.policy}-{version}-{c.name.replace('+', '-')}",
            evaluate=lambda _p, c=c: {k: v for k, v in c.figures().items() if math.isfinite(v)},  # type: ignore[misc]
        )


def challengers_on_evidence(
    runner: LoopRunner, since: datetime | None, champion_logs: DecisionBatch
) -> Iterator[tuple[ClassifierPolicy, str, list[Candidate]]]:
    """Train the round's candidates and record them; then, best ranked first, refit each on every
    logged decision and register it (its run lists every candidate's figures), yielding it, its
    version and the candidates. The caller gates each and stops at the first that passes: the
    ranking is the held-out logs' and OPE's, the golden set only vetoes (the gate), so a round
    whose preferred candidate the gate stops still offers the next one instead of idling."""
    logged = read_decisions(
        runner.store, policy=runner.policy, since=since, include_feedback=True, reward_spec=runner.spec.key
    )
    candidates, winner = train_candidates(runner, logged, champion_logs)
    record_candidates(runner, candidates, winner)
    ranked = sorted(candidates, key=Candidate.rank, reverse=True)  # stable: the first of equals first
    ranked.remove(winner)
    for c in [winner, *ranked]:
        policy, version = refit(runner, since, c, candidates)
        yield policy, version, candidates


def refit(
    runner: LoopRunner, since: datetime | None, chosen: Candidate, candidates: Sequence[Candidate]
) -> tuple[ClassifierPolicy, str]:
    """``chosen`` refitted on every logged decision and registered; returns it and its version."""
    winner = chosen
    bandit = winner.name != runner.label_learner
    config = None
    if bandit and winner.params and runner.rl_learner is not None:
        base = runner.rl_config or LEARNERS[runner.rl_learner].config_class.from_dict({"seed": runner.seed})
        config = dataclasses.replace(base, **winner.params)
    policy, version, _ = runner.train_challenger(
        since=since,
        rl=bandit,
        rl_config=config,
        record={"chosen": winner.name, "candidates": [c.to_dict() for c in candidates]},
    )
    return policy, version


__all__ = [
    "RL_GRIDS",
    "VALID_FRACTION",
    "Candidate",
    "challengers_on_evidence",
    "fit_bandit",
    "refit",
    "score_candidates",
    "split_logged",
    "train_candidates",
]
