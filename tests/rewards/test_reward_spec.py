"""Reward specs from rewardloop.yaml: validation and lookup."""

from __future__ import annotations

import pytest

from rewardloop.config import ConfigError, parse_config
from rewardloop.config.sections import RewardSpecConfig
from rewardloop.rewards import FUNCTIONS, RewardError, RewardSpec, UnknownSpecError, find_spec


def test_spec_from_yaml_section():
    cfg = parse_config(
        {
            "rewards": [
                {
                    "name": "email",
                    "version": 2,
                    "function": "weighted",
                    "weights": {"correct": 0.4, "actions": 0.3, "calibration": 0.2, "engagement": 0.1},
                },
                {"name": "fast", "function": "latency", "options": {"target_ms": 250}, "scale": "signed"},
            ]
        }
    )
    email = find_spec(cfg.rewards, "email")
    assert email.key == ("email", 2)
    assert email.weights["actions"] == 0.3
    fast = RewardSpec.from_config(cfg.reward_spec("fast"))
    assert (fast.function, fast.scale, fast.target_ms) == ("latency", "signed", 250.0)


def test_unknown_spec_name_lists_known():
    specs = [RewardSpec("a", function="accuracy"), RewardSpec("b", function="calibration")]
    with pytest.raises(UnknownSpecError, match=r"no reward spec named 'c' \(known: a, b\)"):
        find_spec(specs, "c")


def test_unknown_function_refused_by_the_yaml_schema():
    with pytest.raises(ConfigError, match=r"rewards\.0\.function"):
        parse_config({"rewards": [{"name": "x", "function": "accuracyy"}]})


def test_config_and_rewards_agree_on_function_names():
    cfg = RewardSpecConfig(name="x", function="accuracy")
    assert cfg.function in FUNCTIONS
    assert set(FUNCTIONS) == {
        "accuracy",
        "calibration",
        "confidence",
        "latency",
        "multilevel",
        "weighted",
        "set_penalty",
        "set_jaccard",
        "set_f1",
    }


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "", "function": "accuracy"}, "name: a reward spec needs a non-empty name"),
        ({"name": "x", "function": "nope"}, "function: unknown 'nope'"),
        ({"name": "x", "function": "accuracy", "version": 0}, "version: must be an integer >= 1"),
        ({"name": "x", "function": "accuracy", "scale": "percent"}, "scale: must be unit, signed or raw"),
        ({"name": "x", "function": "accuracy", "combine": "max"}, "combine: must be one of"),
        ({"name": "x", "function": "weighted"}, "weights: a weighted spec needs at least one"),
        ({"name": "x", "function": "weighted", "weights": {"a": -1}}, "weights.a: must be a number >= 0"),
        ({"name": "x", "function": "latency"}, "options.target_ms: the latency reward needs a target"),
        ({"name": "x", "function": "weighted", "weights": {"latency": 1}}, "options.target_ms"),
    ],
)
def test_bad_specs(kwargs, message):
    with pytest.raises(RewardError) as err:
        RewardSpec(**kwargs)
    assert message in str(err.value)


def test_one_definition_yaml_and_code_refuse_the_same_spec():
    # Before, the YAML schema accepted a latency spec without a target (only RewardSpec refused it).
    with pytest.raises(ConfigError, match=r"rewards\.0: .*options\.target_ms: the latency reward needs"):
        parse_config({"rewards": [{"name": "fast", "function": "latency"}]})
    with pytest.raises(ConfigError, match=r"rewards\.0\.version: .*must be an integer >= 1"):
        parse_config({"rewards": [{"name": "x", "function": "accuracy", "version": 0}]})
    spec = RewardSpec("x", function="accuracy")
    assert isinstance(spec, RewardSpecConfig) and RewardSpec.from_config(spec) is spec
    with pytest.raises(ValueError, match="frozen"):
        spec.scale = "signed"  # type: ignore[misc]
