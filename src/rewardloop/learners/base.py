"""What every learner shares: the config base, config parsing with errors naming the key, progress
callbacks, checkpointing, the typed training data built from logged decisions, and the contract every
learner, bandit and reward model keeps (:class:`Learner`, :class:`DataSpec`).
"""

from __future__ import annotations

import dataclasses
import shutil
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar, runtime_checkable

import numpy as np
import numpy.typing as npt

from rewardloop.config.sections import renamed_keys

# Re-exported: every learner config declares its fields with them.
from rewardloop.learners.bandits._params import Bound as Bound
from rewardloop.learners.bandits._params import hyperparameter as hyperparameter
from rewardloop.policies.router import RouterInputError
from rewardloop.types import DecisionBatch

if TYPE_CHECKING:
    from rewardloop.config import TrainingConfig

#: Called as ``progress(step, total_steps, metrics)`` after each optimisation step.
ProgressCallback = Callable[[int, int, Mapping[str, float]], None]

C = TypeVar("C", bound="LearnerConfig")


class LearnerConfigError(ValueError):
    """A learner config key has a bad value or does not exist; the message names the key."""


#: The ranges the learner configs use most (``Bound`` of ``learners.bandits._params``).
POSITIVE = Bound(0.0, closed="neither")
NON_NEGATIVE = Bound(0.0)
AT_LEAST_ONE = Bound(1.0)
#: [0, 1] and [0, 1): probabilities, discounts; decays, dropout and shares that must leave something.
UNIT = Bound(0.0, 1.0, closed="both")
UNIT_BELOW_ONE = Bound(0.0, 1.0)


@dataclass
class LearnerConfig:
    """Fields every learner has. Subclasses add their own, each declared once with
    :func:`hyperparameter`: its default, its help text and, where it has one, its range (a ``Bound``,
    checked by :meth:`validate`). A subclass that overrides a field's default gives its range again.
    """

    lr: float = hyperparameter(1e-3, "learning rate", POSITIVE)
    epochs: int = hyperparameter(10, "passes over the training data", AT_LEAST_ONE)
    batch_size: int = hyperparameter(64, "samples per optimisation step", AT_LEAST_ONE)
    seed: int = hyperparameter(0, "random seed; the same seed gives the same result")
    save_frequency: int = hyperparameter(0, "save a checkpoint every N steps (0: never)", NON_NEGATIVE)
    keep_last_n: int = hyperparameter(3, "how many of the newest checkpoints to keep", AT_LEAST_ONE)
    checkpoint_dir: str | None = hyperparameter(None, "folder for checkpoints")

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise LearnerConfigError naming the first field outside its range. Subclasses extend it with
        the checks a range cannot say (one field against another, a choice of words)."""
        for f in dataclasses.fields(self):
            bound: Bound | None = f.metadata.get("bound")
            if bound is not None:
                try:
                    bound.check(f.name, getattr(self, f.name))
                except RouterInputError as err:  # Bound's own error type: the routers' input error
                    raise LearnerConfigError(str(err)) from None

    def checkpointer(self) -> Checkpointer:
        """Checkpoints every ``save_frequency`` steps into ``checkpoint_dir``, keeping ``keep_last_n``."""
        return Checkpointer(self.checkpoint_dir, self.save_frequency, self.keep_last_n)

    @classmethod
    def from_dict(cls: type[C], values: Mapping[str, Any]) -> C:
        """Build from a mapping (YAML, ``--set``), naming any unknown key and the known ones.

        The old checkpoint keys (``checkpoint_every``, ``keep_checkpoints``) still work, with a
        DeprecationWarning naming the version that removes them.
        """
        values = _renamed(values)
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


def _renamed(values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` with the old checkpoint keys renamed (a DeprecationWarning for each)."""
    try:
        return renamed_keys(values)
    except ValueError as err:
        raise LearnerConfigError(str(err)) from None


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


@dataclass
class GradientClipConfig(LearnerConfig):
    """The gradient-norm clip of the gradient learners (REINFORCE, A2C, PPO, CRM, DPO, DQN)."""

    max_grad_norm: float = hyperparameter(
        1.0, "clip the gradient's total norm to this (0: no clipping)", NON_NEGATIVE
    )


