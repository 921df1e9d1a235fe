"""One orchestration for every learner: resolve the config, read the window, build the data, fit,
save, record the TrainingRun (metrics and history), optionally register.

``rewardloop train``, ``rewardloop router train`` / ``train-gating``, ``rewardloop rm train``, the
reward-model helpers of :mod:`rewardloop.loop.reward_models` and the loop's challenger
(:class:`rewardloop.loop.iteration.LoopRunner`) all end in :func:`fit_and_record`; the classifier
learners of ``learners.LEARNERS`` and the generator learners of ``learners.GENERATOR_LEARNERS`` (the
map is the policy kind's) get there through :func:`resolve_plan` → :func:`read_window` →
:func:`build_data` → :func:`train_plan`.

What every run records: the config, the data window, the number of examples, the rows the data
builder skipped (``skipped/<reason>``, so that one bad correction does not stop training), the last
value of every ``history_`` key (``train/loss``, ``train/approx_kl``, ``train/clip_fraction``...),
and the whole history in ``training_history.json`` beside the artifact.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from rewardloop.config import ConfigError, ProjectConfig
from rewardloop.config.faults import fault_point
from rewardloop.config.sections import PolicyConfig, RewardSpecConfig
from rewardloop.learners import GENERATOR_LEARNERS, LEARNERS, SET_LEARNERS, LabelledData, learners_for
from rewardloop.learners.base import DataSpec, LearnerConfig, LearnerConfigError, resolve_config
from rewardloop.learners.data import LabelLearner
from rewardloop.learners.multilabel import SetData
from rewardloop.policies.classifier import ClassifierPolicy
from rewardloop.policies.encoder_head import EncoderHeadPolicy
from rewardloop.policies.generator import GeneratorPolicy
from rewardloop.policies.multilabel import MultiLabelPolicy
from rewardloop.store import Store, finish_run, read_decisions, start_run
from rewardloop.types import DecisionBatch, TimeWindow, TrainingRun, to_utc, utcnow
from rewardloop.types.history import summarise

HISTORY_FILE = "training_history.json"


class TrainingError(ValueError):
    """Training cannot run as configured or on this data; the message names the key or the count."""


@dataclass
class TrainingOutcome:
    """What one training run produced: the fitted policy, its run record, metrics and artifact."""

    fitted: Any
    run: TrainingRun
    metrics: dict[str, float]
    artifact: Path
    history: list[dict[str, float]] = field(default_factory=list)
    version: str | None = None


def skipped_metrics(skipped: Mapping[str, int]) -> dict[str, float]:
    """``{"skipped/<reason>": n}`` for the TrainingRun (rows the data builder could not use)."""
    return {f"skipped/{reason}": float(n) for reason, n in sorted(skipped.items()) if n}


def fit_and_record(
    store: Store | None,
    run: TrainingRun,
    fit: Callable[[], tuple[Any, list[dict[str, float]]]],
    out: Path,
    *,
    skipped: Mapping[str, int] | None = None,
    evaluate: Callable[[Any], Mapping[str, float]] | None = None,
    register: Callable[[Any, Path, TrainingRun, dict[str, float]], str] | None = None,
) -> TrainingOutcome:
    """Start ``run``, ``fit()`` → (fitted, history), save it to ``out``, register it, finish the run.

    The metrics are the last value of every history key, ``n_samples``, ``seconds``, the skipped
    rows and ``evaluate(fitted)``. ``register(fitted, folder, run, metrics)`` returns the registered
    version. Any failure marks the run ``failed`` (with the skipped counts) and re-raises: no run
    stays ``running``.
    """
    extra = skipped_metrics(skipped or {})
    if store is not None:
        start_run(store, run)
    try:
        started = time.perf_counter()
        fitted, history = fit()
        seconds = time.perf_counter() - started
        metrics = {**summarise(history), "n_samples": float(run.n_samples), "seconds": round(seconds, 3)}
        metrics |= extra
        if evaluate is not None:
            metrics |= {k: float(v) for k, v in evaluate(fitted).items()}
        folder = Path(fitted.save(out) or out)
        (folder / HISTORY_FILE).write_text(json.dumps(history))
        fault_point("trained")
        version = register(fitted, folder, run, metrics) if register is not None else None
        fault_point("registered")
    except BaseException:
        if store is not None:
            finish_run(store, run, extra, status="failed")
        raise
    done = finish_run(store, run, metrics, artifact_path=str(folder)) if store is not None else run
    return TrainingOutcome(fitted, done, metrics, folder, history, version)


# ------------------------------------------------------------------------ classifier learners, by config


@dataclass(frozen=True)
class TrainingPlan:
    """The resolved ``training`` section: the learner, its config, the policy, the data window."""

    learner: str
    learner_cls: Any
    config: LearnerConfig
    ignored: list[str]
    policy: PolicyConfig
    spec: RewardSpecConfig | None
    window: TimeWindow
    min_feedback: int
    max_episodes: int | None
    init_from: Path | None
    output_dir: Path


def resolve_plan(
    cfg: ProjectConfig,
    base: Path,
    *,
    window: TimeWindow = TimeWindow(),
    now: datetime | None = None,
) -> TrainingPlan:
    """Check and resolve the ``training`` section; a TrainingError naming the key otherwise.

    An open ``window.since`` becomes ``now - training.lookback_days`` when that is set.
    """
    training = cfg.training
    if not any(training.learner in m for m in (LEARNERS, GENERATOR_LEARNERS, SET_LEARNERS)):
        raise TrainingError(
            f"training.learner: unknown learner {training.learner!r} (known: {', '.join(LEARNERS)}; "
            f"for generator policies: {', '.join(GENERATOR_LEARNERS)}; for set policies: "
            f"{', '.join(SET_LEARNERS)})"
        )
    if not cfg.policies:
        raise TrainingError(
            "policies: no policy is defined; add one to the project file (see `rewardloop init`)"
        )
    try:
        policy = cfg.policy(training.policy)
        spec = cfg.reward_spec(training.reward_spec) if training.reward_spec else None
    except ConfigError as err:
        raise TrainingError(
            f"training.{'policy' if 'policies' in str(err) else 'reward_spec'}: {err}"
        ) from None
    cls = _learner_class(training.learner, policy)
    try:
        config, ignored = resolve_config(cls.config_class, training)
    except LearnerConfigError as err:
        raise TrainingError(str(err)) from None
    if cls.needs_rewards and spec is None:
        known = ", ".join(s.name for s in cfg.rewards) or "none defined"
        raise TrainingError(
            f"training.reward_spec: the {training.learner} learner learns from compiled rewards; "
            f"name a reward spec (known: {known})"
        )
    if window.since is None and training.lookback_days is not None:
        since = to_utc(now or utcnow()) - timedelta(days=training.lookback_days)
        if window.until is not None and window.until < since:
            raise TrainingError(
                f"training.lookback_days: {training.lookback_days:g} days back is {since:%Y-%m-%d %H:%M}, "
                f"after the window's end ({window.until})"
            )
        window = TimeWindow(since, window.until)
    init = Path(training.init_from) if training.init_from else None
    out = Path(training.output_dir)
    return TrainingPlan(
        learner=training.learner,
        learner_cls=cls,
        config=config,
        ignored=ignored,
        policy=policy,
        spec=spec,
        window=window,
        min_feedback=training.min_feedback,
        max_episodes=training.max_episodes,
        init_from=None if init is None else (init if init.is_absolute() else base / init),
        output_dir=out if out.is_absolute() else base / out,
    )


def _learner_class(name: str, policy: PolicyConfig) -> Any:
    """The learner ``name`` for ``policy``'s kind: a TrainingError when that kind has no such learner."""
    if policy.kind in ("router", "reranker"):
        command = "router train" if policy.kind == "router" else "rm train"
        raise TrainingError(
            f"training.policy: {policy.name!r} is a {policy.kind}; `rewardloop train` trains classifiers "
            f"and generators (a {policy.kind} trains with `rewardloop {command}`)"
        )
    learners = learners_for(policy.kind)
    if name not in learners:
        other = next(k for k in ("classifier", "generator", "set") if name in learners_for(k))
        raise TrainingError(
            f"training.learner: {name!r} trains {other} policies and {policy.name!r} is a {policy.kind} "
            f"(learners of a {policy.kind}: {', '.join(learners)})"
        )
    return learners[name]


