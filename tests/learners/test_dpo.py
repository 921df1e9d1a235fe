"""DPO: the loss on 2 hand-computed pairs, the pairs' validation, and that it learns."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rewardloop.learners._common import LearnerDataError
from rewardloop.learners.dpo import DPO, DPOConfig, PreferencePairs, dpo_loss

from .learner_tasks import LABELS, accuracy, fresh_policy, linear_task

torch.set_num_threads(1)
LN3 = math.log(3.0)

# Pair 1: π = (.75, .25), π_ref = (.5, .5), label 0 preferred over 1:
#   margin = (ln .75 − ln .5) − (ln .25 − ln .5) = ln 3 → loss −ln σ(β ln 3); β = 1: ln(4/3)
# Pair 2: π = (.5, .5), π_ref = (.75, .25), 0 over 1: margin = ln(2/3) − ln 2 = −ln 3 → β = 1: ln 4
LOGITS = torch.tensor([[LN3, 0.0], [0.0, 0.0]])
REF = torch.tensor([[0.0, 0.0], [LN3, 0.0]])
CHOSEN, REJECTED = torch.tensor([0, 0]), torch.tensor([1, 1])


def test_loss_on_two_pairs() -> None:
    loss, m = dpo_loss(LOGITS, REF, CHOSEN, REJECTED, beta=1.0)
    assert loss.item() == pytest.approx((math.log(4 / 3) + math.log(4)) / 2, abs=1e-6)
    assert m["pref_acc"] == 0.5
    assert m["reward_margin"] == pytest.approx(0.0, abs=1e-6)


def test_beta_and_weights() -> None:
    loss, _ = dpo_loss(LOGITS, REF, CHOSEN, REJECTED, beta=0.5)
    # −ln σ(x) = ln(1 + e^−x) with x = ±.5 ln 3
    expected = (math.log(1 + 3**-0.5) + math.log(1 + 3**0.5)) / 2
    assert loss.item() == pytest.approx(expected, abs=1e-6)
    weighted, _ = dpo_loss(LOGITS, REF, CHOSEN, REJECTED, beta=1.0, weight=torch.tensor([1.0, 3.0]))
    assert weighted.item() == pytest.approx((math.log(4 / 3) + 3 * math.log(4)) / 4, abs=1e-6)


def test_policy_equal_to_reference_gives_ln2() -> None:
    loss, _ = dpo_loss(REF, REF, CHOSEN, REJECTED, beta=0.1)
    assert loss.item() == pytest.approx(math.log(2), abs=1e-6)


BAD_PAIRS = [
    ({"chosen": np.array([0, 4])}, r"chosen: row 1 is 4, not in \[0, 4\)"),
    ({"rejected": np.array([0, 2])}, "rejected: row 0 rejects the label it prefers"),
    ({"rejected": np.array([1])}, r"rejected: expected shape \(2,\)"),
    ({"weight": np.array([1.0, -1.0])}, "weight: row 1 is -1.0"),
    ({"X": np.zeros((3, 16), np.float32)}, r"X: expected shape \(2, n_features\)"),
]


@pytest.mark.parametrize(("change", "message"), BAD_PAIRS)
def test_bad_pairs_are_refused(change: dict, message: str) -> None:
    values = {"X": np.zeros((2, 16), np.float32), "chosen": np.array([0, 2]), "rejected": np.array([1, 3])}
    with pytest.raises(LearnerDataError, match=message):
        PreferencePairs(labels=list(LABELS), **{**values, **change})


def test_from_texts_names_an_unknown_label() -> None:
    def embed(texts: list[str]) -> np.ndarray:
        return np.ones((len(texts), 16), np.float32)

    pairs = PreferencePairs.from_texts(["x", "y"], ["a", "b"], ["c", "a"], LABELS, embed, weight=[1.0, 2.0])
    assert pairs.chosen.tolist() == [0, 1] and pairs.rejected.tolist() == [2, 0]
    assert pairs.weight.tolist() == [1.0, 2.0] and pairs.texts == ["x", "y"]
    with pytest.raises(LearnerDataError, match="rejected: row 1 label 'zzz' is not a label"):
        PreferencePairs.from_texts(["x", "y"], ["a", "b"], ["c", "zzz"], LABELS, embed)


def test_fit_refuses_pairs_of_other_labels() -> None:
    pairs = PreferencePairs(np.zeros((1, 16), np.float32), np.array([0]), np.array([1]), ["p", "q", "r", "s"])
    with pytest.raises(LearnerDataError, match="labels: the pairs' labels differ"):
        DPO().fit(pairs, fresh_policy())


def test_it_learns_from_preferences_only() -> None:
    X, y = linear_task(512, seed=6)
    rejected = (y + np.random.default_rng(7).integers(1, len(LABELS), len(y))) % len(LABELS)
    pairs = PreferencePairs(X, y, rejected, list(LABELS))
    X_test, y_test = linear_task(1000, seed=99)
    policy = fresh_policy()
    start = accuracy(policy, X_test, y_test)
    learner = DPO(DPOConfig(epochs=20, batch_size=32, beta=0.5))
    fitted = learner.fit(pairs, policy)
    end = accuracy(fitted, X_test, y_test)
    assert start < 0.4 and end > 0.7, (start, end)
    assert learner.history_[-1]["train/pref_acc"] > 0.8


def test_pairs_from_stored_feedback() -> None:
    from rewardloop.learners.dpo import pairs_from_batch
    from rewardloop.policies.classifier import ClassifierPolicy
    from rewardloop.types import DecisionBatch
    from rewardloop.types.records import Feedback

    X, _ = linear_task(4, seed=8)
    texts = ["t0", "t1", "t2", "t3"]
    table = dict(zip(texts, X, strict=True))

    def embed(batch_texts: list[str]) -> np.ndarray:
        return np.stack([table[t] for t in batch_texts])

    class Encoder:
        encode = staticmethod(embed)

    start = fresh_policy()
    policy = ClassifierPolicy(LABELS, head=start.head, in_dim=16, encoder=Encoder())  # type: ignore[arg-type]
    d = policy.decide_batch(texts)
    other = next(label for label in LABELS if label != d[0].action)
    feedback = {
        d[0].id: [Feedback(decision_id=d[0].id, kind="correction", label=other, authority=0.8)],
        d[1].id: [Feedback(decision_id=d[1].id, kind="correction", label=d[1].action)],  # agrees: no pair
        d[2].id: [
            Feedback(decision_id=d[2].id, kind="preference", preferred="b", rejected="c", authority=0.5)
        ],
        d[3].id: [Feedback(decision_id=d[3].id, kind="rating", value=1, scale=(-1, 1))],  # no pair
    }
    pairs = pairs_from_batch(DecisionBatch(d, feedback=feedback), LABELS, embed)
    assert pairs.texts == ["t0", "t2"]
    assert [LABELS[i] for i in pairs.chosen] == [other, "b"]
    assert [LABELS[i] for i in pairs.rejected] == [d[0].action, "c"]
    assert pairs.weight.tolist() == [0.8, 0.5]
    assert np.array_equal(pairs.X, X[[0, 2]])
    assert DPO.data_from_batch(DecisionBatch(d, feedback=feedback), policy).texts == ["t0", "t2"]
    bad = {d[2].id: [Feedback(decision_id=d[2].id, kind="preference", preferred="zz", rejected="c")]}
    with pytest.raises(LearnerDataError, match=f"decision {d[2].id}: preferred label 'zz' is not a label"):
        pairs_from_batch(DecisionBatch(d, feedback=bad), LABELS, embed)
