"""Home Assistant intents: English (text, intent) pairs expanded from hand-written templates.

The ``home-assistant-intents`` package ships sentence templates for 42 English intents (``HassTurnOn``,
``HassStartTimer``, ...); ``hassil`` parses them into expression trees (alternatives, optionals,
permutations, slot lists, expansion rules). hassil's own ``sample_sentence`` enumerates a template's
expansions in a fixed order, so its first N are all alike (same area, same number); here each sample is
a seeded random walk down the same tree instead, so that N samples per template cover the template.

Slot lists the package leaves to the user's installation (areas, floors, device names) and the wildcard
slots (timer names, shopping-list items, search queries, ...) get stand-in values from this module.
These are template expansions, not real user utterances (see the shared DATA.md).

The expansion is cached as JSONL in :func:`rewardloop.datasets.data_dir`, keyed by its parameters, so
later loads take milliseconds instead of seconds.

>>> data = load_intents(seed=0)                         # doctest: +SKIP
>>> len(data.labels), len(data.seed_set), len(data.traffic), len(data.golden)   # doctest: +SKIP
(42, 206, 15758, 642)
>>> data.seed_set.texts[0], data.seed_set.intents[0]                             # doctest: +SKIP
('set my garage doors position to thirty-three%', 'HassSetPosition')
"""

from __future__ import annotations

import json
import random
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from rewardloop.datasets.fetch import data_dir

#: Bump when the expansion changes, so that stale caches are not read.
EXPANSION_VERSION = 1

# Stand-in values for the lists a Home Assistant installation fills in (entity names, areas, floors)
# and for the wildcard slots. Plain, common names: the point is varied, plausible sentences.
STAND_INS: dict[str, list[str]] = {
    "area": [
        "kitchen",
        "living room",
        "bedroom",
        "bathroom",
        "garage",
        "office",
        "hallway",
        "dining room",
        "basement",
        "garden",
        "kids room",
        "attic",
    ],
    "floor": ["first floor", "second floor", "ground floor", "upstairs", "downstairs", "basement floor"],
    "name": [
        "ceiling light",
        "desk lamp",
        "floor lamp",
        "porch light",
        "tv",
        "radio",
        "coffee maker",
        "fan",
        "heater",
        "air purifier",
        "garage door",
        "front door",
        "blinds",
        "curtains",
        "speaker",
        "thermostat",
        "dishwasher",
        "washing machine",
        "vacuum",
        "lawn mower",
        "christmas lights",
        "reading lamp",
        "kettle",
        "back door lock",
    ],
    "message": [
        "dinner is ready",
        "time to leave",
        "the laundry is done",
        "please come downstairs",
        "movie starts in five minutes",
        "good night everyone",
    ],
    "search_query": [
        "the beatles",
        "jazz for cooking",
        "the latest news podcast",
        "taylor swift",
        "relaxing piano",
        "abbey road",
        "classic rock",
        "the morning show",
    ],
    "zone": ["home", "work", "school", "the gym", "the office"],
    "timer_name": ["pizza", "pasta", "laundry", "tea", "eggs", "oven", "nap"],
    "timer_command": ["turn off the lights", "stop the music", "open the blinds", "turn on the fan"],
    "shopping_list_item": [
        "milk",
        "eggs",
        "bread",
        "apples",
        "coffee",
        "toilet paper",
        "butter",
        "bananas",
        "rice",
    ],
    "todo_list_item": [
        "call mom",
        "pay the bills",
        "water the plants",
        "book a dentist appointment",
        "take out the trash",
        "clean the garage",
    ],
}


@dataclass(frozen=True)
class LabelledTexts:
    """Texts with their intent, aligned.

    Attributes
    ----------
    texts : list of str, length n
    intents : list of str, length n
    """

    texts: list[str]
    intents: list[str]

    def __len__(self) -> int:
        return len(self.texts)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(zip(self.texts, self.intents, strict=True))

    def y(self, labels: Sequence[str]) -> npt.NDArray[np.int64]:
        """Label indices into ``labels``, shape (n,)."""
        index = {label: i for i, label in enumerate(labels)}
        return np.array([index[i] for i in self.intents], dtype=np.int64)

    def counts(self) -> dict[str, int]:
        return dict(Counter(self.intents))