def start_policy(plan: TrainingPlan) -> ClassifierPolicy | GeneratorPolicy | MultiLabelPolicy | None:
    """``training.init_from`` loaded, a fresh policy over the configured labels, or None."""
    if plan.init_from is not None:
        try:
            if plan.policy.kind == "generator":
                return GeneratorPolicy.load(plan.init_from)
            if plan.policy.kind == "set":
                return MultiLabelPolicy.load(plan.init_from)
            return ClassifierPolicy.load(plan.init_from)
        except (FileNotFoundError, ValueError, KeyError, OSError) as err:
            raise TrainingError(
                f"training.init_from: cannot load a policy from {plan.init_from}: {err}"
            ) from None
    if plan.learner_cls.needs_policy:
        raise TrainingError(
            f"training.init_from: the {plan.learner} learner improves a trained policy; "
            "set it to a saved policy folder (e.g. one from `rewardloop train --learner "
            f"{'set_supervised' if plan.policy.kind == 'set' else 'supervised'}`)"
        )
    if not plan.policy.labels:
        return None
    if plan.policy.kind == "set":
        return MultiLabelPolicy(plan.policy.labels, name=plan.policy.name)
    return ClassifierPolicy(plan.policy.labels, name=plan.policy.name)


def read_window(store: Store, plan: TrainingPlan) -> DecisionBatch:
    """The policy's decisions in the window with feedback (and rewards); the newest ``max_episodes``."""
    batch = read_decisions(
        store,
        policy=plan.policy.name,
        since=plan.window.since,
        until=plan.window.until,
        kind=plan.policy.kind,
        include_feedback=True,
        reward_spec=(plan.spec.name, plan.spec.version) if plan.spec is not None else None,
    )
    if plan.max_episodes is not None and len(batch) > plan.max_episodes:
        kept = list(batch.decisions)[-plan.max_episodes :]
        ids = {d.id for d in kept}
        batch = DecisionBatch(
            kept,
            {k: v for k, v in batch.feedback.items() if k in ids},
            {k: v for k, v in batch.rewards.items() if k in ids},
        )
    return batch


