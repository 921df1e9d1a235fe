"""Home Assistant intents: deterministic expansion, no unfilled slots, the cache, the seeded split."""

from __future__ import annotations

from collections import Counter

import pytest

from rewardloop.datasets import intents as mod
from rewardloop.datasets.intents import expand_intents, load_intent_pairs, load_intents, split_intents


@pytest.fixture(scope="module")
def small():
    """Two samples per template: all 42 intents, in about a second."""
    return expand_intents(seed=0, samples_per_template=2)


def test_expansion_is_deterministic_and_seeded(small):
    assert expand_intents(seed=0, samples_per_template=2) == small
    assert expand_intents(seed=1, samples_per_template=2) != small


def test_expansion_covers_42_intents_with_filled_unambiguous_texts(small):
    intents = Counter(i for _, i in small)
    assert len(intents) == 42 and "HassTurnOn" in intents
    texts = [t for t, _ in small]
    assert len(texts) == len(set(texts))  # one intent per text: ambiguous texts are dropped
    assert not [t for t in texts if any(c in t for c in "{}<>[]()|")]  # every slot and rule expanded
    assert small == sorted(small)


def test_more_samples_give_more_pairs(small):
    assert len(expand_intents(seed=0, samples_per_template=4)) > len(small)


def test_cache_round_trip(tmp_path, monkeypatch, small):
    monkeypatch.setenv("REWARDLOOP_DATA", str(tmp_path))
    first = load_intent_pairs(seed=0, samples_per_template=2)
    files = list(tmp_path.glob("ha-intents-en-*.jsonl"))
    assert first == small and len(files) == 1
    monkeypatch.setattr(mod, "expand_intents", lambda *a: pytest.fail("the cache was not used"))
    assert load_intent_pairs(seed=0, samples_per_template=2) == small


def test_split_sizes_disjoint_and_seeded(small):
    data = split_intents(small, seed=0, seed_per_intent=3, golden_per_intent=4)
    assert data.labels == sorted(data.labels) and len(data.labels) == 42
    sets = [set(data.seed_set.texts), set(data.traffic.texts), set(data.golden.texts)]
    assert sum(len(s) for s in sets) == len(small)
    assert not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2])
    per = Counter(i for _, i in small)
    seed_counts, gold_counts = data.seed_set.counts(), data.golden.counts()
    for intent, n in per.items():
        gold = max(1, min(4, n // 4))
        assert gold_counts[intent] == gold
        assert seed_counts[intent] == max(1, min(3, n - gold - 1))
    again = split_intents(small, seed=0, seed_per_intent=3, golden_per_intent=4)
    assert again == data
    assert split_intents(small, seed=1, seed_per_intent=3, golden_per_intent=4).golden != data.golden


def test_split_on_a_hand_made_case():
    pairs = [(f"a{i}", "A") for i in range(10)] + [("b0", "B"), ("b1", "B"), ("c0", "C")]
    data = split_intents(pairs, seed=0, seed_per_intent=5, golden_per_intent=20)
    assert data.labels == ["A", "B"]  # C has one text: dropped
    assert data.golden.counts() == {"A": 2, "B": 1}  # n // 4, at least 1
    assert data.seed_set.counts() == {"A": 5, "B": 1}
    assert data.traffic.counts() == {"A": 3}
    assert list(data.golden.y(data.labels)) == [0 if i == "A" else 1 for i in data.golden.intents]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"seed_per_intent": 0}, "seed_per_intent and golden_per_intent must be >= 1"),
        ({"golden_per_intent": 0}, "seed_per_intent and golden_per_intent must be >= 1"),
        ({"intents": ["HassTurnOn", "HassFly"]}, "intents: unknown intent 'HassFly'"),
    ],
)
def test_split_bad_arguments(small, kwargs, message):
    with pytest.raises(ValueError, match=message):
        split_intents(small, **kwargs)


def test_load_intents_full_default():
    data = load_intents(seed=0)
    assert len(data.labels) == 42
    total = len(data.seed_set) + len(data.traffic) + len(data.golden)
    assert 15_000 < total < 18_000  # about 16,600 distinct pairs (shared DATA.md)
    assert len(data.seed_set) <= 5 * 42
