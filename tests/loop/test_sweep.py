"""Sweeps: search spaces refused with the field named, seeded trials, every trial a TrainingRun, the
best marked, local == Ray Tune for the same seed.

The Ray test starts a local Ray (``ray.init(num_cpus=2)``) and is skipped, saying so, where Ray is not
installed (``pip install 'rewardloop[ray]'``).
"""

from __future__ import annotations

import dataclasses
import importlib.util
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
import torch

from rewardloop.config import ComputeConfig, parse_config
from rewardloop.learners import LearnerConfigError, PPOConfig, SupervisedConfig
from rewardloop.learners.search_space import parse_space
from rewardloop.loop.compute import ComputeBackend
from rewardloop.loop.sweep import SweepError, TableEncoder, prepare_job, run_sweep, split_batch
from rewardloop.loop.training import read_window, resolve_plan, start_policy
from rewardloop.store import Store, read_runs, write_decisions, write_feedback
from rewardloop.types import Decision, DecisionBatch, Feedback

HAS_RAY = importlib.util.find_spec("ray") is not None
LABELS = ["lights", "time", "music"]
WORDS = {
    "lights": ["turn on the light", "lights off", "lamp on", "dim the lamp", "bedroom light"],
    "time": ["what time is it", "the time please", "clock", "current hour", "tell me the time"],
    "music": ["play a song", "some music", "next track", "play jazz", "pause the music"],
}

#: What every logged decision of :func:`fill` shares (a logging policy that favours "lights").
LOGGED = {"policy": "intent", "policy_version": "1", "kind": "classifier", "actions": tuple(LABELS)}
LOGGED |= {"action": "lights", "action_dist": (0.4, 0.3, 0.3), "pscore": 0.4}


@pytest.fixture(scope="module")
def encoder():
    """The process-wide MiniLM encoder, on one torch thread."""
    torch.set_num_threads(1)
    from rewardloop.encoders import default_encoder

    return default_encoder()


def fill(store: Store, n: int = 60) -> None:
    """``n`` decisions over three intents, each with a correction naming its label (every 7th from
    the golden set)."""
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    rows = [(label, text) for label, texts in WORDS.items() for text in texts]
    decisions, feedback = [], []
    for i in range(n):
        label, text = rows[i % len(rows)]
        d = Decision(**LOGGED, text=f"{text} {i}", created_at=t0 + timedelta(minutes=i))
        decisions.append(d)
        source = "golden" if i % 7 == 0 else "human"
        feedback.append(Feedback(decision_id=d.id, kind="correction", label=label, source=source))
    write_decisions(store, decisions)
    write_feedback(store, feedback)


def plan_of(tmp_path, store: Store, **training):
    cfg = parse_config(
        {
            "store": {"url": store.engine.url.render_as_string(hide_password=False)},
            "policies": [{"name": "intent", "kind": "classifier", "labels": LABELS}],
            "training": {
                "learner": "supervised",
                "output_dir": str(tmp_path / "out"),
                "epochs": 3,
                **training,
            },
        },
        "test",
    )
    plan = resolve_plan(cfg, tmp_path)
    return plan, read_window(store, plan), start_policy(plan), cfg.training.model_dump(mode="json")


SPACE = {"lr": "loguniform:1e-3:1e-1", "hidden": "choice:0,8", "epochs": "int:2:4"}


def sweep(tmp_path, store, backend="local", trials=4, seed=0):
    plan, batch, policy, dump = plan_of(tmp_path, store)
    space = parse_space(type(plan.config), SPACE)
    with ComputeBackend(ComputeConfig(backend=backend, workers=2)) as compute:
        return run_sweep(
            store, plan, batch, policy, space, compute, n_trials=trials, seed=seed, training_dump=dump
        )


