"""The learner contract, parametrised over every entry of ``rewardloop.learners.LEARNERS``.

Default-constructible configs with help text, ``fit`` returns a new fitted policy without touching
the input, the same seed gives the same result, progress callbacks and checkpoints, and bad configs
and bad data refused with the key or field named.

A learner added to ``LEARNERS`` needs a data factory in ``DATA_FOR`` (what its ``fit`` takes);
the first test fails until it has one, so no learner escapes the contract.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

from rewardloop.learners import LEARNERS, PreferencePairs
from rewardloop.learners._common import LearnerDataError
from rewardloop.learners.base import BanditData, LearnerConfig, LearnerConfigError
from rewardloop.learners.gating import GatingConfig
from rewardloop.learners.sft import SFTConfig

from .learner_tasks import LABELS, fresh_policy, linear_task, uniform_bandit_data

torch.set_num_threads(1)


def _bandit() -> BanditData:
    return uniform_bandit_data(96, seed=3)[0]


def _pairs() -> PreferencePairs:
    X, y = linear_task(64, seed=5)
    return PreferencePairs(X, y, (y + 1) % len(LABELS), list(LABELS))


#: What each learner's ``fit`` takes. Add an entry with each new learner ("supervised": labelled data).
def _labelled() -> tuple[np.ndarray, list[str]]:
    X, y = linear_task(96, seed=3)
    return X, [LABELS[i] for i in y]


DATA_FOR: dict[str, Callable[[], Any] | None] = {
    "supervised": _labelled,
    # LoRA fine-tunes the real MiniLM encoder on texts: its contract is in test_lora.py.
    "lora": None,
    "reinforce": _bandit,
    "ppo": _bandit,
    "a2c": _bandit,
    "dqn": _bandit,
    "dpo": _pairs,
    "crm": _bandit,
}

NAMES = sorted(name for name in LEARNERS if DATA_FOR.get(name) is not None)


def _fit(learner: Any, name: str, policy: Any, data: Any = None) -> Any:
    """Fit the way the CLI does: data positionally (supervised: embeddings, labels), policy by keyword."""
    data = DATA_FOR[name]() if data is None else data  # type: ignore[misc]
    if isinstance(data, tuple):
        return learner.fit(*data, policy=policy)
    return learner.fit(data, policy=policy)


def _history(learner: Any) -> list[dict[str, float]]:
    """Per-step metrics: ``history_`` (RL learners) or ``loss_history_`` (supervised)."""
    return getattr(learner, "history_", None) or [{"loss": v} for v in getattr(learner, "loss_history_", [])]


SMALL = {"epochs": 2, "batch_size": 32}


def _state(result: Any) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in result.head.state_dict().items()}


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_every_learner_has_test_data() -> None:
    missing = sorted(set(LEARNERS) - set(DATA_FOR))
    assert not missing, f"add a data factory to DATA_FOR for {missing}"


@pytest.mark.parametrize("name", NAMES)
def test_config_defaults_and_help(name: str) -> None:
    cls = LEARNERS[name]
    config = cls.config_class()
    assert isinstance(config, LearnerConfig)
    for f in dataclasses.fields(config):
        assert f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING, f.name
        assert f.metadata.get("help"), f"{name}.{f.name} has no help text"
    assert cls().config == config
    assert cls.name == name


@pytest.mark.parametrize("name", NAMES)
def test_fit_returns_new_fitted_policy_and_leaves_input_alone(name: str) -> None:
    cls = LEARNERS[name]
    policy = fresh_policy()
    before = _state(policy)
    learner = cls(cls.config_class(**SMALL))
    result = _fit(learner, name, policy)
    assert result is not policy
    assert _same(_state(policy), before), "fit changed the input policy"
    assert not _same(_state(result), before) or name == "dqn", "fit learned nothing"
    fitted = getattr(learner, "gate_", None) or learner.policy_
    assert fitted is result
    history = _history(learner)
    assert history and all(np.isfinite(m["loss"]) for m in history if "loss" in m)


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_result_other_seed_other_result(name: str) -> None:
    cls = LEARNERS[name]
    data = DATA_FOR[name]()  # type: ignore[misc]
    runs = [_fit(cls(cls.config_class(seed=s, **SMALL)), name, fresh_policy(), data) for s in (7, 7, 8)]
    assert _same(_state(runs[0]), _state(runs[1]))
    assert not _same(_state(runs[0]), _state(runs[2]))


@pytest.mark.parametrize("name", NAMES)
def test_progress_and_checkpoints_keep_the_last_n(name: str, tmp_path: Any) -> None:
    cls = LEARNERS[name]
    calls: list[tuple[int, int]] = []
    config = cls.config_class(save_frequency=1, keep_last_n=2, checkpoint_dir=str(tmp_path), **SMALL)
    # the CLI's way: progress given at construction, the policy by keyword
    learner = cls(config, progress=lambda s, t, m: calls.append((s, t)))
    result = _fit(learner, name, fresh_policy())
    total = calls[0][1]
    assert [s for s, _ in calls] == list(range(1, total + 1))
    kept = sorted(p.name for p in tmp_path.iterdir())
    assert kept == [f"step-{total - 1:06d}", f"step-{total:06d}"]
    # the last checkpoint is the fitted result, and loads back without pickle
    assert _same(_state(type(result).load(tmp_path / kept[-1])), _state(result))


@pytest.mark.parametrize("name", NAMES)
def test_unknown_config_key_is_named(name: str) -> None:
    with pytest.raises(LearnerConfigError, match=r"^learning_rat: not a field"):
        LEARNERS[name].config_class.from_dict({"learning_rat": 0.1})


BAD_CONFIGS = [
    ("reinforce", {"lr": -1.0}, "lr"),
    ("reinforce", {"baseline_decay": 1.0}, "baseline_decay"),
    ("reinforce", {"entropy_coef": -0.1}, "entropy_coef"),
    ("reinforce", {"max_grad_norm": -1.0}, "max_grad_norm"),
    ("reinforce", {"max_importance_weight": 0.5}, "max_importance_weight"),
    ("ppo", {"clip_eps": 0.0}, "clip_eps"),
    ("ppo", {"clip_eps": -0.2}, "clip_eps"),
    ("ppo", {"gamma": 1.5}, "gamma"),
    ("ppo", {"gae_lambda": -0.1}, "gae_lambda"),
    ("ppo", {"vf_coef": -1.0}, "vf_coef"),
    ("ppo", {"epochs": 0}, "epochs"),
    ("a2c", {"vf_coef": -0.5}, "vf_coef"),
    ("a2c", {"batch_size": 0}, "batch_size"),
    ("dqn", {"epsilon_start": 1.2}, "epsilon_start"),
    ("dqn", {"epsilon": 0.5, "epsilon_start": 0.1}, "epsilon"),
    ("dqn", {"review_cost": -0.1}, "review_cost"),
    ("dqn", {"target_update_every": 0}, "target_update_every"),
    ("dqn", {"reward_correct": -2.0}, "reward_correct"),
    ("dpo", {"beta": 0.0}, "beta"),
    ("dpo", {"lr": 0.0}, "lr"),
]


@pytest.mark.parametrize(("name", "values", "key"), BAD_CONFIGS)
def test_bad_config_names_the_key(name: str, values: dict[str, Any], key: str) -> None:
    with pytest.raises(LearnerConfigError, match=f"^{key}: "):
        LEARNERS[name].config_class.from_dict(values)


#: Every learner config: those of LEARNERS, and SFT's and the gating network's.
ALL_CONFIGS = [*(cls.config_class for cls in LEARNERS.values()), SFTConfig, GatingConfig]


@pytest.mark.parametrize("config_cls", ALL_CONFIGS, ids=lambda c: c.__name__)
def test_every_declared_range_refuses_values_outside_it_naming_the_key(
    config_cls: type[LearnerConfig],
) -> None:
    bounded = [f for f in dataclasses.fields(config_cls) if f.metadata.get("bound") is not None]
    assert {"lr", "epochs", "batch_size"} <= {f.name for f in bounded}
    for f in bounded:
        bound = f.metadata["bound"]
        for bad in (bound.low - 1.0, math.nan, math.inf):
            message = rf"^{f.name}: must be {re.escape(bound.describe())}, got {bad}"
            with pytest.raises(LearnerConfigError, match=message):
                config_cls(**{f.name: bad})


@pytest.mark.parametrize("config_cls", ALL_CONFIGS, ids=lambda c: c.__name__)
def test_a_field_overridden_by_a_subclass_keeps_a_range(config_cls: type[LearnerConfig]) -> None:
    fields = {f.name: f for f in dataclasses.fields(config_cls)}
    for base in config_cls.__mro__[1:]:
        if dataclasses.is_dataclass(base):
            for f in dataclasses.fields(base):
                if f.metadata.get("bound") is not None:
                    assert fields[f.name].metadata.get("bound") is not None, f"{config_cls.__name__}.{f.name}"


def _bad(field: str, value: Any) -> Callable[[BanditData], BanditData]:
    return lambda d: dataclasses.replace(d, **{field: value(d)})


def _set_row(arr: np.ndarray, row: int, value: Any) -> np.ndarray:
    out = arr.copy()
    out[row] = value
    return out


BAD_DATA = [
    ("empty", _bad("action", lambda d: d.action[:0]), "data: no logged decisions"),
    ("pscore 0", _bad("pscore", lambda d: _set_row(d.pscore, 4, 0.0)), "pscore: row 4 is 0.0"),
    ("pscore > 1", _bad("pscore", lambda d: _set_row(d.pscore, 2, 1.5)), "pscore: row 2 is 1.5"),
    ("action", _bad("action", lambda d: _set_row(d.action, 7, 9)), "action: row 7 has action 9"),
    ("reward nan", _bad("reward", lambda d: _set_row(d.reward, 1, np.nan)), "reward: row 1 is not finite"),
    ("labels", _bad("labels", lambda d: ["x", "y", "z", "w"]), "labels: the data's labels"),
    ("X dims", _bad("X", lambda d: d.X[:, :8]), "X: 8 features, but the policy's head takes 16"),
    ("X nan", _bad("X", lambda d: _set_row(d.X, 3, np.nan)), "X: row 3 has a non-finite value"),
]


@pytest.mark.parametrize("name", [n for n in NAMES if DATA_FOR.get(n) is _bandit])
@pytest.mark.parametrize(("case", "corrupt", "message"), BAD_DATA, ids=[c[0] for c in BAD_DATA])
def test_bad_bandit_data_is_refused_naming_the_field(
    name: str, case: str, corrupt: Callable[[BanditData], BanditData], message: str
) -> None:
    policy = fresh_policy()
    before = _state(policy)
    learner = LEARNERS[name](LEARNERS[name].config_class(**SMALL))
    with pytest.raises(LearnerDataError, match=message.replace("(", r"\(")):
        learner.fit(corrupt(_bandit()), policy)
    assert _same(_state(policy), before)
    assert not hasattr(learner, "policy_") and not hasattr(learner, "gate_")


@pytest.mark.parametrize("name", ["reinforce", "ppo", "a2c", "crm", "dpo"])
def test_a_fine_tuned_policy_stays_fine_tuned(name: str) -> None:
    """The improved policy keeps the backend (and encoder) of the one it started from."""
    cls = LEARNERS[name]
    start = fresh_policy()
    encoder = object()  # never called: the data are embeddings already
    tuned = type(start)(
        start.labels,
        head=start.head,
        in_dim=start.in_dim,
        backend="finetuned",
        encoder=encoder,  # type: ignore[arg-type]
    )
    result = _fit(cls(cls.config_class(**SMALL)), name, tuned)
    assert result.backend == "finetuned" and result._encoder is encoder


def test_progress_gets_the_step_metrics_and_history_the_epoch() -> None:
    """``progress`` is given the learner's metrics of the step; the epoch goes to ``history_`` only."""
    seen: list[set[str]] = []
    learner = LEARNERS["reinforce"](
        LEARNERS["reinforce"].config_class(**SMALL), progress=lambda s, t, m: seen.append(set(m))
    )
    _fit(learner, "reinforce", fresh_policy())
    assert seen[0] == {"loss", "policy_loss", "entropy", "mean_weight", "reward", "grad_norm", "baseline"}
    epochs = [row["time/epoch"] for row in learner.history_]
    assert epochs == [0.0] * 3 + [1.0] * 3  # 3 minibatches of 32 an epoch


def test_simulated_bandit_data_has_a_right_answer_and_refuses_too_few_features() -> None:
    data = BanditData.simulated(200, n_features=4, labels=["a", "b", "c"], seed=2)
    assert len(data) == 200 and data.X.shape == (200, 4) and np.allclose(data.pscore, 1 / 3)
    assert np.array_equal(data.reward == 1.0, data.action == data.X[:, :3].argmax(axis=1))
    assert 0 < data.reward.mean() < 1
    with pytest.raises(ValueError, match=r"n_features: 2, need at least one per label \(3\)"):
        BanditData.simulated(4, n_features=2, labels=["a", "b", "c"])
