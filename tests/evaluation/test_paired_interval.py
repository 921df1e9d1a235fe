"""Newcombe's interval for a difference of paired proportions: the published example, the edge cases,
and bad counts refused."""

from __future__ import annotations

import pytest

from rewardloop.evaluation.intervals import paired_difference_interval, wilson_interval


def test_the_published_example() -> None:
    # Cavo et al. (2012), as in Fagerland, Lydersen & Laake, *Statistical Analysis of Contingency
    # Tables* (2017), ch. 8: estimate −0.0621, 95% CI −0.1186 to −0.0046
    r = paired_difference_interval(59, 6, 16, 80)
    assert (round(r.value, 4), round(r.low, 4), round(r.high, 4)) == (-0.0621, -0.1186, -0.0046)
    assert r.n == 161


def test_agreement_on_every_item_still_has_an_interval() -> None:
    r = paired_difference_interval(10, 0, 0, 0)  # φ = 0 (a margin is empty): ± (1 − Wilson low of 10/10)
    half = 1 - wilson_interval(10, 10).low
    assert (r.value, r.low, r.high) == (0.0, pytest.approx(-half), pytest.approx(half))


def test_the_interval_is_antisymmetric_and_bounded() -> None:
    a, b = paired_difference_interval(5, 2, 0, 1), paired_difference_interval(5, 0, 2, 1)
    assert (a.value, b.value) == (0.25, -0.25)
    assert a.low == pytest.approx(-b.high) and a.high == pytest.approx(-b.low)
    all_fixed = paired_difference_interval(0, 8, 0, 0)
    assert all_fixed.value == 1.0 and all_fixed.high == 1.0 and 0 < all_fixed.low < 1


@pytest.mark.parametrize("counts", [(0, 0, 0, 0), (1, -1, 0, 0)])
def test_bad_counts_are_refused(counts: tuple[int, int, int, int]) -> None:
    with pytest.raises(ValueError, match="a, b, c, d: need non-negative counts"):
        paired_difference_interval(*counts)
