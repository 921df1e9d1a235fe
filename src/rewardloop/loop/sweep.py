"""Hyperparameter sweeps of any classifier learner, on the local backend or as Ray Tune trials.

``rewardloop sweep`` (and :func:`run_sweep`) does, for the ``training`` section of the project:

1. read the training window once (:func:`rewardloop.loop.training.read_window`) and split its
   decisions into a training and a validation split (:func:`split_batch`: a seeded hash of each
   decision id, so a decision stays on its side as the log grows); feedback from the golden set
   never enters the validation split (the golden set is the release gate's, not the sweep's);
2. build both splits' data once on the driver (embeddings included) and draw the trials from the
   search space with the sweep's seed (:mod:`rewardloop.learners.search_space`);
3. fit every trial through the one training path (:func:`rewardloop.loop.training.train_plan`) on
   the training split, with the trial's hyperparameters, and score it on the validation split
   (:func:`rewardloop.evaluation.validation.validation_scores`, ``val/score``);
4. record every trial as a TrainingRun (its hyperparameters and search space under
   ``config.sweep``, ``val/score`` in its metrics, ``sweep/best`` 1 on the best one, 0 elsewhere).

Where the trials run is the compute backend's (:meth:`ComputeBackend.map_trials`): one after another
here, or as Ray Tune trials (each with ``threads_per_worker`` CPUs, ``workers`` at once). Every trial
sets torch to ``threads_per_worker`` threads on both backends and reads the same arrays, so the same
seed gives the same trials with the same scores on both (tested to equality).
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from rewardloop.evaluation.validation import SCORE, ValidationError, validation_scores
from rewardloop.learners import LabelledData, LearnerConfigError
from rewardloop.learners.search_space import SearchSpace
from rewardloop.loop.compute import ComputeBackend
from rewardloop.loop.training import (
    TrainingError,
    TrainingPlan,
    build_data,
    data_window,
    plan_run,
    start_labels,
    train_plan,
)
from rewardloop.policies.classifier import ClassifierPolicy
from rewardloop.store import Store, finish_run, start_run
from rewardloop.types import DecisionBatch, TrainingRun, new_id


class SweepError(ValueError):
    """The sweep cannot run as asked; the message names the option or the count."""


#: Classifier learners whose result no validation score reads, and why.
UNSCORED = {
    "dqn": "its result is an abstain gate, not a classifier; tune its thresholds with `rewardloop train`"
}


def split_batch(batch: DecisionBatch, share: float, seed: int) -> tuple[DecisionBatch, DecisionBatch]:
    """(training, validation) decisions of ``batch``: a decision is validation when the hash of
    ``seed:id`` falls below ``share``. The validation split keeps no golden-set feedback."""
    if not 0.0 < share < 1.0:
        raise SweepError(f"validation_share: must be in (0, 1), got {share}")
    train: list[Any] = []
    val: list[Any] = []
    for d in batch.decisions:
        h = int.from_bytes(hashlib.sha256(f"{seed}:{d.id}".encode()).digest()[:8], "big") / 2.0**64
        (val if h < share else train).append(d)

    def part(decisions: list[Any], golden: bool) -> DecisionBatch:
        ids = {d.id for d in decisions}
        feedback = {
            k: [f for f in v if golden or f.source != "golden"] for k, v in batch.feedback.items() if k in ids
        }
        return DecisionBatch(decisions, feedback, {k: v for k, v in batch.rewards.items() if k in ids})

    return part(train, True), part(val, False)


class TableEncoder:
    """Stands in for the encoder in the trials: the driver's embeddings of the data's texts, by text.

    A trial then loads no model (a Ray worker would otherwise load MiniLM for each trial) and every
    trial, on every backend, reads the very same vectors.
    """

    def __init__(self, texts: Sequence[str], vectors: npt.NDArray[np.float32]) -> None:
        self.table = {t: v for t, v in zip(texts, vectors, strict=True)}
        self.dim = int(vectors.shape[1]) if vectors.ndim == 2 else 0

    def encode(self, texts: Sequence[str], progress: Any = None) -> npt.NDArray[np.float32]:
        try:
            rows = [self.table[t] for t in texts]
        except KeyError as err:
            raise TrainingError(f"sweep: no embedding for the text {err.args[0]!r}") from None
        return np.stack(rows) if rows else np.zeros((0, self.dim), np.float32)


@dataclass(frozen=True)
class SweepJob:
    """What every trial reads (shipped once to Ray's object store): the plan, both splits' data, the
    start policy, the trials' hyperparameters and their TrainingRuns."""

    plan: TrainingPlan
    train: Any
    validation: Any
    policy: Any
    window: tuple[datetime | None, datetime | None]
    dump: Mapping[str, Any]
    trials: list[dict[str, Any]]
    runs: list[TrainingRun]
    threads: int


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """torch on ``n`` threads inside the block (the same on every backend, so results match)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def run_trial(job: SweepJob, i: int) -> dict[str, Any]:
    """Fit and score trial ``i``; a JSON-able outcome (a failed fit is an outcome, not an error)."""
    started = time.time()
    try:
        with torch_threads(job.threads):
            config = dataclasses.replace(job.plan.config, **job.trials[i])  # validates the trial
            plan = dataclasses.replace(job.plan, config=config)
            outcome = train_plan(
                None,
                plan,
                job.train,
                job.policy,
                job.window,
                job.dump,
                run=job.runs[i],
                evaluate=lambda fitted: validation_scores(fitted, job.validation),
            )
    except Exception as err:  # one bad trial (a diverging learning rate) must not stop the sweep
        return {"trial": i, "status": "failed", "error": f"{type(err).__name__}: {err}", "started": started}
    metrics = {k: float(v) for k, v in outcome.metrics.items()}
    return {
        "trial": i,
        "status": "succeeded",
        "metrics": metrics,
        "artifact": str(outcome.artifact),
        "started": started,
    }


@dataclass(frozen=True)
class TrialResult:
    """One trial: its hyperparameters, how it went, its validation score and TrainingRun."""

    trial: int
    hyperparameters: dict[str, Any]
    status: str
    score: float | None
    run: TrainingRun
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if k != "run"} | {"run": self.run.id}


@dataclass(frozen=True)
class SweepResult:
    """All trials, in trial order, and the index of the best (highest ``val/score``)."""

    sweep_id: str
    trials: list[TrialResult]
    best: int
    backend: str
    seconds: float
    n_train: int
    n_validation: int
    space: dict[str, str] = field(default_factory=dict)

    @property
    def best_trial(self) -> TrialResult:
        return self.trials[self.best]

    def scores(self) -> list[float | None]:
        return [t.score for t in self.trials]


def prepare_job(
    plan: TrainingPlan,
    batch: DecisionBatch,
    policy: Any,
    trials: list[dict[str, Any]],
    *,
    validation_share: float,
    seed: int,
    threads: int,
    training_dump: Mapping[str, Any],
    sweep_config: Mapping[str, Any],
) -> SweepJob:
    """Split the batch, build both splits' data and the trials' TrainingRuns (see the module docstring)."""
    if plan.policy.kind != "classifier":
        raise SweepError(
            f"training.policy: a sweep trains classifier policies; "
            f"{plan.policy.name!r} is a {plan.policy.kind}"
        )
    if plan.learner in UNSCORED:
        raise SweepError(f"training.learner: a sweep cannot score {plan.learner}: {UNSCORED[plan.learner]}")
    train_batch, val_batch = split_batch(batch, validation_share, seed)
    train = build_data(plan, train_batch, policy)
    validation = build_data(plan, val_batch, policy)
    if len(train) < max(1, plan.min_feedback):
        raise SweepError(
            f"training.min_feedback: {len(train)} training examples in the training split, "
            f"fewer than the {max(1, plan.min_feedback)} required"
        )
    if len(validation) == 0:
        raise SweepError(
            f"validation_share: no validation examples among {len(val_batch)} held-out decisions; "
            "raise the share or log more feedback"
        )
    start = trial_policy(plan, train, validation, policy)
    window = data_window(plan, batch)
    runs = []
    for i, hyper in enumerate(trials):
        try:
            config = dataclasses.replace(plan.config, **hyper)
        except LearnerConfigError as err:
            raise SweepError(f"trial {i} ({hyper}): {err}") from None
        trial_plan = dataclasses.replace(plan, config=config)
        extra = {"sweep": {**sweep_config, "trial": i, "hyperparameters": hyper}}
        runs.append(plan_run(trial_plan, train, window, training_dump, extra))
    return SweepJob(plan, train, validation, start, window, training_dump, trials, runs, threads)


def trial_policy(plan: TrainingPlan, train: Any, validation: Any, policy: ClassifierPolicy | None) -> Any:
    """The start policy the trials share; for labelled data its encoder is a :class:`TableEncoder` of
    both splits' texts, embedded here once (a LoRA learner embeds itself: it keeps the encoder)."""
    start = start_labels(plan, train) if policy is None else policy
    if plan.learner_cls.reads_texts or not isinstance(train, LabelledData):
        return start
    texts = list(dict.fromkeys([*train.texts, *validation.texts]))
    shared = copy.copy(start)
    shared._encoder = cast(Any, TableEncoder(texts, start.embed(texts)))
    return shared


def run_sweep(
    store: Store,
    plan: TrainingPlan,
    batch: DecisionBatch,
    policy: Any,
    space: SearchSpace,
    backend: ComputeBackend,
    *,
    n_trials: int,
    seed: int,
    validation_share: float = 0.2,
    training_dump: Mapping[str, Any] | None = None,
) -> SweepResult:
    """Run ``n_trials`` trials of ``space`` on ``backend`` and record each as a TrainingRun.

    ``policy`` is the plan's start policy (:func:`rewardloop.loop.training.start_policy`).
    """
    if space.config_class is not type(plan.config):
        raise SweepError(
            f"space: drawn for {space.config_class.__name__}, the learner's is {type(plan.config).__name__}"
        )
    t0 = time.perf_counter()
    trials = space.sample(n_trials, seed)
    sweep_id = new_id()
    sweep_config = {
        "id": sweep_id,
        "seed": seed,
        "n_trials": n_trials,
        "space": space.to_dict(),
        "validation_share": validation_share,
        "metric": SCORE,
        "backend": backend.name,
    }
    job = prepare_job(
        plan,
        batch,
        policy,
        trials,
        validation_share=validation_share,
        seed=seed,
        threads=backend.config.threads_per_worker,
        training_dump=training_dump or {},
        sweep_config=sweep_config,
    )
    outcomes = backend.map_trials(run_trial, job, n_trials)
    results = record_trials(store, job, outcomes)
    ok = [t for t in results if t.score is not None]
    if not ok:
        raise SweepError(f"every trial failed; the first: {results[0].error}")
    best = next(t.trial for t in ok if t.run.metrics["sweep/best"] == 1.0)
    return SweepResult(
        sweep_id,
        results,
        best,
        backend.name,
        time.perf_counter() - t0,
        len(job.train),
        len(job.validation),
        space.to_dict(),
    )


def record_trials(store: Store, job: SweepJob, outcomes: list[dict[str, Any]]) -> list[TrialResult]:
    """Record each outcome as its trial's TrainingRun; ``sweep/best`` marks the highest score."""
    scores = [float(o["metrics"][SCORE]) if o["status"] == "succeeded" else None for o in outcomes]
    valid = [(s, -i) for i, s in enumerate(scores) if s is not None]
    best = -max(valid)[1] if valid else -1
    results = []
    for i, o in enumerate(outcomes):
        run = dataclasses.replace(job.runs[i], started_at=datetime.fromtimestamp(o["started"], UTC))
        start_run(store, run)
        if o["status"] == "succeeded":
            metrics = {**o["metrics"], "sweep/best": float(i == best)}
            done = finish_run(store, run, metrics, artifact_path=o["artifact"])
        else:
            done = finish_run(store, run, {"sweep/best": 0.0}, status="failed")
        results.append(TrialResult(i, job.trials[i], o["status"], scores[i], done, o.get("error")))
    return results


__all__ = [
    "SweepError",
    "SweepJob",
    "SweepResult",
    "TableEncoder",
    "TrialResult",
    "ValidationError",
    "prepare_job",
    "record_trials",
    "run_sweep",
    "run_trial",
    "split_batch",
]
