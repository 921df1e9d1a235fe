"""Declared hyperparameters: every router field carries its help text and, where it has one, its range.

A field made with :func:`hyperparameter` is a dataclass field whose metadata holds ``"help"`` (for the
CLI and the YAML schema) and ``"bound"`` (a :class:`Bound`, checked by
:meth:`~rewardloop.learners.bandits._base.BanditRouter._validate_params`): one validation path for every
router instead of a hand-written check per hyperparameter (scikit-learn's ``_parameter_constraints``).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from rewardloop.policies.router import RouterInputError


@dataclass(frozen=True)
class Bound:
    """The allowed range of a numeric hyperparameter (scikit-learn's ``Interval``).

    ``closed`` names the ends that are allowed: ``"left"`` (``low <= v``, the default), ``"neither"``
    (``low < v``), ``"both"`` or ``"right"``; ``integer`` also requires a whole number.

    >>> Bound(0.0, 1.0, closed="both").check("epsilon", 1.5)
    Traceback (most recent call last):
    ...
    rewardloop.policies.router.RouterInputError: epsilon: must be in [0, 1], got 1.5
    """

    low: float
    high: float = math.inf
    closed: Literal["left", "right", "both", "neither"] = "left"
    integer: bool = False

    def check(self, name: str, value: Any) -> None:
        """Raise :class:`RouterInputError` naming ``name`` unless ``value`` is in the range."""
        kind = (int, np.integer) if self.integer else numbers.Real
        v = float(value) if isinstance(value, kind) else math.nan
        inside = (
            math.isfinite(v)
            and (self.low <= v if self._closed_low else self.low < v)
            and (v <= self.high if self._closed_high else v < self.high)
        )
        if not inside:
            raise RouterInputError(name, f"must be {self.describe()}, got {value!r}")

    @property
    def _closed_low(self) -> bool:
        return self.closed in ("left", "both")

    @property
    def _closed_high(self) -> bool:
        return self.closed in ("right", "both")

    def describe(self) -> str:
        """The range in words: ``"an integer >= 1"``, ``"> 0"``, ``"in [0, 1]"``."""
        what = "an integer " if self.integer else ""
        if math.isinf(self.high):
            return f"{what}{'>=' if self._closed_low else '>'} {self.low:g}"
        left, right = "[" if self._closed_low else "(", "]" if self._closed_high else ")"
        return f"{what}in {left}{self.low:g}, {self.high:g}{right}"


def hyperparameter(default: Any, help: str, bound: Bound | None = None) -> Any:
    """A hyperparameter field: its default, its help text and, optionally, its range."""
    return field(default=default, metadata={"help": help, "bound": bound})


def plain(value: Any) -> Any:
    """A NumPy scalar as the Python number it holds (JSON-able); anything else as it is."""
    return value.item() if isinstance(value, np.generic) else value
