"""The multi-label intents + slots set: how each text's labels are derived."""

from __future__ import annotations

from rewardloop.datasets.intent_slots import expand_intent_slots, load_intent_slots
from rewardloop.datasets.intents import load_intent_pairs


def test_labels_are_the_intent_and_the_slots_the_text_fills():
    pairs = dict(expand_intent_slots(seed=0, samples_per_template=2))
    intents = dict(load_intent_pairs(seed=0, samples_per_template=2, cache=False))
    for text, labels in pairs.items():
        assert labels[0] == intents[text]  # the same intent as the classifier's data
        assert list(labels[1:]) == sorted(set(labels[1:]))
    with_area = [t for t, s in pairs.items() if s[0] == "HassTurnOn" and "area" in s]
    assert with_area and all("kitchen" in t or " room" in t or any(
        a in t for a in ("bedroom", "bathroom", "garage", "office", "hallway", "basement", "garden", "attic")
    ) for t in with_area)  # fmt: skip


def test_the_split_and_the_label_space():
    data = load_intent_slots(seed=0, samples_per_template=2)
    assert data.labels == [*data.intents, *data.slots] and "area" in data.slots and "name" in data.slots
    Y = data.golden.matrix(data.labels)
    assert Y.shape == (len(data.golden), len(data.labels))
    assert (Y[:, : len(data.intents)].sum(axis=1) == 1).all()  # exactly one intent per text
