"""The project file: defaults, env overrides, and errors that name the key."""

from __future__ import annotations

import pytest
import yaml

from rewardloop.config import ConfigError, apply_sets, load_config, parse_config
from rewardloop.config.template import render_template


def test_template_parses_back_to_the_defaults():
    cfg = parse_config(yaml.safe_load(render_template()))
    assert cfg.store.url == "sqlite:///rewardloop.db"
    assert cfg.policy().name == "intent"
    assert cfg.reward_spec("thumbs").version == 1


def test_env_overrides_the_file(tmp_path, monkeypatch):
    path = tmp_path / "rewardloop.yaml"
    path.write_text("store:\n  url: sqlite:///a.db\nreview:\n  confidence_below: 0.5\n")
    monkeypatch.setenv("REWARDLOOP_STORE__URL", "postgresql+psycopg://u@h/db")
    monkeypatch.setenv("REWARDLOOP_REVIEW__AUDIT_RATE", "0.1")
    cfg = load_config(path)
    assert cfg.store.url == "postgresql+psycopg://u@h/db"
    assert cfg.review.confidence_below == 0.5
    assert cfg.review.audit_rate == 0.1


def test_relative_sqlite_path_is_relative_to_the_file(tmp_path, monkeypatch):
    monkeypatch.delenv("REWARDLOOP_STORE__URL", raising=False)
    path = tmp_path / "proj" / "rewardloop.yaml"
    path.parent.mkdir()
    path.write_text("store:\n  url: sqlite:///data/rl.db\n")
    assert load_config(path).store.url == f"sqlite:///{tmp_path / 'proj' / 'data' / 'rl.db'}"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("store:\n  uri: x\n", "store.uri: Extra inputs are not permitted"),
        (
            "review:\n  confidence_below: 1.5\n",
            "review.confidence_below: Input should be less than or equal to 1",
        ),
        ("service:\n  port: http\n", "service.port: Input should be a valid integer"),
        ("policies:\n  - kind: classifier\n", "policies.0.name: Field required"),
        ("training:\n  lr: -1\n", "training.lr: Input should be greater than 0"),
        ("- a\n- b\n", "the top level must be a mapping"),
        ("store: [unclosed\n", "not valid YAML"),
    ],
)
def test_invalid_files_name_the_key_and_reason(tmp_path, text, message):
    path = tmp_path / "rewardloop.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert message in str(err.value)
    assert str(path) in str(err.value)


def test_unknown_names():
    cfg = parse_config({})
    with pytest.raises(ConfigError, match=r"no policy named 'x' \(known: none\)"):
        cfg.policy("x")
    with pytest.raises(ConfigError, match="no reward spec named 'y'"):
        cfg.reward_spec("y")
    with pytest.raises(ConfigError, match="no such file"):
        load_config("/nonexistent/rewardloop.yaml")


def test_sets_override_the_file_and_replace_aliases(tmp_path, monkeypatch):
    monkeypatch.delenv("REWARDLOOP_STORE__URL", raising=False)
    path = tmp_path / "rewardloop.yaml"
    path.write_text("store:\n  url: sqlite:///rl.db\ntraining:\n  algorithm: ppo\n  learning_rate: 0.1\n")
    cfg = load_config(path, ["training.learner=dpo", "training.lr=1e-5", "experiments.alpha=0.01"])
    assert (cfg.training.learner, cfg.training.lr, cfg.experiments.alpha) == ("dpo", 1e-5, 0.01)
    assert cfg.store.url == f"sqlite:///{tmp_path / 'rl.db'}"
    # without a file at the default path: the defaults, then the overrides
    monkeypatch.chdir(tmp_path / "..")
    assert load_config(None, ["training.seed=7"]).training.seed == 7


def test_apply_sets_by_hand():
    assert apply_sets({}, ["a.b.c=[1, 2]", "a.d="]) == {"a": {"b": {"c": [1, 2]}, "d": None}}
    assert apply_sets({"training": {"lr": 1}}, ["training.learning_rate=2"]) == {
        "training": {"learning_rate": 2}
    }


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (["training.lr"], "--set 'training.lr': expected KEY=VALUE"),
        (["=3"], "expected KEY=VALUE"),
        (["store=x", "store.url=y"], "--set store.url: store is not a section"),
        (["training.lr=-1"], "training.lr: Input should be greater than 0"),
    ],
)
def test_bad_sets_name_the_key(sets, message):
    with pytest.raises(ConfigError) as err:
        load_config(None, sets)
    assert message in str(err.value)


def test_template_gives_every_experiment_a_sample_budget():
    # Issue 13 item 16: `max_samples: null` held a no-better challenger forever.
    text = render_template()
    assert "  max_samples: 5000  # sample budget: the experiment ends" in text
    assert parse_config(yaml.safe_load(text)).experiments.max_samples == 5000
    with pytest.raises(ConfigError, match=r"experiments\.max_samples: Input should be a valid integer"):
        parse_config({"experiments": {"max_samples": None}})
