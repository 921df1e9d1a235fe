"""The ``>>>`` examples in the evaluation modules run and give what they show."""

from __future__ import annotations

import doctest

import pytest

from rewardloop.evaluation import gate, golden, metrics, ope


@pytest.mark.parametrize("module", [golden, metrics, ope, gate], ids=lambda m: m.__name__)
def test_docstring_examples(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
