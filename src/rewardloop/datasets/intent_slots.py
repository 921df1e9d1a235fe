"""A multi-label set from the Home Assistant intents: an utterance's intent plus the slot types it fills.

Each text comes from one random walk down a template of ``home-assistant-intents``
(:func:`rewardloop.datasets.intents.expansions`, the expansion the intent classifier uses, same seeds);
its label set is

    {intent} ∪ {slot name of every slot list the walk filled}

e.g. "turn on the kitchen ceiling light" (template ``turn on [the] {area} {name}``) →
``{HassTurnOn, area, name}``, "set the brightness to 40%" → ``{HassLightSet, brightness}``. Slot names are
hassil's (the ``{list:slot}`` reference's slot name: ``area``, ``name``, ``floor``, ``brightness``,
``temperature``, ``timer_name``, ...); slots a template fixes without text (``domain: light``) are not
labels, since nothing in the text names them. A text that walks of different templates give different
label sets is ambiguous and dropped. The label space is the intents (sorted) followed by the slot names
(sorted). Splits are :func:`~rewardloop.datasets.intents.split_intents`'s, per intent: a small labelled
seed, traffic, and a golden set. Template expansions, not real user utterances (DATA.md).

>>> data = load_intent_slots(seed=0)                          # doctest: +SKIP
>>> data.golden.texts[0], data.golden.sets[0]                 # doctest: +SKIP
('what is the humidity in the garage', ('HassGetState', 'area', 'name'))
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from rewardloop.datasets.intents import expansions, split_intents


@dataclass(frozen=True)
class LabelledSets:
    """Texts with their label sets, aligned."""

    texts: list[str]
    sets: list[tuple[str, ...]]

    def __len__(self) -> int:
        return len(self.texts)

    def matrix(self, labels: Sequence[str]) -> npt.NDArray[np.float64]:
        """The sets as a 0/1 matrix of shape (n, L) over ``labels``."""
        index = {label: j for j, label in enumerate(labels)}
        Y = np.zeros((len(self.sets), len(labels)))
        for i, row in enumerate(self.sets):
            Y[i, [index[label] for label in row]] = 1.0
        return Y


@dataclass(frozen=True)
class SlotData:
    """The seeded split: ``labels`` (intents, then slot names), and the three parts."""

    labels: list[str]
    intents: list[str]
    slots: list[str]
    seed_set: LabelledSets
    traffic: LabelledSets
    golden: LabelledSets


def expand_intent_slots(seed: int = 0, samples_per_template: int = 20) -> list[tuple[str, tuple[str, ...]]]:
    """All distinct (text, label set) pairs, sorted by text; ambiguous texts dropped (module doc)."""
    by_text: dict[str, set[tuple[str, ...]]] = defaultdict(set)
    for text, intent, slots in expansions(seed, samples_per_template):
        by_text[text].add((intent, *sorted(slots)))
    return sorted((t, next(iter(s))) for t, s in by_text.items() if len(s) == 1)


def load_intent_slots(
    seed: int = 0, seed_per_intent: int = 5, golden_per_intent: int = 20, samples_per_template: int = 20
) -> SlotData:
    """The multi-label set, split per intent with ``seed`` (see the module doc)."""
    pairs = expand_intent_slots(seed, samples_per_template)
    sets = dict(pairs)
    split = split_intents([(t, s[0]) for t, s in pairs], seed, seed_per_intent, golden_per_intent)
    slots = sorted({label for _, s in pairs for label in s[1:]})

    def part(texts: list[str]) -> LabelledSets:
        return LabelledSets(texts, [sets[t] for t in texts])

    return SlotData(
        labels=[*split.labels, *slots],
        intents=list(split.labels),
        slots=slots,
        seed_set=part(split.seed_set.texts),
        traffic=part(split.traffic.texts),
        golden=part(split.golden.texts),
    )


__all__ = ["LabelledSets", "SlotData", "expand_intent_slots", "load_intent_slots"]
