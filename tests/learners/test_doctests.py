"""The ``>>>`` examples in the learner modules run and give what they show."""

from __future__ import annotations

import doctest

import pytest

from rewardloop.learners import a2c, base, crm, dpo, dqn, ppo, reinforce


@pytest.mark.parametrize("module", [a2c, base, crm, dpo, dqn, ppo, reinforce], ids=lambda m: m.__name__)
def test_docstring_examples(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