@dataclass(frozen=True)
class IntentData:
    """A seeded split of the intent pairs.

    Attributes
    ----------
    labels : list of str
        The intents, sorted: the label order of a classifier trained on them.
    seed_set : LabelledTexts
        A small labelled start (``seed_per_intent`` texts per intent, fewer for rare intents).
    traffic : LabelledTexts
        The unseen "production" texts (their intents serve to simulate feedback).
    golden : LabelledTexts
        The held-out golden set for evaluation.
    """

    labels: list[str]
    seed_set: LabelledTexts
    traffic: LabelledTexts
    golden: LabelledTexts


# --------------------------------------------------------------------------------- random expansion


def _sample(
    expr: Any,
    rng: random.Random,
    slot_lists: dict[str, Any],
    rules: dict[str, Any],
    filled: set[str] | None = None,
) -> str:
    """One random expansion of a hassil expression (a walk choosing one branch at each node); the names
    of the slots the walk fills are added to ``filled``, if given."""
    from hassil.expression import (
        Alternative,
        ListReference,
        Permutation,
        RuleReference,
        Sequence,
        TextChunk,
    )
    from hassil.intents import RangeSlotList, TextSlotList

    if isinstance(expr, TextChunk):
        return str(expr.original_text)
    if isinstance(expr, Alternative):
        return _sample(rng.choice(expr.items), rng, slot_lists, rules, filled) if expr.items else ""
    if isinstance(expr, Permutation):
        items = list(expr.items)
        rng.shuffle(items)
        return " ".join(_sample(i, rng, slot_lists, rules, filled) for i in items)
    if isinstance(expr, Sequence):
        return "".join(_sample(i, rng, slot_lists, rules, filled) for i in expr.items)
    if isinstance(expr, RuleReference):
        return _sample(rules[expr.rule_name].expression, rng, slot_lists, rules, filled)
    if isinstance(expr, ListReference):
        slot = slot_lists[expr.list_name]
        if filled is not None:
            filled.add(expr.slot_name)
        if isinstance(slot, TextSlotList):
            return _sample(rng.choice(slot.values).text_in, rng, slot_lists, rules, filled)
        if isinstance(slot, RangeSlotList):
            number = rng.choice(list(range(slot.start, slot.stop + 1, slot.step)))
            if slot.words and (not slot.digits or rng.random() < 0.5):
                return _number_words(number)
            return str(number)
        raise ValueError(f"slot list {expr.list_name!r}: no stand-in values for {type(slot).__name__}")
    raise ValueError(f"unexpected template expression {type(expr).__name__}")


def _number_words(n: int) -> str:
    from hassil.numbers import get_rbnf_engine

    words = sorted(get_rbnf_engine("en").format_number(n).text_by_ruleset.values())
    return words[0] if words else str(n)


def _normalise(text: str) -> str:
    return " ".join(text.split()).strip()


def expansions(seed: int = 0, samples_per_template: int = 20) -> Iterator[tuple[str, str, frozenset[str]]]:
    """(text, intent, names of the slots it fills) for up to N distinct random samples per template,
    deterministic given ``seed``."""
    from hassil.intents import Intents, TextSlotList
    from home_assistant_intents import get_intents

    raw = get_intents("en")
    if raw is None:  # pragma: no cover - depends on the package build
        raise RuntimeError("home-assistant-intents ships no English templates")
    intents = Intents.from_dict(raw)
    slot_lists: dict[str, Any] = dict(intents.slot_lists)
    for name, values in STAND_INS.items():
        slot_lists[name] = TextSlotList.from_strings(values)
    for intent_name in sorted(intents.intents):
        for d, data in enumerate(intents.intents[intent_name].data):
            rules = {**intents.expansion_rules, **data.expansion_rules}
            for s, sentence in enumerate(data.sentences):
                # One generator per template: adding a template elsewhere does not change these draws.
                rng = random.Random(f"{seed}:{intent_name}:{d}:{s}")
                seen: dict[str, frozenset[str]] = {}
                for _ in range(samples_per_template * 3):  # a few retries for duplicate draws
                    filled: set[str] = set()
                    text = _normalise(_sample(sentence.expression, rng, slot_lists, rules, filled))
                    if text:
                        seen.setdefault(text, frozenset(filled))
                    if len(seen) >= samples_per_template:
                        break
                for text, slots in seen.items():
                    yield text, intent_name, slots


