"""``rewardloop train``: dry run, a recorded supervised run, the RL dispatch contract, bad configs."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import ClassVar

import pytest
import torch
import yaml
from typer.testing import CliRunner

from rewardloop.cli.main import app
from rewardloop.learners import (
    LEARNERS,
    BanditData,
    LearnerConfig,
    LearnerConfigError,
    bandit_data_from_batch,
)
from rewardloop.policies.classifier import ClassifierPolicy
from rewardloop.store import Store, read_runs, write_decisions, write_feedback, write_rewards
from rewardloop.types import Decision, Feedback, Reward, TimeWindow

runner = CliRunner()
LABELS = ["a", "b", "c"]


@pytest.fixture(scope="module")
def encoder():
    """The process-wide MiniLM encoder (shared with every test area), on one torch thread."""
    torch.set_num_threads(1)
    from rewardloop.encoders import default_encoder

    return default_encoder()


def flat(text: str) -> str:
    return " ".join(text.split())


def project(tmp_path, url: str, **training) -> str:
    cfg = {
        "store": {"url": url},
        "policies": [{"name": "intent", "kind": "classifier", "labels": LABELS}],
        "rewards": [{"name": "thumbs", "version": 1, "function": "accuracy"}],
        "training": {"output_dir": str(tmp_path / "artifacts"), **training},
    }
    path = tmp_path / "rewardloop.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def url_of(store: Store) -> str:
    return store.engine.url.render_as_string(hide_password=False)


def fill(store: Store) -> list[Decision]:
    """Six decisions; five with a usable label (corrections and a thumbs up); rewards for all six."""
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    texts = ["turn on the light", "lights off", "what time is it", "lamp on", "lamp off", "the time"]
    decisions = [
        Decision(
            policy="intent",
            policy_version="1",
            kind="classifier",
            actions=tuple(LABELS),
            action="a",
            action_dist=(0.5, 0.25, 0.25),
            pscore=0.5,
            text=t,
            created_at=t0 + timedelta(minutes=i),
        )
        for i, t in enumerate(texts)
    ]
    write_decisions(store, decisions)
    fb = [
        Feedback(decision_id=decisions[0].id, kind="rating", value=1, scale=(0, 1)),
        Feedback(decision_id=decisions[1].id, kind="correction", label="b", authority=0.5),
        Feedback(decision_id=decisions[2].id, kind="correction", label="c"),
        Feedback(decision_id=decisions[3].id, kind="correction", label="a", source="golden"),
        Feedback(decision_id=decisions[4].id, kind="correction", label="b"),
        Feedback(decision_id=decisions[5].id, kind="rating", value=0, scale=(0, 1)),
    ]
    write_feedback(store, fb)
    write_rewards(
        store,
        [
            Reward(decision_id=d.id, spec="thumbs", spec_version=1, value=float(i % 2))
            for i, d in enumerate(decisions)
        ],
    )
    return decisions


# ---------------------------------------------------------------------------- a stand-in RL learner


@dataclass
class StandInConfig(LearnerConfig):
    clip_eps: float = field(default=0.2, metadata={"help": "clip range"})

    def validate(self) -> None:
        super().validate()
        if not self.clip_eps > 0:
            raise LearnerConfigError(f"clip_eps: must be > 0, got {self.clip_eps}")


class StandInRL:
    """What an RL learner looks like to the command: the Learner contract and nothing else."""

    name = "standin"
    config_class = StandInConfig
    needs_rewards = True
    needs_policy = True
    reads_texts = False
    data_from_batch = staticmethod(bandit_data_from_batch)
    seen: ClassVar[dict] = {}

    def __init__(self, config=None, progress=None):
        self.config, self.progress = config, progress

    def fit(self, data, *, policy=None):
        StandInRL.seen.update(data=data, policy=policy, config=self.config)
        self.progress(1, 1, {"loss": 0.0})
        self.history_ = [{"train/mean_reward": float(data.reward.mean())}]
        return policy


@pytest.fixture
def standin(monkeypatch):
    monkeypatch.setitem(LEARNERS, "standin", StandInRL)
    StandInRL.seen.clear()
    return StandInRL


# ------------------------------------------------------------------------------------------- runs


def test_dry_run_prints_config_and_data_and_records_nothing(store, tmp_path, encoder):
    fill(store)
    result = runner.invoke(app, ["train", "-c", project(tmp_path, url_of(store), gamma=0.9), "--dry-run"])
    out = flat(result.output)
    assert result.exit_code == 0, result.output
    for expected in (
        "learner supervised (SupervisedConfig)",
        "lr = 0.01",
        "not used by supervised: gamma",
        "decisions read: 6",
        "examples: 5 (total weight 4.50)",
        "skipped feedback: 1 rating without a label",
        "dry run: nothing trained",
    ):
        assert expected in out, expected
    assert read_runs(store) == [] and not (tmp_path / "artifacts").exists()


def test_supervised_run_is_recorded_with_its_artifact(store, tmp_path, encoder):
    decisions = fill(store)
    cfg = project(tmp_path, url_of(store))
    result = runner.invoke(
        app, ["train", "-c", cfg, "--set", "training.epochs=80", "--set", "training.lr=5e-2"]
    )
    assert result.exit_code == 0, result.output
    (run,) = read_runs(store)
    assert (run.status, run.learner, run.policy, run.n_samples) == ("succeeded", "supervised", "intent", 5)
    assert run.config["learner"]["epochs"] == 80 and run.config["learner"]["lr"] == 0.05
    assert run.data_window == (decisions[0].created_at, decisions[-1].created_at)
    assert run.metrics["train_accuracy"] == 1.0 and run.metrics["n_samples"] == 5
    policy = ClassifierPolicy.load(run.artifact_path)
    assert (policy.labels, policy.name, policy.version) == (LABELS, "intent", run.id[:12])
    assert f"run {run.id}" in flat(result.output)


def test_window_limits_the_data(store, tmp_path, encoder):
    fill(store)
    cfg = project(tmp_path, url_of(store))
    result = runner.invoke(app, ["train", "-c", cfg, "--dry-run", "--since", "2026-01-01T00:02:00+00:00"])
    assert result.exit_code == 0, result.output
    assert "decisions read: 4" in flat(result.output) and "examples: 3" in flat(result.output)


def test_rl_learners_get_bandit_data_and_the_mapped_flat_keys(store, tmp_path, encoder, standin):
    decisions = fill(store)
    ClassifierPolicy(LABELS, name="intent").save(tmp_path / "start")
    cfg = project(
        tmp_path, url_of(store), learner="standin", reward_metric="thumbs", init_from=str(tmp_path / "start")
    )
    result = runner.invoke(app, ["train", "-c", cfg, "--set", "training.ppo_eps_clip=0.3"])
    assert result.exit_code == 0, result.output
    data = standin.seen["data"]
    assert isinstance(data, BanditData) and len(data) == 6 and data.X.shape == (6, 384)
    assert data.reward.tolist() == [0.0, 1.0, 0.0, 1.0, 0.0, 1.0] and data.pscore.tolist() == [0.5] * 6
    assert standin.seen["config"].clip_eps == 0.3 and standin.seen["policy"].labels == LABELS
    (run,) = read_runs(store)
    assert run.metrics["train/mean_reward"] == 0.5 and run.n_samples == len(decisions)


def test_rl_dry_run_shows_the_rewards_and_records_nothing(store, tmp_path, standin):
    fill(store)
    ClassifierPolicy(LABELS, name="intent").save(tmp_path / "start")
    cfg = project(
        tmp_path, url_of(store), learner="standin", reward_spec="thumbs", init_from=str(tmp_path / "start")
    )
    result = runner.invoke(app, ["train", "-c", cfg, "--dry-run"])
    assert result.exit_code == 0, result.output
    out = flat(result.output)
    assert "rewards thumbs v1" in out and "examples: 6" in out and "reward: mean 0.5000, min 0, max 1" in out
    assert standin.seen == {} and read_runs(store) == []


# ------------------------------------------------------------------------------------- bad configs


@pytest.mark.parametrize(
    ("training", "args", "message"),
    [
        ({}, ["--learner", "nope"], "'nope' is not one of 'supervised', 'lora'"),  # a choice
        ({}, ["--set", "training.lr=-1"], "training.lr: Input should be greater than 0"),
        ({"learning_rate": -2}, [], "training.learning_rate: Input should be greater than 0"),
        ({}, ["--set", "training.ppo_eps_clip=0"], "training.ppo_eps_clip: Input should be greater than 0"),
        ({}, ["--set", "training.options.nope=1"], "training.options.nope: not a field of SupervisedConfig"),
        ({}, ["--set", "training.options.lr=-1"], "training.options.lr: must be > 0"),
        (
            {},
            ["--set", "training.options.epochs=ten"],
            "training.options.epochs: expected an integer, got 'ten'",
        ),
        (
            {"learner": "standin"},
            [],
            "training.reward_spec: the standin learner learns from compiled rewards",
        ),
        ({"learner": "standin", "reward_spec": "nope"}, [], "no reward spec named 'nope' (known: thumbs)"),
        (
            {"learner": "standin", "reward_spec": "thumbs"},
            [],
            "training.init_from: the standin learner improves",
        ),
        (
            {"learner": "standin", "reward_spec": "thumbs", "init_from": "nowhere"},
            [],
            "training.init_from: cannot load a policy from",
        ),
        (
            {"learner": "standin", "reward_spec": "thumbs", "options": {"clip_eps": 0}},
            [],
            "training.options.clip_eps: must be > 0",
        ),
        ({"policy": "other"}, [], "no policy named 'other' (known: intent)"),
        (
            {"learner": "sft"},
            [],
            "training.learner: 'sft' trains generator policies and 'intent' is a classifier "
            "(learners of a classifier: supervised, lora",
        ),
        ({}, ["--set", "training"], "--set 'training': expected KEY=VALUE"),
        ({}, ["--since", "yesterday"], "--since: not an ISO time"),
        (
            {},
            ["--since", "2026-01-02", "--until", "2026-01-01"],
            "--until: 2026-01-01 00:00:00+00:00 is before since",
        ),
        (
            {"lookback_days": 7},
            ["--until", "2026-01-01"],
            "training.lookback_days: 7 days back is",
        ),
    ],
)
def test_bad_configs_are_named_and_nothing_is_recorded(tmp_path, standin, training, args, message):
    url = f"sqlite:///{tmp_path / 'rl.db'}"
    result = runner.invoke(app, ["train", "-c", project(tmp_path, url, **training), *args])
    assert result.exit_code == 2, result.output
    assert message in flat(result.output)
    assert "Traceback" not in result.output
    store = Store.open(url)
    assert read_runs(store) == []
    store.close()


def test_no_examples_is_a_clean_error(tmp_path):
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    result = runner.invoke(app, ["train", "-c", project(tmp_path, url)])
    assert result.exit_code == 2 and "data: no training examples in the window" in flat(result.output)


def test_help_names_the_options():
    result = runner.invoke(app, ["train", "--help"])
    assert result.exit_code == 0
    for option in ("--learner", "--set", "--dry-run", "--since", "--until", "--config"):
        assert option in result.output


# ------------------------------------------------------------------------------ the training surface


def test_min_feedback_refuses_saying_how_many_there_are(store, tmp_path, encoder):
    fill(store)
    result = runner.invoke(app, ["train", "-c", project(tmp_path, url_of(store), min_feedback=10)])
    assert result.exit_code == 2, result.output
    assert "training.min_feedback: 5 training examples in the window, fewer than the 10 required" in flat(
        result.output
    )
    assert read_runs(store) == []


def test_max_episodes_and_lookback_days_bound_the_window(store, tmp_path, encoder):
    fill(store)  # six decisions logged on 2026-01-01
    result = runner.invoke(
        app, ["train", "-c", project(tmp_path, url_of(store), max_episodes=3), "--dry-run"]
    )
    assert result.exit_code == 0, result.output
    assert "decisions read: 3" in flat(result.output) and "max_episodes = 3" in flat(result.output)
    result = runner.invoke(
        app, ["train", "-c", project(tmp_path, url_of(store), lookback_days=7), "--dry-run"]
    )
    assert result.exit_code == 0, result.output
    assert "decisions read: 0" in flat(result.output)  # the last 7 days hold none of them


def test_lookback_days_opens_the_window_and_may_not_start_after_its_end(tmp_path):
    from rewardloop.config import load_config
    from rewardloop.loop.training import TrainingError, resolve_plan

    cfg = load_config(Path(project(tmp_path, "sqlite://", lookback_days=7)))
    now = datetime(2026, 3, 1, 12)  # naive: UTC
    plan = resolve_plan(cfg, tmp_path, window=TimeWindow(until=datetime(2026, 3, 1)), now=now)
    assert plan.window == TimeWindow(datetime(2026, 2, 22, 12, tzinfo=UTC), datetime(2026, 3, 1, tzinfo=UTC))
    given = TimeWindow(datetime(2026, 1, 1), datetime(2026, 1, 2))  # --since wins over lookback_days
    assert resolve_plan(cfg, tmp_path, window=given, now=now).window == given
    with pytest.raises(TrainingError) as err:
        resolve_plan(cfg, tmp_path, window=TimeWindow(until=datetime(2026, 2, 1)), now=now)
    assert str(err.value) == (
        "training.lookback_days: 7 days back is 2026-02-22 12:00, after the window's end "
        "(2026-02-01 00:00:00+00:00)"
    )


def test_flat_training_keys_reach_each_learners_own_field(tmp_path):
    from rewardloop.config import parse_config
    from rewardloop.learners import resolve_config

    cfg = parse_config(
        {
            "training": {
                "clip_grad_norm": 0.5,
                "entropy_coef": 0.03,
                "baseline_decay": 0.8,
                "save_frequency": 4,
                "keep_last_n": 2,
            }
        },
        "test",
    )
    ppo, ignored = resolve_config(LEARNERS["ppo"].config_class, cfg.training)
    assert (ppo.max_grad_norm, ppo.entropy_coef, ppo.save_frequency, ppo.keep_last_n) == (0.5, 0.03, 4, 2)
    assert "baseline_decay" in ignored
    reinforce, _ = resolve_config(LEARNERS["reinforce"].config_class, cfg.training)
    assert reinforce.baseline_decay == 0.8


def test_each_hyperparameter_is_set_one_way(tmp_path):
    from rewardloop.config import parse_config
    from rewardloop.learners import resolve_config

    cfg = parse_config({"training": {"lr": 0.1, "options": {"lr": 0.2}}}, "test")
    with pytest.raises(LearnerConfigError, match=r"training\.options\.lr: set by training\.lr already"):
        resolve_config(LEARNERS["supervised"].config_class, cfg.training)


def test_old_checkpoint_keys_map_with_a_deprecation_warning_naming_the_version():
    from rewardloop.config import parse_config
    from rewardloop.learners import resolve_config

    with pytest.warns(
        DeprecationWarning, match=r"checkpoint_every is deprecated .* removed in rewardloop 0.3.0"
    ):
        cfg = parse_config({"training": {"checkpoint_every": 5}}, "test")
    assert cfg.training.save_frequency == 5
    with pytest.warns(DeprecationWarning, match=r"keep_checkpoints is deprecated .* 0.3.0; use keep_last_n"):
        config = LEARNERS["ppo"].config_class.from_dict({"keep_checkpoints": 4})
    assert config.keep_last_n == 4
    training = parse_config({"training": {"options": {"checkpoint_every": 3}}}, "test").training
    with pytest.warns(DeprecationWarning):
        assert resolve_config(LEARNERS["dqn"].config_class, training)[0].save_frequency == 3


def test_learner_help_texts_reach_help_and_the_template():
    from rewardloop.config.template import render_template
    from rewardloop.learners import learner_options

    result = runner.invoke(app, ["train", "--help"], terminal_width=400)
    assert result.exit_code == 0
    assert "clip_eps (PPO clip range ε of the ratio π/π_old)" in flat(result.output)
    text = render_template(None, learner_options())
    assert "#     clip_eps: PPO clip range ε of the ratio π/π_old" in text
    assert "min_feedback: 1  # refuse to train on fewer training examples than this" in text