# ------------------------------------------------------------------------------------ search spaces


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"learning_rate": "uniform:0:1"}, r"space\.learning_rate: not a hyperparameter of SupervisedConfig"),
        ({"lr": "uniform:0:0.1"}, r"space\.lr: must be > 0, got 0\.0 \(the low end of the search space\)"),
        ({"lr": "loguniform:1e-3:1e-1", "dropout": "uniform:0:1"}, r"space\.dropout: must be in \[0, 1\)"),
        ({"epochs": "int:0:5"}, r"space\.epochs: must be >= 1, got 0 \(the low end"),
        ({"epochs": "uniform:1:5"}, r"space\.epochs: an integer field; use int:LOW:HIGH"),
        ({"hidden": "choice:8,-1"}, r"space\.hidden: must be >= 0, got -1 \(the value"),
        ({"hidden": "choice:8,big"}, r"space\.hidden: expected int values, got 'big'"),
        ({"lr": "normal:0:1"}, r"space\.lr: unknown distribution 'normal'"),
        ({"lr": "uniform:0.1"}, r"space\.lr: uniform needs two numbers LOW:HIGH"),
        ({"lr": "uniform:0.2:0.1"}, r"space\.lr: needs finite LOW < HIGH"),
        ({"checkpoint_dir": "choice:a,b"}, r"space\.checkpoint_dir: not a hyperparameter"),
        ({}, r"space: give at least one field"),
    ],
)
def test_bad_search_spaces_name_the_field(spec, message):
    with pytest.raises(LearnerConfigError, match=message):
        parse_space(SupervisedConfig, spec)


def test_the_same_seed_draws_the_same_trials_inside_the_bounds():
    space = parse_space(PPOConfig, {"lr": "loguniform:1e-4:1e-2", "clip_eps": "uniform:0.1:0.3"})
    trials = space.sample(50, seed=3)
    assert trials == space.sample(50, seed=3) and trials != space.sample(50, seed=4)
    lr = np.array([t["lr"] for t in trials])
    assert lr.min() >= 1e-4 and lr.max() <= 1e-2 and all(0.1 <= t["clip_eps"] <= 0.3 for t in trials)
    # log-uniform: about half of the draws below the geometric middle, 1e-3
    assert 15 <= int(np.sum(lr < 1e-3)) <= 35
    with pytest.raises(LearnerConfigError, match="trials: must be at least 1"):
        space.sample(0, seed=0)


# ------------------------------------------------------------------------------------------ splits


def test_split_is_stable_and_keeps_golden_feedback_out_of_validation(tmp_path, sqlite_store):
    fill(sqlite_store)
    batch = plan_of(tmp_path, sqlite_store)[1]
    train, val = split_batch(batch, 0.3, seed=1)
    assert len(train) + len(val) == len(batch) == 60 and 8 <= len(val) <= 30
    assert {d.id for d in train}.isdisjoint(d.id for d in val)
    assert all(f.source != "golden" for fs in val.feedback.values() for f in fs)
    assert any(f.source == "golden" for fs in train.feedback.values() for f in fs)
    first40 = {d.id for d in list(batch)[:40]}
    again = split_batch(DecisionBatch(list(batch)[:40], batch.feedback), 0.3, seed=1)[1]
    assert {d.id for d in again} == {d.id for d in val} & first40  # a decision keeps its side
    with pytest.raises(SweepError, match=r"validation_share: must be in \(0, 1\)"):
        split_batch(batch, 1.0, seed=1)


def test_table_encoder_reads_the_driver_vectors():
    table = TableEncoder(["a", "b"], np.eye(2, 3, dtype=np.float32))
    np.testing.assert_array_equal(table.encode(["b", "a"]), np.eye(2, 3)[[1, 0]])
    with pytest.raises(ValueError, match="no embedding for the text 'c'"):
        table.encode(["c"])


# ------------------------------------------------------------------------------------------ sweeps


def test_sweep_records_every_trial_and_marks_the_best(tmp_path, sqlite_store, encoder):
    fill(sqlite_store)
    result = sweep(tmp_path, sqlite_store, trials=4)
    runs = {r.id: r for r in read_runs(sqlite_store)}
    assert len(runs) == 4 and all(r.status == "succeeded" for r in runs.values())
    for t in result.trials:
        run = runs[t.run.id]
        assert run.config["sweep"]["hyperparameters"] == t.hyperparameters
        assert run.config["sweep"]["trial"] == t.trial and run.config["sweep"]["id"] == result.sweep_id
        assert run.config["learner"]["lr"] == t.hyperparameters["lr"]  # the trial's values were trained
        assert run.metrics["val/score"] == t.score and run.n_samples == result.n_train
        assert run.metrics["sweep/best"] == float(t.trial == result.best)
        assert run.artifact_path and (tmp_path / "out" / "intent" / run.id).is_dir()
    assert result.best_trial.score == max(result.scores())
    assert len({t.score for t in result.trials}) > 1  # the hyperparameters matter


