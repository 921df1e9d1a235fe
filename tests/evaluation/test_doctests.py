"""The ``>>>`` examples in the evaluation modules run and give what they show."""

from __future__ import annotations

import doctest

import pytest

from rewardloop.evaluation import gate, golden, metrics
from rewardloop.evaluation.ope import bootstrap, diagnostics, estimators, report


@pytest.mark.parametrize(
    "module", [golden, metrics, bootstrap, estimators, diagnostics, report, gate], ids=lambda m: m.__name__
)
def test_docstring_examples(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
