"""Reward-model training from the store, with the run logged as a TrainingRun (SQLite and PostgreSQL)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from tests.rewards.test_embedding_reward_model import NEG, POS, HashEncoder

from rewardloop.loop.compile import compile_rewards
from rewardloop.loop.reward_models import (
    pairs_from_jsonl,
    pairs_from_store,
    rated_from_jsonl,
    rated_from_store,
    train_logged,
)
from rewardloop.rewards import EmbeddingRewardModel, NotEnoughDataError, RewardError, RewardSpec
from rewardloop.store import read_runs, write_decisions, write_feedback
from rewardloop.types import Decision, Feedback

SPEC = RewardSpec("thumbs", function="accuracy")


def _reranker_decisions(n):
    out = []
    for i in range(n):
        good, bad = f"a {POS[i % 6]} {POS[(i + 1) % 6]} day", f"a {NEG[i % 6]} {NEG[(i + 2) % 6]} day"
        chosen = "c0" if i % 2 == 0 else "c1"
        out.append(
            Decision(
                id=f"r{i}",
                policy="answers",
                policy_version="1",
                kind="reranker",
                actions=("c0", "c1"),
                action=chosen,
                action_dist=(0.5, 0.5),
                pscore=0.5,
                text="How was it?",
                candidates=(good, bad),
                ranking=(chosen, "c1" if chosen == "c0" else "c0"),
            )
        )
    return out


def test_rated_and_pairs_from_store_then_a_logged_run(store, tmp_path):
    decisions = _reranker_decisions(60)
    write_decisions(store, decisions)
    # thumbs up when the good candidate (c0) was chosen; one preference per decision, authority 0.8
    write_feedback(
        store,
        [
            Feedback(decision_id=d.id, kind="rating", value=1 if d.action == "c0" else -1, scale=(-1, 1))
            for d in decisions
        ]
        + [
            Feedback(decision_id=d.id, kind="preference", preferred="c0", rejected="c1", authority=0.8)
            for d in decisions
        ],
    )
    compile_rewards(store, SPEC)
    data = rated_from_store(store, "thumbs")
    assert len(data) == 60
    assert data.answers[0] == decisions[0].candidates[0] and data.ratings[0] == 1.0
    assert data.answers[1] == decisions[1].candidates[1] and data.ratings[1] == 0.0
    pairs = pairs_from_store(store, policy="answers")
    assert len(pairs) == 60 and pairs[0].chosen.startswith("a great") and pairs[0].weight == 0.8

    rm = EmbeddingRewardModel(threshold=0.5, encoder=HashEncoder(), random_state=0)
    result = train_logged(
        rm,
        lambda: rm.fit(data.prompts, data.answers, data.ratings),
        tmp_path / "rm",
        n_samples=len(data),
        store=store,
        policy="answers",
        config={"threshold": 0.5},
    )
    (run,) = read_runs(store, policy="answers")
    assert (run.status, run.learner, run.n_samples) == ("succeeded", "embedding_lr", 60)
    assert run.artifact_path == str(result.artifact)
    assert run.metrics["roc_auc"] == pytest.approx(result.metrics["roc_auc"])


def test_a_failed_fit_is_logged_failed_and_re_raised(store, tmp_path):
    rm = EmbeddingRewardModel(encoder=HashEncoder())
    with pytest.raises(NotEnoughDataError):
        train_logged(
            rm,
            lambda: rm.fit(["q"] * 3, ["a", "b", "c"], np.ones(3)),
            tmp_path / "x",
            n_samples=3,
            store=store,
        )
    (run,) = read_runs(store)
    assert run.status == "failed" and run.finished_at is not None
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (['{"prompt": "p", "answer": "a"}'], "row 1: missing key 'rating'"),
        (['{"prompt": "p", "answer": "a", "rating": "high"}'], "row 1: 'rating' must be a finite number"),
        (['{"prompt": "p", "answer": "", "rating": 1}'], "row 1: 'answer' must be a non-empty string"),
        (["{not json"], "line 1: not valid JSON"),
        (["[1, 2]"], "line 1: expected a JSON object"),
    ],
)
def test_jsonl_errors_name_the_row(tmp_path, lines, message):
    path = tmp_path / "d.jsonl"
    path.write_text("\n".join(lines))
    with pytest.raises(RewardError) as err:
        rated_from_jsonl(path)
    assert message in str(err.value)


def test_pairs_from_jsonl(tmp_path):
    path = tmp_path / "p.jsonl"
    rows = [
        {"prompt": "p", "chosen": "a", "rejected": "b", "weight": 0.5, "margin": 2},
        {"prompt": "p", "chosen": "c", "rejected": "d"},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    pairs = pairs_from_jsonl(path)
    assert [(p.chosen, p.weight, p.margin) for p in pairs] == [("a", 0.5, 2.0), ("c", 1.0, 0.0)]


def test_vader_raters_as_feedback_compile_to_their_mean_and_spread(store):
    from rewardloop.datasets.fetch import DataMissingError
    from rewardloop.loop.reward_models import log_vader

    try:
        from rewardloop.datasets.vader import load_vader

        snippets = load_vader(["amazon", "tweets"], limit=3)
    except DataMissingError:
        pytest.skip("run `rewardloop data fetch` for the VADER sdist")
    n_dec, n_fb = log_vader(store, snippets)
    assert n_dec == 6 and n_fb == sum(len(s.ratings) for s in snippets)
    assert log_vader(store, snippets) == (0, 0)  # idempotent
    compile_rewards(store, SPEC, policy="vader")
    rewards = {r.decision_id: r for r in read_rewards_of(store)}
    for s in snippets:
        r = rewards[f"vader:{s.id}"]
        assert r.value == pytest.approx((s.mean + 4) / 8, abs=1e-9)
        assert r.disagreement == pytest.approx(np.std(s.ratings) / 8, abs=1e-9)
        assert len(r.feedback_ids) == len(s.ratings)
    data = rated_from_store(store, "thumbs")
    assert sorted(data.answers) == sorted(s.text for s in snippets)


def read_rewards_of(store):
    from rewardloop.store import read_rewards

    return read_rewards(store, "thumbs", 1, policy="vader")
