"""Train reward models on data from the store, the VADER ratings or a JSONL file, logging each run.

The data sources:

- **store** — reranker decisions with compiled rewards: prompt = the decision's ``text``, answer = the
  chosen candidate's text, rating = the reward (``rated_from_store``); or preference feedback between
  two candidates of one decision, weighted by rater authority (``pairs_from_store``).
- **vader** — the VADER snippets as answers to a per-corpus prompt, rated by the mean of their raters;
  preference pairs derived within a corpus at a rating gap (derived, not stated by raters).
- **JSONL** — one object a line: ``{"prompt", "answer", "rating"}`` or
  ``{"prompt", "chosen", "rejected", "weight"?, "margin"?}``.

:func:`train_logged` wraps a fit in a TrainingRun through the one orchestration
(:func:`rewardloop.loop.training.fit_and_record`) when a store is given, recording the data size,
config, metrics, history and the artifact path, and a failed run as failed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rewardloop.loop.training import fit_and_record
from rewardloop.rewards import EmbeddingRewardModel, PairwiseRewardModel, PreferencePair, RewardError
from rewardloop.rewards.logged_data import RatedData, preference_pairs_from_batch, rated_from_batch
from rewardloop.store import Store, read_decisions, write_decisions, write_feedback
from rewardloop.store.files import jsonl_objects
from rewardloop.types import Decision, Feedback, TrainingRun

# ---------------------------------------------------------------------------------------- sources


def rated_from_vader(
    limit: int | None = None, seed: int = 0, neutral_band: float = 0.5, sources: Sequence[str] | None = None
) -> RatedData:
    """VADER snippets rated by their raters' mean; those with ``|mean| <= neutral_band`` are left out.

    Raters who average within half a point of neutral on the 9-point scale did not call the snippet
    good or poor; dropping them keeps the good/poor labels meaningful (``neutral_band=0`` keeps all).
    """
    from rewardloop.datasets.vader import load_vader

    snippets = [s for s in load_vader(sources, limit=limit, seed=seed) if abs(s.mean) > neutral_band]
    return RatedData(
        [s.prompt for s in snippets], [s.text for s in snippets], np.array([s.mean for s in snippets])
    )


def pairs_from_vader(
    limit: int | None = None,
    seed: int = 0,
    min_gap: float = 1.0,
    max_pairs: int | None = None,
    test_size: float = 0.0,
) -> tuple[list[PreferencePair], list[PreferencePair]]:
    """(train, test) preference pairs derived from VADER snippets of one corpus whose means differ by
    at least ``min_gap``; ``margin`` is that gap.

    The snippets are split first (``test_size`` of them held out), then paired within each part, so
    no test snippet is seen in training. ``max_pairs`` caps the training pairs (test: a quarter of it).
    """
    from rewardloop.datasets.vader import load_vader, preference_pairs

    snippets = load_vader(limit=limit, seed=seed)
    rng = np.random.default_rng(seed)
    is_test = rng.random(len(snippets)) < test_size
    parts = [[s for s, t in zip(snippets, is_test, strict=True) if t == flag] for flag in (False, True)]
    caps = [max_pairs, None if max_pairs is None else max(1, max_pairs // 4)]
    out: list[list[PreferencePair]] = []
    for part, cap in zip(parts, caps, strict=True):
        pairs = preference_pairs(part, min_gap=min_gap, max_pairs=cap, seed=seed) if len(part) > 1 else []
        out.append([PreferencePair(p.prompt, p.chosen, p.rejected, 1.0, p.gap) for p in pairs])
    return out[0], out[1]


class RewardFileMissing(RewardError, LookupError):
    """The ratings or pairs file named does not exist."""


def _jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        raise RewardFileMissing(f"{path}: no such file")
    return [row for _, row in jsonl_objects(path, RewardError)]


def _field(path: Path, n: int, row: dict[str, Any], key: str, kind: type) -> Any:
    if key not in row:
        raise RewardError(f"{path} row {n}: missing key {key!r}")
    value = row[key]
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, int | float) or not np.isfinite(value):
            raise RewardError(f"{path} row {n}: {key!r} must be a finite number, got {value!r}")
        return float(value)
    if not isinstance(value, str) or not value.strip():
        raise RewardError(f"{path} row {n}: {key!r} must be a non-empty string")
    return value


def rated_from_jsonl(path: str | Path) -> RatedData:
    """``{"prompt", "answer", "rating", "weight"?}`` per line."""
    file = Path(path)
    rows = _jsonl(file)
    prompts = [_field(file, i, r, "prompt", str) for i, r in enumerate(rows, 1)]
    answers = [_field(file, i, r, "answer", str) for i, r in enumerate(rows, 1)]
    ratings = np.array([_field(file, i, r, "rating", float) for i, r in enumerate(rows, 1)])
    weights = None
    if any("weight" in r for r in rows):
        weights = np.array([float(r.get("weight", 1.0)) for r in rows])
    return RatedData(prompts, answers, ratings, weights)


def pairs_from_jsonl(path: str | Path) -> list[PreferencePair]:
    """``{"prompt", "chosen", "rejected", "weight"?, "margin"?}`` per line."""
    file = Path(path)
    out = []
    for i, r in enumerate(_jsonl(file), 1):
        out.append(
            PreferencePair(
                _field(file, i, r, "prompt", str),
                _field(file, i, r, "chosen", str),
                _field(file, i, r, "rejected", str),
                _field(file, i, r, "weight", float) if "weight" in r else 1.0,
                _field(file, i, r, "margin", float) if "margin" in r else 0.0,
            )
        )
    return out


def rated_from_store(store: Store, spec: str, spec_version: int = 1, policy: str | None = None) -> RatedData:
    """Reranker decisions with a compiled reward: (decision text, chosen candidate's text, reward)."""
    batch = read_decisions(store, policy=policy, kind="reranker", reward_spec=(spec, spec_version))
    return rated_from_batch(batch)


def pairs_from_store(store: Store, policy: str | None = None) -> list[PreferencePair]:
    """Preference feedback between two candidates of a reranker decision, weighted by rater authority."""
    batch = read_decisions(store, policy=policy, kind="reranker", with_feedback=True, include_feedback=True)
    return preference_pairs_from_batch(batch)


def log_vader(store: Store, snippets: Sequence[Any], policy: str = "vader") -> tuple[int, int]:
    """Write VADER snippets into the store as real multi-rater feedback; returns (decisions, feedback).

    Each snippet becomes a one-candidate reranker decision (prompt = its corpus prompt, candidate = its
    text; ``pscore`` 1: nothing was sampled) and each rater's score a ``rating`` on (-4, 4) with the
    rater's id. Compiling an ``accuracy`` spec then gives ``(mean + 4) / 8`` per snippet, with the
    raters' spread (their std / 8) as disagreement. Ids derive from the snippet ids: re-logging the
    same snippets writes nothing twice.
    """
    from rewardloop.datasets.vader import SCALE

    decisions, feedback = [], []
    for s in snippets:
        did = f"{policy}:{s.id}"
        decisions.append(
            Decision(
                id=did,
                policy=policy,
                policy_version="human",
                kind="reranker",
                actions=("answer",),
                action="answer",
                action_dist=(1.0,),
                pscore=1.0,
                text=s.prompt,
                candidates=(s.text,),
                metadata={"source": s.source, "snippet": s.id},
            )
        )
        for rater, score in zip(s.rater_ids(), s.ratings, strict=True):
            feedback.append(
                Feedback(
                    id=f"{did}:{rater}",
                    decision_id=did,
                    kind="rating",
                    value=float(score),
                    scale=SCALE,
                    rater_id=rater,
                    source="human",
                )
            )
    d = write_decisions(store, decisions)
    f = write_feedback(store, feedback)
    return d.written, f.written


# -------------------------------------------------------------------------------------- training


@dataclass
class TrainResult:
    """A fitted reward model, where it was saved, and the TrainingRun that logged it (if any)."""

    model: EmbeddingRewardModel | PairwiseRewardModel
    artifact: Path
    metrics: dict[str, float]
    run: TrainingRun | None = None


def train_logged(
    model: EmbeddingRewardModel | PairwiseRewardModel,
    fit: Callable[[], Any],
    out: str | Path,
    *,
    n_samples: int,
    store: Store | None = None,
    policy: str = "reranker",
    config: dict[str, Any] | None = None,
    evaluate: Callable[[], dict[str, float]] | None = None,
) -> TrainResult:
    """Run ``fit()``, then ``evaluate()`` (extra metrics), save the model to ``out``; log a TrainingRun.

    Through :func:`rewardloop.loop.training.fit_and_record`: with a store, the run is started before
    the fit and finished with the metrics (the model's ``metrics_``, its history's last values and
    ``evaluate()``) and the artifact path, or marked ``failed`` (and the error re-raised).
    """
    run = TrainingRun(policy=policy, learner=model.kind, config=config or {}, n_samples=n_samples)

    def run_fit() -> tuple[Any, list[dict[str, float]]]:
        fit()
        return model, list(model.history_)

    def metrics(fitted: Any) -> dict[str, float]:
        return {**fitted.metrics_, **(evaluate() if evaluate is not None else {})}

    outcome = fit_and_record(store, run, run_fit, Path(out), evaluate=metrics)
    return TrainResult(model, outcome.artifact, outcome.metrics, outcome.run if store is not None else None)


def config_of(obj: Any) -> dict[str, Any]:
    """The hyperparameters of a model, JSON-ready, for the TrainingRun's config."""
    cfg = getattr(obj, "config", None)
    if dataclasses.is_dataclass(cfg) and not isinstance(cfg, type):
        return dataclasses.asdict(cfg)
    keys = ("threshold", "min_samples", "test_size", "C", "class_weight", "random_state")
    return {k: getattr(obj, k) for k in keys if hasattr(obj, k)}


__all__ = [
    "RatedData",
    "TrainResult",
    "config_of",
    "log_vader",
    "pairs_from_jsonl",
    "pairs_from_store",
    "pairs_from_vader",
    "rated_from_jsonl",
    "rated_from_store",
    "rated_from_vader",
    "train_logged",
]
