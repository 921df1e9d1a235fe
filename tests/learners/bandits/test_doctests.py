"""The ``>>>`` examples in the bandit modules run and give what they show."""

from __future__ import annotations

import doctest

import pytest

from rewardloop.learners.bandits import (
    _params,
    beta_thompson,
    epsilon_greedy,
    lin_thompson,
    linucb,
    softmax,
)


@pytest.mark.parametrize(
    "module",
    [_params, beta_thompson, epsilon_greedy, lin_thompson, linucb, softmax],
    ids=lambda m: m.__name__,
)
def test_docstring_examples(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
