"""Supervised learner: the exact loss, the config, the contract, learning on real intents, store data."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
import torch

from rewardloop.datasets.intents import load_intent_pairs, split_intents
from rewardloop.learners import LEARNERS, LabelledData, LearnerConfigError, labelled_from_batch
from rewardloop.learners.supervised import (
    SupervisedConfig,
    SupervisedLearner,
    balanced_weights,
    weighted_cross_entropy,
)
from rewardloop.policies.classifier import ClassifierPolicy
from rewardloop.store import read_decisions, write_decisions, write_feedback
from rewardloop.types import Decision, DecisionBatch, Feedback

EIGHT = [
    "HassGetWeather",
    "HassMediaNext",
    "HassMediaPause",
    "HassSetVolume",
    "HassShoppingListAddItem",
    "HassStartTimer",
    "HassTurnOff",
    "HassTurnOn",
]


@pytest.fixture(scope="module")
def encoder():
    torch.set_num_threads(1)
    from rewardloop.encoders import default_encoder

    return default_encoder()  # process-wide: shared with every other test area


@pytest.fixture(scope="module")
def eight_intents(encoder):
    """8 intents × 10 labelled texts, and a golden set of 10 per intent, with cached embeddings."""
    data = split_intents(
        load_intent_pairs(seed=0), seed=0, seed_per_intent=10, golden_per_intent=10, intents=EIGHT
    )
    return data, encoder.encode(data.seed_set.texts), encoder.encode(data.golden.texts)


def rand_X(n=12, d=384, seed=0):
    return np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)


# ---------------------------------------------------------------------------------------------- loss


def test_weighted_cross_entropy_exact_three_rows():
    # rows: logits (0, 0) label 0 → CE ln 2; (ln 3, 0) label 0 → ln 4/3; (ln 3, 0) label 1 → ln 4.
    logits = torch.tensor([[0.0, 0.0], [math.log(3), 0.0], [math.log(3), 0.0]], dtype=torch.float64)
    y = torch.tensor([0, 0, 1])
    w = torch.tensor([1.0, 2.0, 1.0], dtype=torch.float64)
    expected = (math.log(2) + 2 * math.log(4 / 3) + math.log(4)) / 4
    assert float(weighted_cross_entropy(logits, y, w)) == pytest.approx(expected, abs=1e-12)
    # label smoothing ε = 0.5 on row 1 alone: target (0.75, 0.25) → 0.75 ln 2 + 0.25 ln 2
    one = weighted_cross_entropy(logits[:1], y[:1], w[:1], label_smoothing=0.5)
    assert float(one) == pytest.approx(math.log(2), abs=1e-12)


def test_balanced_weights_exact():
    np.testing.assert_allclose(balanced_weights(np.array([0, 0, 1]), 3), [0.75, 0.75, 1.5])


# -------------------------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"lr": -1.0}, "lr: must be > 0"),
        ({"epochs": 0}, "epochs: must be >= 1"),
        ({"hidden": -3}, "hidden: must be >= 0"),
        ({"dropout": 1.0}, "dropout: must be in [0, 1)"),
        ({"class_weight": "auto"}, "class_weight: must be none or balanced"),
        ({"label_smoothing": -0.1}, "label_smoothing: must be in [0, 1)"),
        ({"calibration_fraction": 1.0}, "calibration_fraction: must be in [0, 1)"),
        ({"nope": 1}, "nope: not a field of SupervisedConfig"),
        ({"epochs": "ten"}, "epochs: expected an integer, got 'ten'"),
        ({"epochs": 2.5}, "epochs: expected an integer, got 2.5"),
        ({"lr": "fast"}, "lr: expected a number, got 'fast'"),
        ({"warm_start": "yes"}, "warm_start: expected true or false, got 'yes'"),
        ({"class_weight": 1}, "class_weight: expected a string, got 1"),
        ({"checkpoint_dir": 3}, "checkpoint_dir: expected a string, got 3"),
    ],
)
def test_config_errors_name_the_key(values, message):
    with pytest.raises(LearnerConfigError) as err:
        SupervisedConfig.from_dict(values)
    assert message in str(err.value)


def test_config_from_dict_accepts_loose_yaml_types():
    cfg = SupervisedConfig.from_dict({"lr": 1, "checkpoint_dir": None, "epochs": 3})
    assert cfg.lr == 1.0 and isinstance(cfg.lr, float) and cfg.epochs == 3 and cfg.checkpoint_dir is None


def test_config_fields_all_have_help():
    assert all(SupervisedConfig.help().values())
    assert LEARNERS["supervised"] is SupervisedLearner


# ------------------------------------------------------------------------------------------ contract


def test_fit_returns_a_fitted_policy_and_same_seed_same_result():
    X, y = rand_X(), ["b", "a", "c"] * 4
    cfg = SupervisedConfig(epochs=3, batch_size=5, seed=3)
    p1, p2 = SupervisedLearner(cfg).fit(X, y), SupervisedLearner(cfg).fit(X, y)
    p3 = SupervisedLearner(SupervisedConfig(epochs=3, batch_size=5, seed=4)).fit(X, y)
    assert isinstance(p1, ClassifierPolicy) and p1.labels == ["a", "b", "c"]
    np.testing.assert_array_equal(p1.predict_proba_embeddings(X), p2.predict_proba_embeddings(X))
    assert not np.allclose(p1.predict_proba_embeddings(X), p3.predict_proba_embeddings(X))


def test_warm_start_does_not_touch_the_callers_policy():
    X, y = rand_X(), ["a", "b"] * 6
    start = SupervisedLearner(SupervisedConfig(epochs=2)).fit(X, y)
    before = start.predict_proba_embeddings(X).copy()
    more = SupervisedLearner(SupervisedConfig(epochs=5)).fit(X, y, policy=start)
    np.testing.assert_array_equal(start.predict_proba_embeddings(X), before)
    assert not np.allclose(more.predict_proba_embeddings(X), before)


def test_weight_two_equals_a_duplicate_and_weight_zero_equals_absence():
    # Full-batch steps, so that the gradient is the weighted sum over every row.
    X, y = rand_X(6), ["a", "b", "a", "b", "c", "c"]
    cfg = SupervisedConfig(epochs=5, batch_size=100)
    doubled = SupervisedLearner(cfg).fit(X, y, sample_weight=[2, 1, 1, 1, 1, 1])
    duplicated = SupervisedLearner(cfg).fit(np.vstack([X, X[:1]]), [*y, "a"])
    np.testing.assert_allclose(
        doubled.predict_proba_embeddings(X), duplicated.predict_proba_embeddings(X), atol=1e-6
    )
    zeroed = SupervisedLearner(cfg).fit(np.vstack([X, X[:1]]), [*y, "c"], sample_weight=[1] * 6 + [0])
    plain = SupervisedLearner(cfg).fit(X, y)
    np.testing.assert_allclose(
        zeroed.predict_proba_embeddings(X), plain.predict_proba_embeddings(X), atol=1e-6
    )


def test_progress_and_checkpoints_keep_the_newest(tmp_path):
    calls = []
    cfg = SupervisedConfig(
        epochs=3, batch_size=4, save_frequency=2, keep_last_n=2, checkpoint_dir=str(tmp_path)
    )
    SupervisedLearner(cfg, progress=lambda s, t, m: calls.append((s, t, set(m)))).fit(
        rand_X(), ["a", "b"] * 6
    )
    assert [c[0] for c in calls] == list(range(1, 10)) and {c[1] for c in calls} == {9}
    assert calls[0][2] == {"loss"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-000006", "step-000008"]
    assert ClassifierPolicy.load(tmp_path / "step-000008").labels == ["a", "b"]


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((rand_X(3), ["a", "b"]), {}, "y: 2 labels for 3 samples"),
        ((rand_X(2), ["a", "b"]), {"sample_weight": [1.0, -1.0]}, "sample_weight: must be finite, >= 0"),
        ((rand_X(2), ["a", "b"]), {"sample_weight": [0.0, 0.0]}, "not all 0"),
        ((rand_X(2), ["a", "b"]), {"sample_weight": [1.0]}, "sample_weight: shape (1,)"),
        ((rand_X(2), [0, 1]), {}, "labels: give the label names"),
        ((rand_X(0), []), {}, "X: no training examples"),
        ((rand_X(2), None), {}, "y: labels are required"),
    ],
)
def test_fit_bad_inputs(args, kwargs, message):
    with pytest.raises(ValueError) as err:
        SupervisedLearner(SupervisedConfig(epochs=1)).fit(*args, **kwargs)
    assert message in str(err.value)


def test_fit_refuses_a_label_the_policy_does_not_have():
    policy = ClassifierPolicy(["a", "b"])
    with pytest.raises(ValueError, match="y: row 1: 'z' is not a label"):
        SupervisedLearner().fit(rand_X(2), ["a", "z"], policy=policy)


# -------------------------------------------------------------------------------------- it learns


def test_it_learns_eight_real_intents(eight_intents):
    data, X_seed, X_gold = eight_intents
    y_gold = data.golden.y(data.labels)
    untrained = ClassifierPolicy(data.labels)
    base = (untrained.predict_proba_embeddings(X_gold).argmax(1) == y_gold).mean()
    learner = SupervisedLearner(SupervisedConfig(seed=0))
    policy = learner.fit(X_seed, data.seed_set.intents, labels=data.labels)
    acc = (policy.predict_proba_embeddings(X_gold).argmax(1) == y_gold).mean()
    assert learner.loss_history_[-1] < learner.loss_history_[0] / 4
    assert acc >= 0.85 and acc > base + 0.5, (acc, base)
    # Temperature scaling on held-out data lowers the NLL and keeps the accuracy.
    policy.fit_temperature(X_gold, data.golden.intents)
    assert policy.temperature_nll_[1] <= policy.temperature_nll_[0]
    assert (policy.predict_proba_embeddings(X_gold).argmax(1) == y_gold).mean() == acc


def test_calibration_fraction_holds_out_data_for_the_temperature(eight_intents):
    data, X_seed, _ = eight_intents
    learner = SupervisedLearner(SupervisedConfig(calibration_fraction=0.25, seed=1))
    policy = learner.fit(X_seed, data.seed_set.intents, labels=data.labels)
    assert learner.n_samples_ == 60  # 80 labelled texts, 20 held out
    assert policy.temperature != 1.0 and policy.temperature_nll_[1] <= policy.temperature_nll_[0]
    with pytest.raises(ValueError, match=r"calibration_fraction: 0\.1 of 4 samples leaves no calibration"):
        SupervisedLearner(SupervisedConfig(calibration_fraction=0.1)).fit(rand_X(4), ["a", "b"] * 2)


def test_fit_on_texts_embeds_with_the_policy_encoder(encoder):
    texts = ["turn on the lights", "switch the lamp on", "turn off the lights", "switch the lamp off"]
    policy = SupervisedLearner(SupervisedConfig(epochs=60, lr=0.05)).fit(texts, ["on", "on", "off", "off"])
    assert policy.predict(texts) == ["on", "on", "off", "off"]


# --------------------------------------------------------------------------------- data from feedback


def _decision(text, action, t0, i, actions=("a", "b", "c")):
    dist = [0.1] * len(actions)
    dist[actions.index(action)] = 1 - 0.1 * (len(actions) - 1)
    return Decision(
        policy="intent",
        policy_version="1",
        kind="classifier",
        actions=actions,
        action=action,
        action_dist=tuple(dist),
        pscore=dist[actions.index(action)],
        text=text,
        created_at=t0 + timedelta(seconds=i),
    )


def _feedback_case():
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    d = [_decision(f"text {i}", "a", t0, i) for i in range(5)]
    fb = [
        Feedback(decision_id=d[0].id, kind="correction", label="b", authority=0.5, rater_id="r1"),
        Feedback(decision_id=d[1].id, kind="rating", value=1, scale=(0, 1), rater_id="r1"),  # thumbs up
        Feedback(decision_id=d[2].id, kind="rating", value=0, scale=(0, 1), rater_id="r1"),  # thumbs down
        Feedback(decision_id=d[3].id, kind="correction", label="c", authority=0.8, rater_id="r1"),
        Feedback(decision_id=d[3].id, kind="correction", label="c", authority=0.2, rater_id="r2"),
        Feedback(decision_id=d[3].id, kind="correction", label="b", authority=0.6, rater_id="r3"),
        Feedback(decision_id=d[4].id, kind="correction", label="c", authority=0.5, source="golden"),
    ]
    return d, fb


def _as_table(data: LabelledData):
    return sorted(zip(data.texts, data.labels, np.round(data.sample_weight, 9).tolist(), strict=True))


EXPECTED = [
    ("text 0", "b", 0.5),
    ("text 1", "a", 1.0),
    ("text 3", "b", 0.6),
    ("text 3", "c", 1.0),
    ("text 4", "c", 1.0),
]


def test_labelled_from_batch_exact_weights():
    d, fb = _feedback_case()
    batch = DecisionBatch(d, {f.decision_id: [x for x in fb if x.decision_id == f.decision_id] for f in fb})
    data = labelled_from_batch(batch, labels=["a", "b", "c"], golden_weight=2.0)
    assert _as_table(data) == EXPECTED
    assert data.skipped == {"rating without a label": 1}
    no_confirm = labelled_from_batch(batch, use_confirmations=False)
    assert ("text 1", "a", 1.0) not in _as_table(no_confirm)


def test_labelled_from_batch_refuses_an_unknown_label_naming_the_feedback():
    d, fb = _feedback_case()
    batch = DecisionBatch(d, {d[0].id: [fb[0]]})
    with pytest.raises(ValueError, match=f"feedback {fb[0].id}: label 'b' is not a label"):
        labelled_from_batch(batch, labels=["a", "c"])


def test_labelled_from_the_store(store):
    d, fb = _feedback_case()
    write_decisions(store, d)
    write_feedback(store, fb)
    batch = read_decisions(store, policy="intent", include_feedback=True)
    assert _as_table(labelled_from_batch(batch, labels=["a", "b", "c"], golden_weight=2.0)) == EXPECTED
