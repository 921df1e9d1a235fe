"""The VADER human sentiment ratings (Hutto & Gilbert, ICWSM 2014): real multi-rater feedback.

The vaderSentiment 3.3.2 source distribution ships ``additional_resources/hutto_ICWSM_2014.tar.gz``
with four corpora of text snippets (tweets, movie reviews, NYT editorials, Amazon reviews). Each snippet
has a mean sentiment rating in [-4, 4] and **every individual rater's score** (20 or more raters a
snippet). This module reads the nested archives in memory with :mod:`tarfile`; nothing is extracted.

Rater ids: the raw files list the scores of each snippet in a fixed order but do not say whether
position *i* is the same person across snippets, so :func:`load_vader` names raters by position within
their corpus (``"tweets/r07"``); treat them as anonymous, not as persons.

Reference: C.J. Hutto and E. Gilbert (2014). VADER: A Parsimonious Rule-based Model for Sentiment
Analysis of Social Media Text. ICWSM-14.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from rewardloop.datasets.fetch import package_file

SDIST = "vaderSentiment-3.3.2.tar.gz"
INNER = "vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz"
#: The rating scale of every snippet rating: [-4] extremely negative ... [4] extremely positive.
SCALE: tuple[float, float] = (-4.0, 4.0)
#: Snippets whose mean in the text file and in the ratings file differ by more than this are dropped:
#: 199 of the 4,200 tweets do, so their raw ratings cannot be trusted to belong to their text.
MEAN_TOL = 1e-3
#: Corpus name -> file stem inside the inner archive.
SOURCES: dict[str, str] = {
    "tweets": "tweets",
    "movies": "movieReviewSnippets",
    "nyt": "nytEditorialSnippets",
    "amazon": "amazonReviewSnippets",
}
#: A short "prompt" per corpus, so a snippet can stand as an answer to a prompt in reward models.
PROMPTS: dict[str, str] = {
    "tweets": "Write a tweet.",
    "movies": "Write a sentence of a movie review.",
    "nyt": "Write a sentence of a newspaper editorial.",
    "amazon": "Write a sentence of a product review.",
}


class VaderFormatError(ValueError):
    """A line of the VADER files could not be parsed; the message names the file and line."""


@dataclass(frozen=True, slots=True)
class VaderSnippet:
    """One rated snippet.

    Attributes
    ----------
    id : str
        ``"<source>/<id in the file>"``, unique across corpora.
    source : {"tweets", "movies", "nyt", "amazon"}
    text : str
    mean : float
        The published mean rating in [-4, 4].
    ratings : tuple of int
        Every rater's score in [-4, 4], in file order (position = anonymous rater id).
    """

    id: str
    source: str
    text: str
    mean: float
    ratings: tuple[int, ...]

    @property
    def prompt(self) -> str:
        return PROMPTS[self.source]

    @property
    def std(self) -> float:
        """Population standard deviation of the raters' scores (the files' own column)."""
        return float(np.std(self.ratings))

    def rater_ids(self) -> list[str]:
        return [f"{self.source}/r{i:02d}" for i in range(len(self.ratings))]


def _lines(data: bytes) -> list[str]:
    # The files are UTF-8 with a BOM on some and CRLF endings; a few bytes are not valid UTF-8.
    return data.decode("utf-8-sig", errors="replace").splitlines()


def _parse_ratings(name: str, lines: Iterable[str]) -> dict[str, tuple[float, tuple[int, ...]]]:
    out: dict[str, tuple[float, tuple[int, ...]]] = {}
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        parts = line.split("\t")
        try:
            raw = parts[3].strip().strip("[]")
            out[parts[0].strip()] = (float(parts[1]), tuple(int(x) for x in raw.split(",")))
        except (IndexError, ValueError) as err:
            raise VaderFormatError(f"{name} line {n}: expected ID, MEAN, SD, [ratings] ({err})") from None
    return out


def _parse_texts(name: str, lines: Iterable[str]) -> dict[str, tuple[float, str]]:
    out: dict[str, tuple[float, str]] = {}
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        parts = line.split("\t", 2)
        if len(parts) != 3:
            raise VaderFormatError(f"{name} line {n}: expected ID, MEAN, TEXT")
        try:
            out[parts[0].strip()] = (float(parts[1]), parts[2].strip())
        except ValueError as err:
            raise VaderFormatError(f"{name} line {n}: expected a numeric MEAN ({err})") from None
    return out


@lru_cache(maxsize=2)
def _load_all(path: Path) -> tuple[VaderSnippet, ...]:
    with tarfile.open(path) as sdist:
        member = sdist.extractfile(INNER)
        if member is None:
            raise VaderFormatError(f"{path}: no {INNER} inside")
        inner_bytes = member.read()
    snippets: list[VaderSnippet] = []
    with tarfile.open(fileobj=io.BytesIO(inner_bytes)) as inner:

        def read(name: str) -> list[str]:
            f = inner.extractfile(f"hutto_ICWSM_2014/{name}")
            if f is None:
                raise VaderFormatError(f"{path}: no {name} in the ratings archive")
            return _lines(f.read())

        for source, stem in SOURCES.items():
            ratings = _parse_ratings(f"{stem}_anonDataRatings.txt", read(f"{stem}_anonDataRatings.txt"))
            texts = _parse_texts(f"{stem}_GroundTruth.txt", read(f"{stem}_GroundTruth.txt"))
            for key, (text_mean, text) in texts.items():
                if key not in ratings:
                    continue  # a snippet without raw ratings carries no per-rater feedback
                mean, scores = ratings[key]
                if abs(mean - text_mean) > MEAN_TOL:
                    continue  # the two files disagree on this id (199 tweets): its raters are unknown
                snippets.append(VaderSnippet(f"{source}/{key}", source, text, mean, scores))
    return tuple(snippets)


def load_vader(
    sources: Sequence[str] | None = None,
    limit: int | None = None,
    seed: int | None = None,
) -> list[VaderSnippet]:
    """The rated snippets, in file order (or a seeded random sample).

    Parameters
    ----------
    sources : sequence of str, optional
        Corpora to keep, among ``"tweets", "movies", "nyt", "amazon"`` (default: all four).
    limit : int, optional
        At most this many snippets *per source*.
    seed : int, optional
        With ``limit``, take a seeded random sample per source instead of the first ``limit``.

    Raises
    ------
    DataMissingError
        If the sdist is not fetched (run ``rewardloop data fetch``).
    ValueError
        For an unknown source name.

    Examples
    --------
    >>> snippets = load_vader(["tweets"], limit=3)   # doctest: +SKIP
    >>> snippets[0].source, len(snippets[0].ratings) >= 20   # doctest: +SKIP
    ('tweets', True)
    """
    wanted = list(SOURCES) if sources is None else list(sources)
    unknown = [s for s in wanted if s not in SOURCES]
    if unknown:
        raise ValueError(f"unknown VADER source(s) {unknown}; known: {', '.join(SOURCES)}")
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")
    every = _load_all(package_file(SDIST))
    out: list[VaderSnippet] = []
    for source in wanted:
        items = [s for s in every if s.source == source]
        if limit is not None and limit < len(items):
            if seed is None:
                items = items[:limit]
            else:
                pick = np.sort(np.random.default_rng(seed).choice(len(items), size=limit, replace=False))
                items = [items[i] for i in pick]
        out.extend(items)
    return out


@dataclass(frozen=True, slots=True)
class VaderPair:
    """A preference pair derived from two snippets of one source (derived, not stated by raters)."""

    prompt: str
    chosen: str
    rejected: str
    gap: float  # mean rating of chosen minus rejected, >= min_gap


def preference_pairs(
    snippets: Sequence[VaderSnippet],
    min_gap: float = 1.0,
    max_pairs: int | None = None,
    seed: int = 0,
) -> list[VaderPair]:
    """Derived preference pairs: within one source, the snippet with the higher mean rating is preferred
    when the means differ by at least ``min_gap``.

    Pairs are drawn at random (seeded) among the qualifying ones; each snippet is used about evenly.
    """
    if min_gap <= 0:
        raise ValueError(f"min_gap must be > 0, got {min_gap}")
    rng = np.random.default_rng(seed)
    by_source: dict[str, list[VaderSnippet]] = {}
    for s in snippets:
        by_source.setdefault(s.source, []).append(s)
    pairs: list[VaderPair] = []
    for source, items in by_source.items():
        means = np.array([s.mean for s in items])
        n = len(items)
        if n < 2:
            continue
        # Sample candidate pairs (i, j) rather than enumerate all n² of them.
        budget = (max_pairs or n * 4) * 4
        i = rng.integers(0, n, size=budget)
        j = rng.integers(0, n, size=budget)
        ok = np.abs(means[i] - means[j]) >= min_gap
        seen: set[tuple[int, int]] = set()
        for a, b in zip(i[ok], j[ok], strict=True):
            hi, lo = (a, b) if means[a] > means[b] else (b, a)
            if (hi, lo) in seen:
                continue
            seen.add((hi, lo))
            pairs.append(
                VaderPair(PROMPTS[source], items[hi].text, items[lo].text, float(means[hi] - means[lo]))
            )
    order = rng.permutation(len(pairs))
    pairs = [pairs[k] for k in order]
    return pairs[:max_pairs] if max_pairs is not None else pairs


__all__ = [
    "PROMPTS",
    "SCALE",
    "SOURCES",
    "VaderFormatError",
    "VaderPair",
    "VaderSnippet",
    "load_vader",
    "preference_pairs",
]
