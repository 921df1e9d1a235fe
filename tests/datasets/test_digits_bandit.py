"""Supervised-to-bandit data sets from scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest

from rewardloop.datasets.digits import load_bandit_dataset


def test_digits_and_wine_shapes_and_rewards():
    d = load_bandit_dataset("digits")
    assert d.X.shape == (1797, 64) and d.X.max() == 1.0 and d.n_actions == 10
    row = 5
    label = int(d.y[row])
    assert d.reward(row, label) == 1.0 and d.reward(row, str(label)) == 1.0
    assert d.reward(row, (label + 1) % 10) == 0.0
    w = load_bandit_dataset("wine")
    assert w.X.shape == (178, 13) and w.actions == ("0", "1", "2")
    np.testing.assert_allclose(w.X.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_array_equal(d.permutation(3), d.permutation(3))


def test_unknown_name():
    with pytest.raises(ValueError, match="unknown data set 'iris'"):
        load_bandit_dataset("iris")  # type: ignore[arg-type]