def data_window(plan: TrainingPlan, batch: DecisionBatch) -> tuple[datetime | None, datetime | None]:
    """The window a run records: the plan's, an open end closed by the first or last decision read."""
    created = [d.created_at for d in batch]
    return (
        plan.window.since or (min(created) if created else None),
        plan.window.until or (max(created) if created else None),
    )


def build_data(plan: TrainingPlan, batch: DecisionBatch, policy: Any, embed: Any = None) -> Any:
    """The learner's data from the batch (``data_from_batch``); ``embed`` overrides the policy's.

    A classifier's (or set policy's) labels and encoder reach the spec; a generator's learners read
    texts themselves.
    """
    classifier = policy if isinstance(policy, EncoderHeadPolicy) else None
    spec = DataSpec(
        config=plan.config,
        labels=classifier.labels if classifier is not None else None,
        embed=embed if embed is not None else (classifier.embed if classifier is not None else None),
    )
    try:
        return plan.learner_cls.data_from_batch(batch, spec)
    except ValueError as err:
        raise TrainingError(f"data: {err}") from None


def check_enough(plan: TrainingPlan, data: Any) -> None:
    """Refuse to train on fewer than ``training.min_feedback`` examples, saying how many there are."""
    n = len(data)
    if n == 0:
        raise TrainingError(
            "data: no training examples in the window (supervised learners need label corrections or "
            "confirmations; RL learners need decisions with compiled rewards)"
        )
    if n < plan.min_feedback:
        raise TrainingError(
            f"training.min_feedback: {n} training examples in the window, fewer than the {plan.min_feedback} "
            "required; wait for more feedback or lower min_feedback"
        )