def expand_intents(seed: int = 0, samples_per_template: int = 20) -> list[tuple[str, str]]:
    """All distinct English (text, intent) pairs, sorted, from up to N random samples per template.

    Deterministic given ``seed``. Texts that several intents produce are ambiguous and dropped.
    """
    by_text: dict[str, set[str]] = defaultdict(set)
    for text, intent, _ in expansions(seed, samples_per_template):
        by_text[text].add(intent)
    return sorted((t, next(iter(i))) for t, i in by_text.items() if len(i) == 1)


def _cache_path(seed: int, samples_per_template: int) -> Path:
    return data_dir() / f"ha-intents-en-v{EXPANSION_VERSION}-seed{seed}-n{samples_per_template}.jsonl"


def load_intent_pairs(
    seed: int = 0, samples_per_template: int = 20, cache: bool = True
) -> list[tuple[str, str]]:
    """:func:`expand_intents`, read from (or written to) the JSONL cache."""
    path = _cache_path(seed, samples_per_template)
    if cache and path.exists():
        with path.open() as f:
            return [(row["text"], row["intent"]) for row in map(json.loads, f)]
    pairs = expand_intents(seed, samples_per_template)
    if cache:
        tmp = path.with_suffix(".tmp")
        with tmp.open("w") as f:
            for text, intent in pairs:
                f.write(json.dumps({"text": text, "intent": intent}) + "\n")
        tmp.replace(path)  # atomic: a concurrent reader never sees half a file
    return pairs


def split_intents(
    pairs: Sequence[tuple[str, str]],
    seed: int = 0,
    seed_per_intent: int = 5,
    golden_per_intent: int = 20,
    intents: Sequence[str] | None = None,
) -> IntentData:
    """A seeded split into a labelled seed, traffic and a golden set, per intent.

    Per intent (shuffled with ``seed``): the golden set takes ``min(golden_per_intent, n // 4)`` texts
    (at least 1), the seed set ``min(seed_per_intent, what is left - 1)`` (at least 1), traffic the rest.
    ``intents`` keeps only those intents. Intents with fewer than 2 texts are dropped.
    """
    if seed_per_intent < 1 or golden_per_intent < 1:
        raise ValueError("seed_per_intent and golden_per_intent must be >= 1")
    groups: dict[str, list[str]] = defaultdict(list)
    for text, intent in pairs:
        groups[intent].append(text)
    if intents is not None:
        missing = sorted(set(intents) - set(groups))
        if missing:
            raise ValueError(f"intents: unknown intent {missing[0]!r}")
        groups = defaultdict(list, {k: v for k, v in groups.items() if k in set(intents)})
    rng = np.random.default_rng(seed)
    seed_set: list[tuple[str, str]] = []
    traffic: list[tuple[str, str]] = []
    golden: list[tuple[str, str]] = []
    labels = sorted(k for k, v in groups.items() if len(v) >= 2)
    for intent in labels:
        texts = sorted(groups[intent])
        order = rng.permutation(len(texts))
        texts = [texts[i] for i in order]
        n_gold = max(1, min(golden_per_intent, len(texts) // 4))
        n_seed = max(1, min(seed_per_intent, len(texts) - n_gold - 1))
        golden += [(t, intent) for t in texts[:n_gold]]
        seed_set += [(t, intent) for t in texts[n_gold : n_gold + n_seed]]
        traffic += [(t, intent) for t in texts[n_gold + n_seed :]]

    def pack(rows: list[tuple[str, str]]) -> LabelledTexts:
        # Interleave intents (seeded), so that a prefix of the traffic is not all one intent.
        order = rng.permutation(len(rows))
        return LabelledTexts([rows[i][0] for i in order], [rows[i][1] for i in order])

    return IntentData(labels, pack(seed_set), pack(traffic), pack(golden))


def load_intents(
    seed: int = 0,
    seed_per_intent: int = 5,
    golden_per_intent: int = 20,
    samples_per_template: int = 20,
    intents: Sequence[str] | None = None,
) -> IntentData:
    """The Home Assistant intents, expanded (cached) and split with ``seed``: see :func:`split_intents`."""
    pairs = load_intent_pairs(seed, samples_per_template)
    return split_intents(pairs, seed, seed_per_intent, golden_per_intent, intents)


__all__ = [
    "STAND_INS",
    "IntentData",
    "LabelledTexts",
    "expand_intents",
    "expansions",
    "load_intent_pairs",
    "load_intents",
    "split_intents",
]
