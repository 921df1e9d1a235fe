"""What every bandit router shares: arms and their priors, input checks, statistics, save/load.

A router is one object with ``act`` (decide) and ``learn`` (one rank-one update from one reward); see
:mod:`rewardloop.policies.router` for why deciding and learning are not split. Algorithms subclass
:class:`BanditRouter` and fill in five hooks: the per-arm state of a new arm, deleting an arm's state,
the decision on a checked context, the update from one reward, and the batch update.

The hyperparameters are dataclass fields, each with its help text and, where it has one, its allowed
range (``_params.Bound``, scikit-learn's ``Interval``): ``__init__``, ``get_params`` and the range
checks come from them, so an algorithm declares its own fields and writes only what makes it different.

Every public method validates its whole input before touching any state, so a bad call raises
:class:`~rewardloop.policies.router.RouterInputError` and leaves the router exactly as it was.
"""

from __future__ import annotations

import dataclasses
import json
import math
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from rewardloop.learners.bandits._params import hyperparameter, plain
from rewardloop.learners.bandits._partition import MapParts, partitioned_statistics
from rewardloop.learners.bandits._saved import FORMAT_VERSION, read_saved
from rewardloop.policies.contract import DecisionContext
from rewardloop.policies.router import ArmStats, FloatArray, LeaderboardRow, RouterDecision, RouterInputError
from rewardloop.types import Decision

IntArray = npt.NDArray[np.int64]

PriorSpec = tuple[float, float] | Mapping[str, float]
#: ``decide`` lends the caller's generator to the algorithm's ``_decide`` (which draws from ``rng_``);
#: one decision at a time, so that concurrent requests never see each other's generator.
_DECIDE_LOCK = threading.Lock()


