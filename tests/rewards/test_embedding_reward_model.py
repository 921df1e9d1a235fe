"""The embeddings + logistic-regression reward model."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from rewardloop.rewards import EmbeddingRewardModel, NotEnoughDataError, RewardError

POS = ["great", "lovely", "wonderful", "excellent", "happy", "superb"]
NEG = ["awful", "terrible", "horrible", "sad", "dreadful", "poor"]


class HashEncoder:
    """A deterministic stand-in for MiniLM: bag of hashed words, L2-normalised, 32 dims."""

    dim = 32

    def encode(self, texts):
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, t in enumerate(texts):
            for w in t.lower().split():
                out[i, int(hashlib.md5(w.encode()).hexdigest(), 16) % self.dim] += 1.0
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


def _synthetic(n, seed=0):
    rng = np.random.default_rng(seed)
    answers, ratings = [], []
    for _ in range(n):
        good = rng.random() < 0.5
        words = rng.choice(POS if good else NEG, size=2)
        answers.append(" ".join(words) + " day")
        ratings.append(float(rng.integers(1, 5)) if good else float(rng.integers(-4, 0)))
    return ["How was it?"] * n, answers, np.array(ratings)


def test_learns_on_synthetic_ratings_and_reports_metrics():
    prompts, answers, ratings = _synthetic(120)
    rm = EmbeddingRewardModel(threshold=0.0, encoder=HashEncoder(), random_state=0).fit(
        prompts, answers, ratings
    )
    assert rm.metrics_["roc_auc"] > 0.95
    assert rm.metrics_["n_train"] == 96 and rm.metrics_["n_test"] == 24
    assert "good" in rm.report_ and "poor" in rm.report_
    p = rm.score("How was it?", ["wonderful superb day", "dreadful awful day"])
    assert p[0] > 0.5 > p[1]


def test_same_seed_same_model():
    prompts, answers, ratings = _synthetic(80)
    a = EmbeddingRewardModel(encoder=HashEncoder(), random_state=1).fit(prompts, answers, ratings)
    b = EmbeddingRewardModel(encoder=HashEncoder(), random_state=1).fit(prompts, answers, ratings)
    np.testing.assert_array_equal(a.coef_, b.coef_)


def test_save_load_roundtrip_without_pickle(tmp_path):
    prompts, answers, ratings = _synthetic(60)
    rm = EmbeddingRewardModel(encoder=HashEncoder(), test_size=0).fit(prompts, answers, ratings)
    folder = rm.save(tmp_path / "rm")
    assert sorted(p.name for p in folder.iterdir()) == ["coef.npz", "meta.json"]
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["kind"] == "embedding_lr" and meta["threshold"] == 0.0
    back = EmbeddingRewardModel.load(folder, encoder=HashEncoder())
    cands = ["happy day", "sad day", "poor lovely day"]
    np.testing.assert_allclose(back.score("How was it?", cands), rm.score("How was it?", cands))
    # an object array (which would need pickle) is refused on load
    np.savez(folder / "coef.npz", coef=np.array([object()], dtype=object), intercept=np.array([0.0]))
    with pytest.raises(ValueError, match="pickle"):
        EmbeddingRewardModel.load(folder, encoder=HashEncoder())


@pytest.mark.parametrize(
    ("kwargs", "data", "message"),
    [
        ({}, _synthetic(49), "needs at least 50 rated samples (min_samples); it has 49"),
        (
            {"min_samples": 4},
            (["q"] * 4, ["a", "b", "c", "d"], [1, 1, 1, -1]),
            "at least 2 good and 2 poor samples at threshold 0; it has 3 good and 1 poor",
        ),
        (
            {"min_samples": 2},
            (["q"] * 3, ["a", "b"], [1, 2, 3]),
            "ratings: 3 ratings for 3 prompts and 2 answers",
        ),
        ({"min_samples": 2}, (["q"] * 2, ["a", "b"], [1, np.nan]), "ratings: non-finite value at index 1"),
    ],
)
def test_refuses_bad_training_data(kwargs, data, message):
    with pytest.raises(RewardError) as err:
        EmbeddingRewardModel(encoder=HashEncoder(), **kwargs).fit(*data)
    assert message in str(err.value)
    assert isinstance(err.value, NotEnoughDataError) == ("at least" in message)


def test_unfitted_and_wrong_folder(tmp_path):
    with pytest.raises(RewardError, match="not fitted"):
        EmbeddingRewardModel(encoder=HashEncoder()).score("q", ["a"])
    with pytest.raises(RewardError, match=r"no meta\.json"):
        EmbeddingRewardModel.load(tmp_path)
    (tmp_path / "meta.json").write_text('{"kind": "pairwise_bt"}')
    with pytest.raises(RewardError, match="holds a 'pairwise_bt' model, expected 'embedding_lr'"):
        EmbeddingRewardModel.load(tmp_path)