def plan_run(
    plan: TrainingPlan,
    data: Any,
    window: tuple[datetime | None, datetime | None],
    training_dump: Mapping[str, Any],
    extra_config: Mapping[str, Any] | None = None,
) -> TrainingRun:
    """The TrainingRun of fitting ``plan`` on ``data``: the training section, the learner's config
    (and ``extra_config``, e.g. a sweep's trial), the window and the number of examples."""
    config = {"training": dict(training_dump), "learner": dataclasses.asdict(plan.config)}
    return TrainingRun(
        policy=plan.policy.name,
        learner=plan.learner,
        config=config | dict(extra_config or {}),
        data_window=window,
        n_samples=len(data),
    )


def start_labels(plan: TrainingPlan, data: Any) -> ClassifierPolicy | MultiLabelPolicy:
    """A fresh policy over the labels seen in ``data`` (when no labels are configured): a set policy
    over the label space of set data, a classifier over the distinct labels otherwise."""
    try:
        if isinstance(data, SetData):
            return MultiLabelPolicy(data.labels, name=plan.policy.name)
        return ClassifierPolicy(sorted(set(data.labels)), name=plan.policy.name)
    except ValueError as err:
        raise TrainingError(f"policies.labels: none configured, and the data gives: {err}") from None


def train_plan(
    store: Store | None,
    plan: TrainingPlan,
    data: Any,
    policy: ClassifierPolicy | GeneratorPolicy | MultiLabelPolicy | None,
    window: tuple[datetime | None, datetime | None],
    training_dump: Mapping[str, Any],
    progress: Any = None,
    *,
    run: TrainingRun | None = None,
    evaluate: Callable[[Any], Mapping[str, float]] | None = None,
) -> TrainingOutcome:
    """Fit the plan's learner on ``data`` from ``policy``; save and record it (see :func:`fit_and_record`).

    ``run`` defaults to :func:`plan_run`; ``evaluate(fitted)`` to the training accuracy. With
    ``store=None`` nothing is recorded (a sweep's trial: the driver records it).
    """
    start = start_labels(plan, data) if policy is None else policy
    record = run if run is not None else plan_run(plan, data, window, training_dump)

    def fit() -> tuple[Any, list[dict[str, float]]]:
        learner = plan.learner_cls(plan.config, progress=progress)
        fitted = learner.fit(data, policy=start)
        fitted.name, fitted.version = plan.policy.name, record.id[:12]
        return fitted, list(learner.history_)

    return fit_and_record(
        store,
        record,
        fit,
        plan.output_dir / plan.policy.name / record.id,
        skipped=data.skipped,
        evaluate=evaluate if evaluate is not None else (lambda fitted: train_accuracy(fitted, data)),
    )


#: Labelled-file errors shown before the rest are counted ("... and N more").
MAX_SHOWN_ERRORS = 20


def read_labelled(path: Path, labels: Sequence[str] | None = None) -> LabelledData:
    """Plain labelled examples from a JSON-lines or CSV file: ``{"text", "label"}`` a row, with an
    optional positive ``weight`` (default 1) — what ``rewardloop train --from-labels`` trains on.

    Every row is checked; a TrainingError lists the bad ones by row, counted from 1 (the first data row
    of a CSV file is row 1), and the field: a missing or empty text or label, a label not in
    ``labels`` (the policy's configured labels, when given), a weight that is not a positive number.

    >>> import tempfile, pathlib
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "l.jsonl"
    >>> rows = ['{"text": "hi", "label": "greet"}', '{"text": "bye", "label": "leave", "weight": 2}']
    >>> _ = f.write_text("\\n".join(rows))
    >>> data = read_labelled(f)
    >>> data.labels, data.sample_weight.tolist()
    (['greet', 'leave'], [1.0, 2.0])
    """
    from rewardloop.store.files import FileFormatError, file_format, read_rows

    texts: list[str] = []
    names: list[str] = []
    weights: list[float] = []
    bad: list[str] = []
    known = set(labels) if labels else None
    try:
        fmt = file_format(path)
        if fmt not in ("jsonl", "csv"):
            raise TrainingError(f"--from-labels: {path.name}: give a .jsonl or .csv file, not {fmt}")
        for n, row in enumerate(read_rows(path, fmt), start=1):
            problem = _labelled_problem(row, known)
            if problem is not None:
                bad.append(f"{path.name} row {n}: {problem}")
                continue
            texts.append(str(row["text"]))
            names.append(str(row["label"]))
            weights.append(float(row.get("weight") or 1.0))
    except (FileFormatError, UnicodeDecodeError) as err:
        raise TrainingError(f"--from-labels: {err}") from None
    if bad:
        more = f"\n  ... and {len(bad) - MAX_SHOWN_ERRORS} more" if len(bad) > MAX_SHOWN_ERRORS else ""
        shown = "\n  ".join(bad[:MAX_SHOWN_ERRORS])
        raise TrainingError(f"--from-labels: {len(bad)} invalid row(s), nothing trained:\n  {shown}{more}")
    return LabelledData(texts, names, np.asarray(weights, dtype=np.float64))


