"""Supervised-to-bandit problems from scikit-learn's bundled sets (offline): digits and wine.

Each round a router sees one example's features and picks a class; the reward is 1 when it is the
label, else 0 (the standard contextual-bandit benchmark, e.g. Dudík et al. 2011, "Doubly Robust Policy
Evaluation and Learning", §5; Bietti et al. 2021, "A Contextual Bandit Bake-off", JMLR).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class SupervisedBandit:
    """Contexts ``X`` (n_rounds, dim), labels ``y`` (n_rounds,), and the arm names ``actions``."""

    name: str
    X: npt.NDArray[np.float64]
    y: npt.NDArray[np.int64]
    actions: tuple[str, ...]

    @property
    def n_actions(self) -> int:
        return len(self.actions)

    def reward(self, row: int, action: int | str) -> float:
        """1.0 if ``action`` (index or name) is the label of ``row``, else 0.0."""
        index = self.actions.index(action) if isinstance(action, str) else int(action)
        return 1.0 if index == int(self.y[row]) else 0.0

    def permutation(self, seed: int = 0) -> npt.NDArray[np.int64]:
        """One seeded order of the rounds."""
        return np.random.default_rng(seed).permutation(len(self.y))


def load_bandit_dataset(name: Literal["digits", "wine"] = "digits") -> SupervisedBandit:
    """``digits``: 1,797 8×8 images, 10 classes, pixels scaled to [0, 1]; ``wine``: 178 wines, 3 classes,
    13 measures standardised (zero mean, unit variance).

    Examples
    --------
    >>> data = load_bandit_dataset("digits")
    >>> data.X.shape, data.n_actions, data.reward(0, int(data.y[0]))
    ((1797, 64), 10, 1.0)
    """
    from sklearn.datasets import load_digits, load_wine

    if name == "digits":
        X, y = load_digits(return_X_y=True)
        X = X / 16.0
    elif name == "wine":
        X, y = load_wine(return_X_y=True)
        X = (X - X.mean(axis=0)) / X.std(axis=0)
    else:
        raise ValueError(f"name: unknown data set {name!r}; choose digits or wine")
    return SupervisedBandit(
        name,
        np.asarray(X, dtype=np.float64),
        np.asarray(y, dtype=np.int64),
        tuple(str(c) for c in range(int(y.max()) + 1)),
    )
