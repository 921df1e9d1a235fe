"""Seeded "it learns" test of the embeddings + LR reward model on a real slice of the VADER ratings.

Bound: held-out ROC AUC > 0.70. The slice is small (40 snippets per corpus, neutral ones dropped), so
the held-out part has ~35 snippets and the AUC's standard error is about 0.07-0.08: 0.70 is ~3 standard
errors above chance (0.5), while the full benchmark (benchmarks/rewards.py) reaches about 0.9.
"""

from __future__ import annotations

import numpy as np
import pytest

from rewardloop.datasets.fetch import DataMissingError, package_file

try:
    package_file("vaderSentiment-3.3.2.tar.gz")
except DataMissingError:
    pytest.skip("run `rewardloop data fetch` for the VADER sdist", allow_module_level=True)

torch = pytest.importorskip("torch")

from rewardloop.datasets.vader import load_vader  # noqa: E402
from rewardloop.rewards import EmbeddingRewardModel  # noqa: E402


def _slice(per_source, seed):
    snippets = [s for s in load_vader(limit=per_source, seed=seed) if abs(s.mean) > 0.5]
    return [s.prompt for s in snippets], [s.text for s in snippets], np.array([s.mean for s in snippets])


def test_reward_model_learns_sentiment_from_vader_slice():
    torch.set_num_threads(1)
    prompts, answers, ratings = _slice(40, seed=0)
    rm = EmbeddingRewardModel(threshold=0.0, test_size=0.3, random_state=0).fit(prompts, answers, ratings)
    assert rm.metrics_["roc_auc"] > 0.70, rm.report_


@pytest.mark.slow
def test_reward_model_auc_on_a_larger_slice():
    torch.set_num_threads(2)
    prompts, answers, ratings = _slice(400, seed=1)
    rm = EmbeddingRewardModel(threshold=0.0, test_size=0.25, random_state=0).fit(prompts, answers, ratings)
    assert rm.metrics_["roc_auc"] > 0.85, rm.report_
