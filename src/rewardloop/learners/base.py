"""What every learner shares: the config base, config parsing with errors naming the key, progress
callbacks, checkpointing, the typed training data built from logged decisions, and the contract the
``rewardloop train`` command relies on (:class:`Learner`).
"""

from __future__ import annotations

import dataclasses
import shutil
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import numpy as np
import numpy.typing as npt

from rewardloop.types import DecisionBatch

if TYPE_CHECKING:
    from rewardloop.config import TrainingConfig
    from rewardloop.policies.classifier import ClassifierPolicy

#: Called as ``progress(step, total_steps, metrics)`` after each optimisation step.
ProgressCallback = Callable[[int, int, Mapping[str, float]], None]

C = TypeVar("C", bound="LearnerConfig")


class LearnerConfigError(ValueError):
    """A learner config key has a bad value or does not exist; the message names the key."""


@dataclass
class LearnerConfig:
    """Fields every learner has. Subclasses add their own, each with a default and help text."""

    lr: float = field(default=1e-3, metadata={"help": "learning rate"})
    epochs: int = field(default=10, metadata={"help": "passes over the training data"})
    batch_size: int = field(default=64, metadata={"help": "samples per optimisation step"})
    seed: int = field(default=0, metadata={"help": "random seed; the same seed gives the same result"})
    checkpoint_every: int = field(default=0, metadata={"help": "save a checkpoint every N steps (0: never)"})
    keep_checkpoints: int = field(default=3, metadata={"help": "how many of the newest checkpoints to keep"})
    checkpoint_dir: str | None = field(default=None, metadata={"help": "folder for checkpoints"})

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise LearnerConfigError naming the first bad key. Subclasses extend it."""
        if not self.lr > 0:
            raise LearnerConfigError(f"lr: must be > 0, got {self.lr}")
        for key in ("epochs", "batch_size"):
            if getattr(self, key) < 1:
                raise LearnerConfigError(f"{key}: must be >= 1, got {getattr(self, key)}")
        if self.checkpoint_every < 0 or self.keep_checkpoints < 1:
            raise LearnerConfigError("checkpoint_every must be >= 0 and keep_checkpoints >= 1")

    @classmethod
    def from_dict(cls: type[C], values: Mapping[str, Any]) -> C:
        """Build from a mapping (YAML, ``--set``), naming any unknown key and the known ones."""
        names = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(names))
        if unknown:
            raise LearnerConfigError(
                f"{unknown[0]}: not a field of {cls.__name__} (fields: {', '.join(sorted(names))})"
            )
        hints = typing.get_type_hints(cls)
        checked = {k: _checked_value(k, v, hints.get(k)) for k, v in values.items()}
        try:
            return cls(**checked)
        except TypeError as err:
            raise LearnerConfigError(f"{cls.__name__}: {err}") from None

    @classmethod
    def help(cls) -> dict[str, str]:
        """Field name → help text (for the CLI and the YAML schema)."""
        return {f.name: f.metadata.get("help", "") for f in dataclasses.fields(cls)}


def _checked_value(key: str, value: Any, hint: Any) -> Any:
    """``value`` checked against a simple field type (int, float, bool, str, optional), else as is.

    YAML and ``--set`` give loosely typed values: an int is accepted for a float field; a string for
    a number, or a number for a bool, is an error naming the key.
    """
    args = typing.get_args(hint)
    if type(None) in args:
        if value is None:
            return None
        rest = [a for a in args if a is not type(None)]
        hint = rest[0] if len(rest) == 1 else Any
    if hint is bool and not isinstance(value, bool):
        raise LearnerConfigError(f"{key}: expected true or false, got {value!r}")
    if hint is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise LearnerConfigError(f"{key}: expected an integer, got {value!r}")
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise LearnerConfigError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if hint is str and not isinstance(value, str):
        raise LearnerConfigError(f"{key}: expected a string, got {value!r}")
    return value


def checked_config(config: LearnerConfig | None, config_cls: type[C]) -> C:
    """``config``, or the defaults of ``config_cls`` when None; another config class is refused."""
    if config is None:
        return config_cls()
    if not isinstance(config, config_cls):
        raise LearnerConfigError(f"config: expected {config_cls.__name__}, got {type(config).__name__}")
    return config


class Checkpointer:
    """Save every N steps into ``folder/step-000123/``, keeping the newest ``keep``."""

    def __init__(self, folder: str | Path | None, every: int, keep: int) -> None:
        self.folder = Path(folder) if folder else None
        self.every = every
        self.keep = keep

    def maybe_save(self, step: int, save: Callable[[Path], Any]) -> Path | None:
        if self.folder is None or self.every <= 0 or step % self.every:
            return None
        target = self.folder / f"step-{step:06d}"
        save(target)
        existing = sorted(p for p in self.folder.glob("step-*") if p.is_dir())
        for old in existing[: -self.keep]:
            shutil.rmtree(old)
        return target


@dataclass(frozen=True)
class BanditData:
    """Logged single-step decisions as arrays, for the off-policy learners.

    Attributes
    ----------
    X : ndarray of shape (n_rounds, n_features)
        Context embeddings.
    action : ndarray of shape (n_rounds,)
        Index of the logged action in ``labels``.
    reward : ndarray of shape (n_rounds,)
    pscore : ndarray of shape (n_rounds,)
        Propensity of the logged action under the logging policy.
    labels : list of str
    """

    X: npt.NDArray[np.float32]
    action: npt.NDArray[np.int64]
    reward: npt.NDArray[np.float64]
    pscore: npt.NDArray[np.float64]
    labels: list[str]

    def __len__(self) -> int:
        return len(self.action)

    @classmethod
    def from_batch(
        cls,
        batch: DecisionBatch,
        labels: Sequence[str],
        embed: Callable[[list[str]], npt.NDArray[np.float32]],
    ) -> BanditData:
        """Arrays from the decisions of ``batch`` that have a compiled reward.

        Decisions whose action is not in ``labels`` are refused with the decision id.
        """
        rows = batch.with_rewards()
        index = {label: i for i, label in enumerate(labels)}
        actions = []
        for d in rows:
            if d.action not in index:
                raise ValueError(f"decision {d.id}: action {d.action!r} is not a label of this policy")
            actions.append(index[d.action])
        texts = [d.text or "" for d in rows]
        return cls(
            X=embed(texts) if texts else np.zeros((0, 0), np.float32),
            action=np.asarray(actions, dtype=np.int64),
            reward=rows.reward_array(),
            pscore=rows.pscore,
            labels=list(labels),
        )


# ------------------------------------------------------------------------------- the learner contract


class Learner(Protocol):
    """What ``rewardloop train`` (and the loop) expect of a learner class in ``learners.LEARNERS``.

    The command does, in order::

        config = resolve_config(cls.config_class, cfg.training)         # YAML + --set, keys checked
        learner = cls(config, progress=callback)
        data = cls.data_from_batch(batch, policy, config)                # or bandit_data_from_batch
        fitted = learner.fit(data, policy=policy)                        # -> policy (DQN: a gate)

    ``batch`` is ``read_decisions(include_feedback=True, reward_spec=...)`` for the policy and window;
    ``policy`` the starting policy (``training.init_from``), or None when ``needs_policy`` is False and
    none is given. Class attributes the command reads, with their defaults when absent:

    - ``name`` and ``config_class`` (a :class:`LearnerConfig` subclass) — required;
    - ``needs_rewards = True``: the command refuses to run without ``training.reward_spec``;
    - ``needs_policy = True``: the command refuses to run without ``training.init_from``;
    - ``data_from_batch``: default :func:`bandit_data_from_batch` (decisions with a compiled reward);
    - ``reads_texts = False``: when False, the command embeds the texts first (one progress bar, and
      the learner's embedding calls hit the encoder's cache).
    """

    # Read-only members, so that plain class attributes (``name = "ppo"``, ``config_class = PPOConfig``)
    # satisfy the protocol without ClassVar annotations.
    @property
    def name(self) -> str: ...

    @property
    def config_class(self) -> type[LearnerConfig]: ...

    # ``config`` is the learner's own config_class (None: its defaults); ``policy`` is passed by keyword,
    # and may be required (RL learners) or optional (supervised ones).
    def __init__(self, config: Any = None, progress: ProgressCallback | None = None) -> None: ...

    # The fitted ClassifierPolicy; DQN returns the AbstainGate it learned over one. Both have save().
    def fit(self, data: Any, *, policy: Any) -> Any: ...


def bandit_data_from_batch(batch: DecisionBatch, policy: ClassifierPolicy, config: Any = None) -> BanditData:
    """The default training data of a learner: decisions with a compiled reward, embedded by ``policy``."""
    return BanditData.from_batch(batch, policy.labels, policy.embed)


#: ``training.<key>`` in rewardloop.yaml → the learner-config fields it sets, first match wins. The
#: issue's flat YAML names (``ppo_eps_clip``, ``dqn_epsilon``...) map onto each learner's own field names.
FLAT_TRAINING_KEYS: dict[str, tuple[str, ...]] = {
    "lr": ("lr",),
    "batch_size": ("batch_size",),
    "epochs": ("epochs",),
    "seed": ("seed",),
    "gamma": ("gamma",),
    "update_epochs": ("update_epochs",),
    "ppo_eps_clip": ("clip_eps", "eps_clip", "ppo_eps_clip"),
    "ppo_lambda": ("gae_lambda", "lam", "ppo_lambda"),
    "dqn_epsilon": ("epsilon", "dqn_epsilon"),
}


def resolve_config(config_cls: type[C], training: TrainingConfig) -> tuple[C, list[str]]:
    """The learner config from the ``training`` section; also the flat keys this learner does not use.

    Flat keys (``lr``, ``ppo_eps_clip``...) that are set fill the learner field they map to
    (:data:`FLAT_TRAINING_KEYS`); ``training.options`` then sets any field by its own name and wins.
    Errors name the YAML key: ``training.options.clip: not a field of PPOConfig (fields: ...)``.
    """
    names = {f.name for f in dataclasses.fields(config_cls)}
    values: dict[str, Any] = {}
    source: dict[str, str] = {}
    ignored: list[str] = []
    for key, targets in FLAT_TRAINING_KEYS.items():
        value = getattr(training, key, None)
        if value is None:
            continue
        target = next((t for t in targets if t in names), None)
        if target is None:
            ignored.append(key)
            continue
        values[target] = value
        source[target] = f"training.{key}"
    for key, value in training.options.items():
        values[key] = value
        source[key] = f"training.options.{key}"
    try:
        return config_cls.from_dict(values), ignored
    except LearnerConfigError as err:
        message = str(err)
        key = message.split(":", 1)[0]
        where = source.get(key, f"training.options.{key}" if key in values else "training")
        raise LearnerConfigError(
            f"{where}:{message.split(':', 1)[1]}" if ":" in message else message
        ) from None
