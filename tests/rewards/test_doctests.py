"""The ``>>>`` examples in the rewards modules run and give what they show."""

from __future__ import annotations

import doctest

import pytest

from rewardloop.rewards import compiler, functions, scores, spec


@pytest.mark.parametrize("module", [scores, functions, spec, compiler], ids=lambda m: m.__name__)
def test_docstring_examples(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
