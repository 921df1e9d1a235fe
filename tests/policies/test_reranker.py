"""The reranker: pass-through with one warning when untrained; ordering by a model; loading artifacts."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from rewardloop.policies.reranker import Reranker, UntrainedRerankerWarning
from rewardloop.rewards import EmbeddingRewardModel, RewardError


class LengthModel:
    """Scores a candidate by its length (a stand-in reward model)."""

    def score(self, prompt, candidates):
        return np.array([len(c) for c in candidates], dtype=float)


def test_untrained_keeps_order_and_warns_once():
    rr = Reranker()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = rr.rerank("q", ["b", "a", "c"])
        rr.top_k("q", ["x", "y"], k=1)
        rr.score("q", ["z"])
    assert [r.text for r in first] == ["b", "a", "c"]
    assert [r.index for r in first] == [0, 1, 2]
    assert [w.category for w in caught] == [UntrainedRerankerWarning]
    assert "keeping the given order" in str(caught[0].message)


def test_rerank_top_k_and_ties_keep_order():
    rr = Reranker(LengthModel())
    ranked = rr.rerank("q", ["aa", "a", "cccc", "bb"])
    assert [r.text for r in ranked] == ["cccc", "aa", "bb", "a"]  # "aa" before "bb": given order on a tie
    assert [r.index for r in rr.top_k("q", ["aa", "a", "cccc"], k=2)] == [2, 0]
    assert rr.rerank("q", []) == []
    dist = rr.action_dist("q", ["a", "aa"], temperature=1.0)
    assert dist.tolist() == pytest.approx([1 / (1 + np.e), np.e / (1 + np.e)])


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda rr: rr.top_k("q", ["a"], k=0), "k: must be >= 1"),
        (lambda rr: rr.score("q", "abc"), "candidates: a sequence of answers, not one string"),
        (lambda rr: rr.action_dist("q", ["a"], temperature=0), "temperature: must be > 0"),
    ],
)
def test_bad_calls(call, message):
    with pytest.raises(RewardError, match=message):
        call(Reranker(LengthModel()))


def test_load_serves_a_saved_reward_model(tmp_path):
    from tests.rewards.test_embedding_reward_model import HashEncoder, _synthetic

    prompts, answers, ratings = _synthetic(60)
    EmbeddingRewardModel(encoder=HashEncoder(), test_size=0).fit(prompts, answers, ratings).save(
        tmp_path / "rm"
    )
    rr = Reranker.load(tmp_path / "rm")
    assert isinstance(rr.model, EmbeddingRewardModel) and rr.trained
    rr.model.encoder = HashEncoder()  # the test's stand-in encoder instead of MiniLM
    assert rr.top_k("How was it?", ["awful sad day", "lovely happy day"])[0].text == "lovely happy day"
    (tmp_path / "odd").mkdir()
    (tmp_path / "odd" / "meta.json").write_text('{"kind": "mystery"}')
    with pytest.raises(RewardError, match="unknown reward-model kind 'mystery'"):
        Reranker.load(tmp_path / "odd")
