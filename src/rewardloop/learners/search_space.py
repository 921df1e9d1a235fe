"""Search spaces over a learner's declared hyperparameters, for sweeps (``rewardloop sweep``).

A space maps config fields to distributions, written as ``KIND:ARGS`` (the CLI's ``--space``)::

    lr=loguniform:1e-4:1e-1      uniform in log between the two ends
    entropy_coef=uniform:0:0.05  uniform between the two ends
    hidden=int:0:64              a whole number in [low, high], both ends included
    epochs=choice:3,5,10         one of the listed values (YAML scalars: 3, 0.1, true, text)

Every field must be one the learner's config declares with ``hyperparameter(default, help, Bound)``;
both ends of a range, and every choice, must lie inside the field's ``Bound``, so no trial is
drawn that its learner would refuse. Errors name the field and say what is wrong.

Sampling is plain seeded random search (Bergstra & Bengio 2012, "Random Search for
Hyper-Parameter Optimization", JMLR): one ``numpy`` generator from the seed draws every trial's
values, fields in name order, so the same seed gives the same trials on every backend.

>>> from rewardloop.learners.supervised import SupervisedConfig
>>> space = parse_space(SupervisedConfig, {"lr": "loguniform:1e-3:1e-1", "hidden": "choice:0,16"})
>>> trials = space.sample(3, seed=0)
>>> len(trials), sorted(trials[0])
(3, ['hidden', 'lr'])
>>> trials == space.sample(3, seed=0)
True
"""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import yaml

from rewardloop.learners.base import Bound, LearnerConfig, LearnerConfigError
from rewardloop.policies.router import RouterInputError

Kind = Literal["uniform", "loguniform", "int", "choice"]
KINDS: tuple[Kind, ...] = ("uniform", "loguniform", "int", "choice")
#: Fields a sweep never varies: where checkpoints go is not a hyperparameter.
NOT_SWEPT = ("checkpoint_dir", "save_frequency", "keep_last_n")


@dataclass(frozen=True)
class Dimension:
    """One swept field: a range (``uniform``, ``loguniform``, ``int``) or a list of ``options``."""

    name: str
    kind: Kind
    low: float = 0.0
    high: float = 0.0
    options: tuple[Any, ...] = ()

    def draw(self, rng: np.random.Generator) -> Any:
        """One value, drawn from ``rng``: a Python float, int or option (JSON-able)."""
        if self.kind == "uniform":
            return float(rng.uniform(self.low, self.high))
        if self.kind == "loguniform":
            return float(math.exp(rng.uniform(math.log(self.low), math.log(self.high))))
        if self.kind == "int":
            return int(rng.integers(int(self.low), int(self.high) + 1))
        return self.options[int(rng.integers(len(self.options)))]

    def describe(self) -> str:
        if self.kind == "choice":
            return f"choice:{','.join(str(o) for o in self.options)}"
        return f"{self.kind}:{self.low:g}:{self.high:g}"


@dataclass(frozen=True)
class SearchSpace:
    """The swept fields of one learner config class, by name (see the module docstring)."""

    config_class: type[LearnerConfig]
    dimensions: tuple[Dimension, ...]

    def sample(self, n_trials: int, seed: int) -> list[dict[str, Any]]:
        """``n_trials`` hyperparameter dicts (field → value), the same for the same seed."""
        if n_trials < 1:
            raise LearnerConfigError(f"trials: must be at least 1, got {n_trials}")
        rng = np.random.default_rng(seed)
        return [{d.name: d.draw(rng) for d in self.dimensions} for _ in range(n_trials)]

    def to_dict(self) -> dict[str, str]:
        return {d.name: d.describe() for d in self.dimensions}