def _labelled_problem(row: Mapping[str, Any], known: set[str] | None) -> str | None:
    """What is wrong with one labelled row (the field first), or None."""
    for key in ("text", "label"):
        value = row.get(key)
        if not isinstance(value, str | int) or isinstance(value, bool) or not str(value).strip():
            return f"{key}: must be a non-empty string, got {value!r}"
    if known is not None and str(row["label"]) not in known:
        return f"label: {row['label']!r} is not one of the policy's labels ({', '.join(sorted(known))})"
    weight = row.get("weight")
    if weight not in (None, ""):
        try:
            w = float(weight)
        except (TypeError, ValueError):
            w = float("nan")
        if not np.isfinite(w) or w <= 0:
            return f"weight: must be a positive number, got {weight!r}"
    return None


def check_label_learner(name: str) -> None:
    """Refuse ``--from-labels`` with a learner that does not learn from labelled examples."""
    if not issubclass(LEARNERS.get(name, object), LabelLearner):
        label_learners = [n for n, c in LEARNERS.items() if issubclass(c, LabelLearner)]
        raise TrainingError(
            f"training.learner: --from-labels trains a classifier with a supervised learner "
            f"({', '.join(label_learners)}), not {name!r}"
        )


def train_from_labels(
    store: Store,
    plan: TrainingPlan,
    data: LabelledData,
    policy: ClassifierPolicy | None,
    training_dump: Mapping[str, Any],
    source: Path,
    progress: Any = None,
) -> TrainingOutcome:
    """A first model from plain labelled examples (:func:`read_labelled`), through :func:`train_plan`:
    the same learner, artifact and TrainingRun as a run on logged feedback; the run's config names the
    file (``training.from_labels``) and its data window is empty (no logged decisions were read)."""
    check_label_learner(plan.learner)
    check_enough(plan, data)
    dump = {**training_dump, "from_labels": str(source)}
    return train_plan(store, plan, data, policy, (None, None), dump, progress=progress)


def train_accuracy(fitted: Any, data: Any) -> dict[str, float]:
    """``train_accuracy`` of a classifier on its labelled training data (weighted); a set policy's
    ``train_micro_f1`` against the sets its raters hold right; nothing otherwise."""
    if isinstance(data, SetData) and isinstance(fitted, MultiLabelPolicy):
        emb = (
            fitted.embed(list(data.X)) if isinstance(data.X, list | tuple) else np.asarray(data.X, np.float32)
        )
        chosen = fitted.predict_embeddings(emb)  # (n, L)
        truth = (data.Y >= 0.5) & (data.mask > 0)
        tp, fp, fn = (chosen & truth).sum(), (chosen & ~truth).sum(), (~chosen & truth).sum()
        return {"train_micro_f1": float(2 * tp / max(2 * tp + fp + fn, 1))}
    if not isinstance(data, LabelledData) or not isinstance(fitted, ClassifierPolicy):
        return {}
    pred = fitted.predict(data.texts)
    hit = np.array([p == t for p, t in zip(pred, data.labels, strict=True)], dtype=float)
    return {"train_accuracy": float(np.average(hit, weights=data.sample_weight))}


__all__ = [
    "HISTORY_FILE",
    "TrainingError",
    "TrainingOutcome",
    "TrainingPlan",
    "build_data",
    "check_enough",
    "check_label_learner",
    "data_window",
    "fit_and_record",
    "plan_run",
    "read_labelled",
    "read_window",
    "resolve_plan",
    "skipped_metrics",
    "start_labels",
    "start_policy",
    "train_accuracy",
    "train_from_labels",
    "train_plan",
]
