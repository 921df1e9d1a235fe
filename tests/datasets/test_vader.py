"""The VADER per-rater ratings, read from the sdist in memory."""

from __future__ import annotations

import numpy as np
import pytest

from rewardloop.datasets.fetch import DataMissingError, package_file
from rewardloop.datasets.vader import (
    SCALE,
    VaderFormatError,
    _parse_ratings,
    load_vader,
    preference_pairs,
)

try:
    package_file("vaderSentiment-3.3.2.tar.gz")
    HAVE_DATA = True
except DataMissingError:
    HAVE_DATA = False

needs_data = pytest.mark.skipif(not HAVE_DATA, reason="run `rewardloop data fetch` for the VADER sdist")


@needs_data
def test_corpora_sizes_and_rater_scores():
    snippets = load_vader()
    by_source = {s: sum(x.source == s for x in snippets) for s in ("tweets", "movies", "nyt", "amazon")}
    # 4,200 tweets minus the 199 whose two files disagree; the other corpora complete
    assert by_source == {"tweets": 4001, "movies": 10605, "nyt": 5190, "amazon": 3708}
    for s in snippets[::997]:
        assert len(s.ratings) >= 10
        assert all(SCALE[0] <= r <= SCALE[1] for r in s.ratings)
        assert np.mean(s.ratings) == pytest.approx(s.mean, abs=1e-6)  # the published mean is the raters' mean
    first = snippets[0]
    assert first.id == "tweets/1" and first.text.startswith("Somehow I was blessed")
    assert first.rater_ids()[:2] == ["tweets/r00", "tweets/r01"]


@needs_data
def test_limit_seed_and_sources():
    a = load_vader(["nyt", "amazon"], limit=5, seed=3)
    b = load_vader(["nyt", "amazon"], limit=5, seed=3)
    assert [x.id for x in a] == [x.id for x in b]
    assert [x.source for x in a] == ["nyt"] * 5 + ["amazon"] * 5
    assert [x.id for x in load_vader(["amazon"], limit=2)] == ["amazon/1_1", "amazon/1_2"]
    with pytest.raises(ValueError, match="unknown VADER source"):
        load_vader(["reddit"])


@needs_data
def test_preference_pairs_stay_within_a_source_with_the_gap():
    snippets = load_vader(["tweets", "movies"], limit=60, seed=0)
    mean = {s.text: (s.mean, s.source) for s in snippets}
    pairs = preference_pairs(snippets, min_gap=1.0, max_pairs=50, seed=0)
    assert len(pairs) == 50
    for p in pairs:
        (mc, sc), (mr, sr) = mean[p.chosen], mean[p.rejected]
        assert sc == sr and mc - mr >= 1.0 and p.gap == pytest.approx(mc - mr)


def test_bad_ratings_line_names_file_and_line():
    with pytest.raises(VaderFormatError, match=r"x\.txt line 2"):
        _parse_ratings("x.txt", ["1\t0.5\t0.1\t[1, 0]", "2\tnot-a-number\t0\t[1]"])