def parse_space(config_class: type[LearnerConfig], specs: Mapping[str, str]) -> SearchSpace:
    """A :class:`SearchSpace` from ``{field: "KIND:ARGS"}``; LearnerConfigError naming the field.

    Raises for a field the config does not declare, a kind that is not one of :data:`KINDS`, ends or
    choices of the wrong type, and ends or choices outside the field's ``Bound``.
    """
    if not specs:
        raise LearnerConfigError("space: give at least one field to sweep, e.g. lr=loguniform:1e-4:1e-1")
    fields = {f.name: f for f in dataclasses.fields(config_class)}
    hints = typing.get_type_hints(config_class)
    dims = []
    for name in sorted(specs):
        if name not in fields or name in NOT_SWEPT:
            known = ", ".join(sorted(set(fields) - set(NOT_SWEPT)))
            raise LearnerConfigError(
                f"space.{name}: not a hyperparameter of {config_class.__name__} (hyperparameters: {known})"
            )
        dims.append(_dimension(name, str(specs[name]), hints.get(name), fields[name].metadata.get("bound")))
    return SearchSpace(config_class, tuple(dims))


def _dimension(name: str, spec: str, hint: Any, bound: Bound | None) -> Dimension:
    kind, _, rest = spec.partition(":")
    where = f"space.{name}"
    if kind not in KINDS:
        raise LearnerConfigError(
            f"{where}: unknown distribution {kind!r} in {spec!r} (one of {', '.join(KINDS)}, "
            "e.g. loguniform:1e-4:1e-1 or choice:3,5,10)"
        )
    base = _base_type(hint)
    if kind == "choice":
        options = tuple(yaml.safe_load(v) for v in rest.split(",")) if rest else ()
        if not options:
            raise LearnerConfigError(f"{where}: choice needs at least one value, e.g. choice:3,5,10")
        for value in options:
            _check_value(where, value, base, bound)
        return Dimension(name, "choice", options=options)
    ends = rest.split(":")
    try:
        low, high = (float(v) for v in ends)
    except ValueError:
        raise LearnerConfigError(f"{where}: {kind} needs two numbers LOW:HIGH, got {spec!r}") from None
    if base not in (int, float):
        raise LearnerConfigError(f"{where}: a {kind} range needs a numeric field; use choice:A,B")
    if kind in ("uniform", "loguniform") and base is int:
        raise LearnerConfigError(f"{where}: an integer field; use int:LOW:HIGH or choice:A,B")
    if kind == "int" and base is not int:
        raise LearnerConfigError(f"{where}: int:LOW:HIGH needs an integer field; use uniform:LOW:HIGH")
    if kind == "int" and not (low.is_integer() and high.is_integer()):
        raise LearnerConfigError(f"{where}: int:LOW:HIGH needs whole numbers, got {spec!r}")
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise LearnerConfigError(f"{where}: needs finite LOW < HIGH, got {spec!r}")
    if kind == "loguniform" and low <= 0:
        raise LearnerConfigError(f"{where}: loguniform needs LOW > 0, got {low:g}")
    for end, value in (("low end", low), ("high end", high)):
        _check_value(where, int(value) if base is int else value, base, bound, end)
    return Dimension(name, kind, low, high)


def _base_type(hint: Any) -> Any:
    """``int``, ``float``, ``bool``, ``str`` of a field's annotation (``X | None``: X), else None."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    hint = args[0] if len(args) == 1 else hint
    return hint if hint in (int, float, bool, str) else None


def _check_value(where: str, value: Any, base: Any, bound: Bound | None, what: str = "value") -> None:
    wrong = {
        bool: not isinstance(value, bool),
        int: isinstance(value, bool) or not isinstance(value, int),
        float: isinstance(value, bool) or not isinstance(value, int | float),
        str: not isinstance(value, str),
    }.get(base, False)
    if wrong:
        raise LearnerConfigError(f"{where}: expected {base.__name__} values, got {value!r}")
    if bound is not None:
        try:
            bound.check(where, value)
        except RouterInputError as err:
            raise LearnerConfigError(f"{err} (the {what} of the search space)") from None


__all__ = ["KINDS", "Dimension", "SearchSpace", "parse_space"]