@dataclass
class ValueHeadConfig(LearnerConfig):
    """The critic of the actor-critic learners (A2C, PPO): a value head on the policy's embeddings."""

    vf_coef: float = hyperparameter(0.5, "weight of the critic's squared error", NON_NEGATIVE)
    value_hidden: int = hyperparameter(0, "hidden width of the value head (0: linear)", NON_NEGATIVE)


@dataclass
class PolicyGradientConfig(GradientClipConfig):
    """The fields of the importance-weighted policy-gradient learners (REINFORCE, A2C)."""

    lr: float = hyperparameter(5e-3, "Adam learning rate", POSITIVE)
    epochs: int = hyperparameter(5, "passes over the logged decisions", AT_LEAST_ONE)
    entropy_coef: float = hyperparameter(
        0.01, "weight of the entropy bonus (keeps some exploration)", NON_NEGATIVE
    )
    importance_weighting: bool = hyperparameter(
        True, "weight each row by π(a|x)/pscore (off-policy correction for logged data)"
    )
    max_importance_weight: float = hyperparameter(
        10.0, "clip importance weights at this value (bounds the variance)", AT_LEAST_ONE
    )


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
    skipped : dict of str to int
        Rewarded decisions that gave no row, by reason (an action that is not a label).
    """

    X: npt.NDArray[np.float32]
    action: npt.NDArray[np.int64]
    reward: npt.NDArray[np.float64]
    pscore: npt.NDArray[np.float64]
    labels: list[str]
    skipped: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.action)

    @classmethod
    def simulated(cls, n: int, n_features: int, labels: Sequence[str], seed: int = 0) -> BanditData:
        """``n`` decisions on Gaussian contexts, logged by a uniform random policy over ``labels``
        (pscore 1/K), with reward 1 where the action is the arg-max of the first K features: a small
        problem with a right answer, for examples and smoke tests.

        >>> data = BanditData.simulated(8, n_features=3, labels=["a", "b"], seed=1)
        >>> data.X.shape, data.pscore[0], set(data.reward) <= {0.0, 1.0}
        ((8, 3), np.float64(0.5), True)
        """
        if n_features < len(labels):
            raise ValueError(f"n_features: {n_features}, need at least one per label ({len(labels)})")
        rng = np.random.default_rng(seed)
        X = rng.normal(size=(n, n_features)).astype(np.float32)
        action = rng.integers(0, len(labels), n)
        right = X[:, : len(labels)].argmax(axis=1)
        return cls(X, action, (action == right).astype(np.float64), np.full(n, 1 / len(labels)), list(labels))

    @classmethod
    def from_batch(
        cls,
        batch: DecisionBatch,
        labels: Sequence[str],
        embed: Callable[[list[str]], npt.NDArray[np.float32]],
    ) -> BanditData:
        """Arrays from the decisions of ``batch`` that have a compiled reward.

        Decisions whose action is not in ``labels`` are skipped and counted in ``skipped``: one bad
        row must not stop every later training run.
        """
        rewarded = batch.with_rewards()
        index = {label: i for i, label in enumerate(labels)}
        keep = [d for d in rewarded if d.action in index]
        n_bad = len(rewarded) - len(keep)
        skipped = {"action not a label of the policy": n_bad} if n_bad else {}
        rows = DecisionBatch(keep, rewards=rewarded.rewards) if skipped else rewarded
        texts = [d.text or "" for d in rows]
        return cls(
            X=embed(texts) if texts else np.zeros((0, 0), np.float32),
            action=np.asarray([index[d.action] for d in rows], dtype=np.int64),
            reward=rows.reward_array(),
            pscore=rows.pscore,
            labels=list(labels),
            skipped=skipped,
        )


# ------------------------------------------------------------------------------- the learner contract


@dataclass(frozen=True)
class DataSpec:
    """What a learner's ``data_from_batch`` needs besides the batch; each learner reads what it uses.

    Attributes
    ----------
    config : LearnerConfig or None
        The learner's resolved config (e.g. ``use_confirmations`` of the supervised learner).
    labels : list of str or None
        The policy's label (or arm) order; None: the labels seen in the data.
    embed : callable or None
        ``embed(texts) -> (n, d) float32`` context embeddings (classifier learners).
    features : object or None
        A router's context builder (``policies.router.ContextFeatures``), for the bandits and gating.
    step_name : str
        The trace step that holds the expert choice (gating).
    """

    config: Any = None
    labels: Sequence[str] | None = None
    embed: Callable[[list[str]], npt.NDArray[np.float32]] | None = None
    features: Any = None
    step_name: str = "expert"


@runtime_checkable
class Learner(Protocol):
    """The contract every learner, bandit router, the gating network and the reward models keep
    (DESIGN.md, "Two contracts").

    The orchestration (:mod:`rewardloop.loop.training`) does, for every one of them::

        data = cls.data_from_batch(batch, DataSpec(config=..., labels=..., embed=...))
        fitted = learner.fit(data, policy=start)      # -> the fitted policy (DQN: its AbstainGate)
        fitted.save(folder); run.metrics |= summarise(learner.history_)

    Class attributes:

    - ``name``: its name (in ``learners.LEARNERS``, ``ROUTERS``; the TrainingRun's learner);
    - ``needs_rewards``: it learns from compiled rewards, so a reward spec must be named;
    - ``needs_policy``: it improves a trained policy (``training.init_from``) and cannot start fresh;
    - ``reads_texts``: it embeds texts itself (LoRA, reward models): the caller does not pre-embed.

    After ``fit``, ``history_`` holds one dict per step with namespaced keys (``train/loss``,
    ``train/approx_kl``, ``time/step``), written with :class:`~rewardloop.types.history.MetricsRecorder`.
    """

    name: ClassVar[str]
    needs_rewards: ClassVar[bool]
    needs_policy: ClassVar[bool]
    reads_texts: ClassVar[bool]
    history_: list[dict[str, float]]

    @staticmethod
    def data_from_batch(batch: DecisionBatch, spec: DataSpec, /) -> Any: ...

    def fit(self, data: Any, /, *, policy: Any = None) -> Any: ...


@runtime_checkable
class ConfiguredLearner(Learner, Protocol):
    """A learner of ``learners.LEARNERS``: built from its config dataclass (``training`` in the YAML)."""

    config_class: ClassVar[type[LearnerConfig]]

    # ``config``: the learner's own config class (None: its defaults); progress(step, total, metrics).
    def __init__(self, config: Any = None, progress: ProgressCallback | None = None) -> None: ...


def bandit_data_from_batch(batch: DecisionBatch, spec: DataSpec) -> BanditData:
    """The data of the RL learners: decisions with a compiled reward, embedded with ``spec.embed``."""
    if spec.labels is None or spec.embed is None:
        raise ValueError("data: the RL learners need the policy's labels and encoder (training.init_from)")
    return BanditData.from_batch(batch, spec.labels, spec.embed)


def require_policy(policy: Any, name: str) -> Any:
    """``policy``, or a ValueError saying that the ``name`` learner improves a trained policy."""
    if policy is None:
        raise ValueError(f"policy: the {name} learner improves a trained policy; pass policy=")
    return policy


#: ``training.<key>`` in rewardloop.yaml → the learner-config fields it sets, first match wins. The
#: flat YAML names (``ppo_eps_clip``, ``dqn_epsilon``, ``clip_grad_norm``...) map onto each learner's
#: own field names; a flat key the learner has no field for is reported as not used.
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
    "baseline_decay": ("baseline_decay",),
    "clip_grad_norm": ("max_grad_norm", "clip_grad_norm"),
    "entropy_coef": ("entropy_coef", "beta_entropy"),
    "save_frequency": ("save_frequency",),
    "keep_last_n": ("keep_last_n",),
    "checkpoint_dir": ("checkpoint_dir",),
}


def resolve_config(config_cls: type[C], training: TrainingConfig) -> tuple[C, list[str]]:
    """The learner config from the ``training`` section; also the flat keys this learner does not use.

    Flat keys (``lr``, ``ppo_eps_clip``...) that are set fill the learner field they map to
    (:data:`FLAT_TRAINING_KEYS`); ``training.options`` sets any other field by its own name. Each
    hyperparameter is set one way: a field set both by a flat key and in ``options`` is an error
    naming both. Errors name the YAML key: ``training.options.clip: not a field of PPOConfig ...``.
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
    for key, value in _renamed(training.options).items():
        if key in values and key in source:
            raise LearnerConfigError(
                f"training.options.{key}: set by {source[key]} already; set each hyperparameter one way"
            )
        values[key] = value
        source[key] = f"training.options.{key}"
    try:
        return config_cls.from_dict(values), ignored
    except LearnerConfigError as err:
        key, sep, rest = str(err).partition(":")
        where = source.get(key, f"training.options.{key}" if key in values else "training")
        raise LearnerConfigError(f"{where}:{rest}" if sep else str(err)) from None