@dataclass(eq=False, kw_only=True)
class BanditRouter:
    """Base class of the bandit routers (not used directly).

    Parameters
    ----------
    arms : sequence of str
        The arms (agents, experts, models) to route between; at least one, no repeats.
    priors : mapping of arm -> (mean, strength) or {"mean": m, "strength": s}, optional
        Per-arm prior: a prior mean reward and a strength counted in pseudo-observations (the prior
        weighs as much as ``strength`` rewards equal to ``mean``). Arms not named take
        ``default_prior``.
    default_prior : (mean, strength), default (0.0, 0.0)
        The prior of arms without one; strength 0 means no prior information.
    reward_range : (low, high), default (0.0, 1.0)
        Declared range of rewards; ``learn`` refuses rewards outside it.
    random_state : int or None
        Seed of the router's random generator (tie-breaking, exploration, Thompson draws).
    """

    arms: Sequence[str] = field(kw_only=False)
    priors: Mapping[str, PriorSpec] | None = hyperparameter(
        None, "per-arm prior (mean, strength in pseudo-observations); arms not named take default_prior"
    )
    default_prior: tuple[float, float] = hyperparameter(
        (0.0, 0.0), "prior (mean, strength) of arms without one; strength 0: no prior information"
    )
    reward_range: tuple[float, float] = hyperparameter(
        (0.0, 1.0), "declared (low, high) range of rewards; learn refuses rewards outside it"
    )
    random_state: int | None = hyperparameter(
        None, "seed of the router's generator (tie-breaking, exploration, Thompson draws)"
    )

    algorithm: ClassVar[str] = "base"
    needs_context: ClassVar[bool] = True
    #: The learner contract: replay of logged rewards; a fresh router starts at its priors.
    needs_rewards: ClassVar[bool] = True
    needs_policy: ClassVar[bool] = False
    reads_texts: ClassVar[bool] = False
    history_: list[dict[str, float]] = field(init=False, repr=False)
    replay_report_: Any = field(init=False, repr=False)
    #: The learner contract's name: the algorithm's (set for each subclass).
    name: ClassVar[str] = "base"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.name = cls.algorithm

    #: The algorithm's ``_decide`` refuses non-finite scores itself (so ``act`` skips the NaN/inf check
    #: of the context: a NaN or inf in x always reaches the scores).
    checks_scores: ClassVar[bool] = False

    def __post_init__(self) -> None:
        self._ready = False

    # ------------------------------------------------------------------------------------- parameters

    @classmethod
    def help(cls) -> dict[str, str]:
        """Hyperparameter name → help text (for the CLI and the YAML schema)."""
        return {f.name: f.metadata["help"] for f in dataclasses.fields(cls) if "help" in f.metadata}

    def get_params(self) -> dict[str, Any]:
        """Hyperparameters as JSON-able values (scikit-learn convention)."""
        params = {f.name: plain(getattr(self, f.name)) for f in dataclasses.fields(self) if f.init}
        return params | {
            "arms": list(self.arms),
            "priors": {a: list(_prior_pair(f"priors.{a}", p)) for a, p in (self.priors or {}).items()},
            "default_prior": list(self.default_prior),
            "reward_range": list(self.reward_range),
        }

    def _check_prior(self, where: str, spec: PriorSpec) -> tuple[float, float]:
        mean, strength = _prior_pair(where, spec)
        lo, hi = self._range
        if not (math.isfinite(strength) and strength >= 0):
            raise RouterInputError(where, f"prior strength must be >= 0 pseudo-observations, got {strength}")
        if strength == 0:  # no prior information: the mean has no effect, take the range's low end
            return (mean if math.isfinite(mean) and lo <= mean <= hi else lo), 0.0
        if not (math.isfinite(mean) and lo <= mean <= hi):
            raise RouterInputError(where, f"prior mean {mean} is outside the reward range [{lo}, {hi}]")
        return mean, strength

    def _validate_params(self) -> None:
        """Check every hyperparameter that has a bound (``_params.Bound``; subclasses extend)."""
        for f in dataclasses.fields(self):
            bound = f.metadata.get("bound")
            if bound is not None:
                bound.check(f.name, getattr(self, f.name))

    def _init_state(self) -> None:
        """Build the state from the hyperparameters: every arm at its prior."""
        if isinstance(self.arms, str) or len(self.arms) == 0:
            raise RouterInputError("arms", "must be a non-empty sequence of arm names")
        names = [str(a) for a in self.arms]
        if len(set(names)) != len(names):
            raise RouterInputError("arms", f"must not repeat an arm: {names}")
        lo, hi = (float(v) for v in self.reward_range)
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise RouterInputError(
                "reward_range", f"must be finite (low, high) with low < high, got {self.reward_range}"
            )
        self._range = (lo, hi)
        self._validate_params()
        unknown = sorted(set(self.priors or {}) - set(names))
        if unknown:
            raise RouterInputError(f"priors.{unknown[0]}", f"no such arm; arms are {names}")
        default = self._check_prior("default_prior", self.default_prior)
        priors = {a: self._check_prior(f"priors.{a}", p) for a, p in (self.priors or {}).items()}
        self.arms_: list[str] = []
        self._index: dict[str, int] = {}
        self.arm_priors_: dict[str, tuple[float, float]] = {}
        self.retired_: list[str] = []
        self.rng_ = np.random.default_rng(self.random_state)
        self.stats_ = ArmStats(reward_range=self._range)
        self.n_pulls_: FloatArray = np.zeros(0)
        self._empty_state()
        for a in names:
            self._append_arm(a, priors.get(a, default))
        self._ready = True

    def _ensure(self) -> None:
        if not self._ready:
            self._init_state()

    def reset(self) -> BanditRouter:
        """Forget everything learned: every arm back at its prior, statistics emptied."""
        self._init_state()
        return self

    # ------------------------------------------------------------------------------------------ arms

    @property
    def n_actions(self) -> int:
        self._ensure()
        return len(self.arms_)

    def _append_arm(self, name: str, prior: tuple[float, float]) -> None:
        self._add_arm_state(*prior)
        self._index[name] = len(self.arms_)
        self.arms_.append(name)
        self.arm_priors_[name] = prior
        self.n_pulls_ = np.append(self.n_pulls_, 0.0)

    def add_arm(self, name: str, prior: PriorSpec | None = None) -> None:
        """Add an arm while running (a new agent deployed); the other arms keep their state.

        ``prior`` is (mean, strength) as in ``priors``; default ``default_prior``. A retired arm may be
        added back: it starts again from its prior.
        """
        self._ensure()
        if not isinstance(name, str) or not name:
            raise RouterInputError("arm", "an arm name must be a non-empty string")
        if name in self._index:
            raise RouterInputError("arm", f"{name!r} is already an arm")
        checked = self._check_prior(f"priors.{name}", prior if prior is not None else self.default_prior)
        self._append_arm(name, checked)
        if name in self.retired_:
            self.retired_.remove(name)
            self.stats_.retired.discard(name)

    def retire_arm(self, name: str) -> None:
        """Stop routing to an arm; its state is dropped, its statistics stay on the leaderboard."""
        self._ensure()
        i = self._arm_index(name)
        if len(self.arms_) == 1:
            raise RouterInputError("arm", f"cannot retire {name!r}: it is the last arm")
        self._delete_arm_state(i)
        self.n_pulls_ = np.delete(self.n_pulls_, i)
        del self.arms_[i]
        del self.arm_priors_[name]
        self._index = {a: j for j, a in enumerate(self.arms_)}
        self.retired_.append(name)
        self.stats_.retired.add(name)

    def _arm_index(self, arm: str) -> int:
        try:
            return self._index[arm]
        except (KeyError, TypeError):
            if arm in self.retired_:
                raise RouterInputError("arm", f"{arm!r} is retired; add it back with add_arm") from None
            raise RouterInputError("arm", f"unknown arm {arm!r}; arms are {self.arms_}") from None

    # ------------------------------------------------------------------------------------ act / learn

    def _check_reward(self, reward: float) -> float:
        try:
            r = float(reward)
        except (TypeError, ValueError):
            raise RouterInputError("reward", f"must be a number, got {type(reward).__name__}") from None
        lo, hi = self._range
        if not lo <= r <= hi:  # also False for NaN
            raise RouterInputError("reward", f"{r} is outside the declared reward range [{lo}, {hi}]")
        return r

    def _check_context(self, x: Any, check_finite: bool = True) -> Any:
        """The checked (and possibly augmented) context the hooks work on.

        ``check_finite=False`` leaves the NaN/inf check to ``_update`` (which must then refuse a
        non-finite context before changing anything).
        """
        return None

    def _act_context(self, x: Any) -> Any:
        """The context ``_decide`` works on (the per-step kernels take it unaugmented)."""
        return self._check_context(x, not self.checks_scores)

    def _learn_context(self, x: Any) -> Any:
        """The context ``_update`` works on; its NaN/inf check is left to ``_update``."""
        return self._check_context(x, check_finite=False)

    def act(self, x: Any = None) -> RouterDecision:
        """Choose an arm for context ``x``.

        Parameters
        ----------
        x : array-like of shape (dim,)
            The context (ignored by context-free routers).

        Returns
        -------
        RouterDecision
            The arm, the full action distribution, the chosen arm's propensity and the scores.
        """
        if not self._ready:
            self._init_state()
        i, dist, scores = self._decide(self._act_context(x))
        return RouterDecision(self.arms_[i], i, dist, float(dist[i]), scores, tuple(self.arms_))

    def decide(self, context: DecisionContext, rng: np.random.Generator) -> Decision:
        """Choose an arm for ``context.features`` with draws from ``rng`` (the policy contract).

        The loggable :class:`~rewardloop.types.Decision` (kind ``router``, named after the algorithm
        until the serving path names it): the arm, the full action distribution, its propensity and
        the latency. The router's own generator ``rng_`` is set aside, not advanced.
        """
        features = context.require_features() if self.needs_context else context.features
        start = time.perf_counter()
        with _DECIDE_LOCK:
            self._ensure()
            own, self.rng_ = self.rng_, rng
            try:
                routed = self.act(None if features is None else np.asarray(features, dtype=np.float64))
            finally:
                self.rng_ = own
        latency = (time.perf_counter() - start) * 1000.0
        return routed.to_record(
            self.algorithm, "0", features, context.text, context.metadata, latency_ms=latency
        )

    def learn(
        self, x: Any, arm: str, reward: float, category: str | None = None, weight: float = 1.0
    ) -> None:
        """Update from one reward for ``arm`` in context ``x``.

        Parameters
        ----------
        x : array-like of shape (dim,)
            The context the arm was chosen in (ignored by context-free routers).
        arm : str
            The arm that was played.
        reward : float
            Its reward, inside ``reward_range``.
        category : str, optional
            A category for the per-category statistics (e.g. the question's topic).
        weight : float, default 1.0
            Importance weight of this observation (e.g. target / logging propensity).
        """
        xa, i, r = self._checked(x, arm, reward, weight)
        self._update(xa, i, r, float(weight))
        self.n_pulls_[i] += 1.0
        self.stats_.add(arm, r, category)

    def unlearn(
        self, x: Any, arm: str, reward: float, category: str | None = None, weight: float = 1.0
    ) -> None:
        """Take back one reward :meth:`learn` applied with the same arguments (the same update with
        weight ``-weight``: every state is a sum over rewards); the online learner revises this way."""
        xa, i, r = self._checked(x, arm, reward, weight)
        self._update(xa, i, r, -float(weight))
        self.n_pulls_[i] -= 1.0
        self.stats_.remove(arm, r, category)

    def _checked(self, x: Any, arm: str, reward: float, weight: float) -> tuple[Any, int, float]:
        if not self._ready:
            self._init_state()
        xa = self._learn_context(x)
        i = self._arm_index(arm)
        r = self._check_reward(reward)
        if weight != 1.0 and not (math.isfinite(weight) and weight > 0):
            raise RouterInputError("weight", f"must be a finite number > 0, got {weight}")
        return xa, i, r

    # ------------------------------------------------------------------------------------- batch fit

    def _check_batch(
        self,
        X: Any,
        arms: Sequence[str] | npt.ArrayLike,
        rewards: npt.ArrayLike,
        sample_weight: npt.ArrayLike | None,
    ) -> tuple[Any, IntArray, FloatArray, FloatArray]:
        r = np.asarray(rewards, dtype=np.float64)
        n = len(r)
        if r.ndim != 1:
            raise RouterInputError("rewards", f"must be one-dimensional, got shape {r.shape}")
        arms_arr = np.asarray(arms)
        if arms_arr.shape != (n,):
            raise RouterInputError("arms", f"must have one arm per reward ({n}), got shape {arms_arr.shape}")
        if arms_arr.dtype.kind in "iu":
            idx = arms_arr.astype(np.int64)
            bad = np.flatnonzero((idx < 0) | (idx >= len(self.arms_)))
            if len(bad):
                raise RouterInputError(f"arms[{bad[0]}]", f"arm index {idx[bad[0]]} out of range")
        else:
            lookup = self._index
            idx = np.empty(n, dtype=np.int64)
            for row, a in enumerate(arms_arr.tolist()):
                j = lookup.get(a)
                if j is None:
                    raise RouterInputError(f"arms[{row}]", f"unknown arm {a!r}; arms are {self.arms_}")
                idx[row] = j
        lo, hi = self._range
        bad = np.flatnonzero(~((r >= lo) & (r <= hi)))
        if len(bad):
            raise RouterInputError(
                f"rewards[{bad[0]}]", f"{r[bad[0]]} is outside the declared reward range [{lo}, {hi}]"
            )
        if sample_weight is None:
            w = np.ones(n)
        else:
            w = np.asarray(sample_weight, dtype=np.float64)
            if w.shape != (n,):
                raise RouterInputError("sample_weight", f"must have shape ({n},), got {w.shape}")
            bad = np.flatnonzero(~(np.isfinite(w) & (w > 0)))
            if len(bad):
                raise RouterInputError(f"sample_weight[{bad[0]}]", f"must be finite and > 0, got {w[bad[0]]}")
        Xa = self._check_contexts(X, n)
        return Xa, idx, r, w

    def _check_contexts(self, X: Any, n: int) -> Any:
        return None

    def partial_fit(
        self,
        X: Any,
        arms: Sequence[str] | npt.ArrayLike,
        rewards: npt.ArrayLike,
        sample_weight: npt.ArrayLike | None = None,
        categories: Sequence[str | None] | None = None,
        *,
        partitions: int = 1,
        map_parts: MapParts | None = None,
    ) -> BanditRouter:
        """Add a batch of logged (context, arm, reward) rows to the current state, vectorised.

        The result equals calling :meth:`learn` row by row (up to floating-point rounding); only the
        random generator is not advanced. ``arms`` are names, or indices into ``arms_``. With
        ``partitions`` > 1 the additive statistics of contiguous parts of the rows are computed by
        ``map_parts`` (e.g. Ray tasks) and summed (:mod:`~rewardloop.learners.bandits._partition`).

        Parameters
        ----------
        X : array-like of shape (n_rounds, dim)
            Contexts (None for context-free routers).
        arms : sequence of str or int array, shape (n_rounds,)
        rewards : array-like of shape (n_rounds,)
        sample_weight : array-like of shape (n_rounds,), optional
            Importance weights (see :func:`rewardloop.learners.bandits.replay.replay_weights`).
        categories : sequence of str or None, optional
            Per-row categories for the statistics.
        """
        self._ensure()
        Xa, idx, r, w = self._check_batch(X, arms, rewards, sample_weight)
        if categories is not None and len(categories) != len(r):
            raise RouterInputError("categories", f"must have one entry per row ({len(r)})")
        if partitions > 1:
            self._apply_statistics(partitioned_statistics(self, (Xa, idx, r, w), partitions, map_parts))
        else:
            self._batch_update(Xa, idx, r, w)
        k = len(self.arms_)
        counts = np.bincount(idx, minlength=k)
        self.n_pulls_ += counts
        self._add_stats(idx, r, counts, categories)
        return self

    def fit(
        self,
        X: Any,
        arms: Sequence[str] | npt.ArrayLike | None = None,
        rewards: npt.ArrayLike | None = None,
        sample_weight: npt.ArrayLike | None = None,
        categories: Sequence[str | None] | None = None,
        *,
        policy: BanditRouter | None = None,
        **replay_options: Any,
    ) -> BanditRouter:
        """Start from the priors and learn a whole batch of logged rows (see :meth:`partial_fit`).

        The learner contract: given :class:`~rewardloop.learners.bandits.replay.LoggedRows` as ``X``
        (what :meth:`data_from_batch` builds), replay them — from ``policy`` (a saved router to
        continue) or from the priors; ``replay_options`` go to
        :func:`~rewardloop.learners.bandits.replay.fit_logged`. Returns the router.
        """
        if arms is None:
            from rewardloop.learners.bandits.replay import fit_logged

            return fit_logged(self, X, policy=policy, **replay_options)
        if rewards is None:
            raise RouterInputError("rewards", "give one reward per row")
        self._init_state()
        self.partial_fit(X, arms, rewards, sample_weight, categories)
        self.history_ = [{"time/step": 1.0, "train/rows": float(len(np.asarray(rewards)))}]
        return self

    @staticmethod
    def data_from_batch(batch: Any, spec: Any = None) -> Any:
        """Logged rows (contexts by ``spec.features``) of the batch's rewarded decisions."""
        from rewardloop.learners.bandits.replay import logged_rows

        return logged_rows(batch, getattr(spec, "features", None))

    def _add_stats(
        self, idx: IntArray, r: FloatArray, counts: IntArray, categories: Sequence[str | None] | None
    ) -> None:
        from rewardloop.policies.router import _Acc

        k = len(self.arms_)
        sums = np.bincount(idx, weights=r, minlength=k)
        sq = np.bincount(idx, weights=r * r, minlength=k)
        for j, a in enumerate(self.arms_):
            if counts[j]:
                acc = self.stats_.overall.setdefault(a, _Acc())
                acc.n += int(counts[j])
                acc.total += float(sums[j])
                acc.total_sq += float(sq[j])
        if categories is not None:
            names = self.arms_
            for j, rv, c in zip(idx.tolist(), r.tolist(), categories, strict=True):
                if c is not None:
                    self.stats_.by_category.setdefault(str(c), {}).setdefault(names[j], _Acc()).add(rv)

    # ------------------------------------------------------------------------------------ statistics

    def leaderboard(self, category: str | None = None, level: float = 0.95) -> list[LeaderboardRow]:
        """Arms by mean observed reward, with pulls and a ``level`` t-interval (see ArmStats)."""
        self._ensure()
        return self.stats_.leaderboard(category, level, arms=self.arms_)

    # --------------------------------------------------------------------------------------- save/load

    def save(self, path: str | Path) -> Path:
        """Write ``router.json`` (hyperparameters, arms, priors, statistics, random state) and
        ``state.npz`` (the arrays) into the folder ``path``; returns the folder."""
        self._ensure()
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        meta = {
            "format": FORMAT_VERSION,
            "algorithm": self.algorithm,
            "params": self.get_params(),
            "arms": self.arms_,
            "arm_priors": {a: list(p) for a, p in self.arm_priors_.items()},
            "retired": self.retired_,
            "stats": self.stats_.to_dict(),
            "rng": self.rng_.bit_generator.state,
        }
        arrays = {"n_pulls": self.n_pulls_, **self._state_arrays()}
        np.savez(folder / "state.npz", **arrays)  # type: ignore[arg-type]
        (folder / "router.json").write_text(json.dumps(meta, indent=1))
        return folder

    @classmethod
    def load(cls, path: str | Path) -> BanditRouter:
        """Restore a router saved by :meth:`save`; it decides and learns exactly as the saved one would.

        Call it on the algorithm's class (``LinUCB.load``), or use
        :func:`rewardloop.learners.bandits.load_router` for any saved router.
        """
        meta, arrays = read_saved(path)
        if meta["algorithm"] != cls.algorithm:
            raise RouterInputError(
                "algorithm", f"{path} holds a {meta['algorithm']!r} router, not {cls.algorithm!r}"
            )
        router = cls(**meta["params"])
        router._restore(meta, arrays)
        return router

    def _restore(self, meta: Mapping[str, Any], arrays: Mapping[str, FloatArray]) -> None:
        lo, hi = (float(v) for v in self.reward_range)
        self._range = (lo, hi)
        self._validate_params()
        self.arms_ = list(meta["arms"])
        self._index = {a: j for j, a in enumerate(self.arms_)}
        self.arm_priors_ = {a: (float(p[0]), float(p[1])) for a, p in meta["arm_priors"].items()}
        self.retired_ = list(meta["retired"])
        self.stats_ = ArmStats.from_dict(meta["stats"])
        self.rng_ = np.random.default_rng()
        self.rng_.bit_generator.state = meta["rng"]
        self.n_pulls_ = np.array(arrays["n_pulls"], dtype=np.float64)
        self._set_state_arrays(arrays)
        self._ready = True

    # ----------------------------------------------------------------------------- hooks (subclasses)

    def _empty_state(self) -> None:
        raise NotImplementedError

    def _add_arm_state(self, mean: float, strength: float) -> None:
        raise NotImplementedError

    def _delete_arm_state(self, i: int) -> None:
        raise NotImplementedError

    def _decide(self, xa: Any) -> tuple[int, FloatArray, FloatArray]:
        raise NotImplementedError

    def _update(self, xa: Any, i: int, r: float, w: float) -> None:
        raise NotImplementedError

    def _batch_update(self, Xa: Any, idx: IntArray, r: FloatArray, w: FloatArray) -> None:
        self._apply_statistics(self._batch_statistics(Xa, idx, r, w))

    def _batch_statistics(
        self, Xa: Any, idx: IntArray, r: FloatArray, w: FloatArray
    ) -> dict[str, FloatArray]:
        """The rows' additive statistics per arm (sums over rows: two parts' add up to the whole's)."""
        raise NotImplementedError

    def _apply_statistics(self, stats: Mapping[str, FloatArray]) -> None:
        raise NotImplementedError

    def _state_arrays(self) -> dict[str, FloatArray]:
        raise NotImplementedError

    def _set_state_arrays(self, arrays: Mapping[str, FloatArray]) -> None:
        raise NotImplementedError


def _prior_pair(where: str, spec: PriorSpec) -> tuple[float, float]:
    try:
        if isinstance(spec, Mapping):
            return float(spec["mean"]), float(spec["strength"])
        mean, strength = spec
        return float(mean), float(strength)
    except (KeyError, TypeError, ValueError):
        raise RouterInputError(
            where, f"a prior is (mean, strength) or {{'mean', 'strength'}}, got {spec!r}"
        ) from None