def test_same_seed_same_trials_and_scores(tmp_path, sqlite_store, encoder):
    fill(sqlite_store)
    first = sweep(tmp_path / "a", sqlite_store, seed=5, trials=3)
    second = sweep(tmp_path / "b", sqlite_store, seed=5, trials=3)
    assert [t.hyperparameters for t in first.trials] == [t.hyperparameters for t in second.trials]
    assert first.scores() == second.scores() and first.best == second.best
    other = sweep(tmp_path / "c", sqlite_store, seed=6, trials=3)
    assert [t.hyperparameters for t in other.trials] != [t.hyperparameters for t in first.trials]


def test_a_sweep_without_validation_examples_says_so(tmp_path, sqlite_store, encoder):
    fill(sqlite_store, n=3)
    plan, batch, policy, _dump = plan_of(tmp_path, sqlite_store)
    space = parse_space(type(plan.config), {"lr": "loguniform:1e-3:1e-1"})
    with pytest.raises(SweepError, match="validation_share: no validation examples"):
        run_sweep(
            sqlite_store,
            plan,
            batch,
            policy,
            space,
            ComputeBackend(),
            n_trials=2,
            seed=2,
            validation_share=0.01,
        )
    assert read_runs(sqlite_store) == []


@pytest.mark.slow  # Ray Tune's start-up and four trials in workers: minutes on a loaded machine
@pytest.mark.skipif(not HAS_RAY, reason="Ray is not installed: pip install 'rewardloop[ray]'")
def test_ray_tune_gives_the_local_trials_and_scores(tmp_path, sqlite_store, encoder):
    import ray

    fill(sqlite_store)
    local = sweep(tmp_path / "local", sqlite_store, trials=4, seed=9)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        on_ray = sweep(tmp_path / "ray", sqlite_store, backend="ray", trials=4, seed=9)
    finally:
        ray.shutdown()
    assert [t.hyperparameters for t in on_ray.trials] == [t.hyperparameters for t in local.trials]
    assert on_ray.scores() == local.scores() and on_ray.best == local.best
    assert len(read_runs(sqlite_store)) == 8


# -------------------------------------------------------------------------------------------- CLI


def test_sweep_command_prints_the_trials_and_ends_with_json(tmp_path, sqlite_store, encoder):
    import json

    import yaml
    from typer.testing import CliRunner

    from rewardloop.cli.main import app

    fill(sqlite_store)
    cfg = {
        "store": {"url": sqlite_store.engine.url.render_as_string(hide_password=False)},
        "policies": [{"name": "intent", "kind": "classifier", "labels": LABELS}],
        "training": {"learner": "supervised", "output_dir": str(tmp_path / "out"), "epochs": 2},
    }
    path = tmp_path / "rewardloop.yaml"
    path.write_text(yaml.safe_dump(cfg))
    args = ["sweep", "-c", str(path), "--space", "lr=loguniform:1e-3:1e-1", "--trials", "2", "--seed", "1"]
    out = CliRunner().invoke(app, args)
    assert out.exit_code == 0, out.output
    line = json.loads(out.output.strip().splitlines()[-1])
    assert line["backend"] == "local" and len(line["scores"]) == 2
    assert "best" in out.output and len(read_runs(sqlite_store)) == 2
    bad = CliRunner().invoke(app, ["sweep", "-c", str(path), "--space", "lr=uniform:-1:1"])
    assert bad.exit_code == 2 and "space.lr: must be > 0" in bad.output
    bad = CliRunner().invoke(app, ["sweep", "-c", str(path), "--space", "lr"])
    assert bad.exit_code == 2 and "--space: expected FIELD=KIND:ARGS" in bad.output


def test_learners_a_sweep_cannot_score_are_refused_before_training(tmp_path, sqlite_store):
    fill(sqlite_store)
    plan, batch, policy, _dump = plan_of(tmp_path, sqlite_store)
    dqn = dataclasses.replace(plan, learner="dqn")
    generator = dataclasses.replace(plan, policy=plan.policy.model_copy(update={"kind": "generator"}))
    options = {"validation_share": 0.2, "seed": 0, "threads": 1, "training_dump": {}, "sweep_config": {}}
    for bad, message in [
        (dqn, "a sweep cannot score dqn: its result is an abstain gate"),
        (generator, "a sweep trains classifier policies"),
    ]:
        with pytest.raises(SweepError, match=message):
            prepare_job(bad, batch, policy, [{}], **options)
