"""Judged evaluation: exact scores, intervals and wins on a hand-made case; the three judges; the two
kinds of agent; the report (escaped HTML) and the command."""

from __future__ import annotations

import json
from dataclasses import dataclass

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from rewardloop.cli.main import app as cli
from rewardloop.evaluation.judged import (
    EndpointAgent,
    EvalsInputError,
    GeneratorAgent,
    LLMJudge,
    Question,
    ReferenceJudge,
    RewardModelJudge,
    read_questions,
    run_evals,
    token_f1,
)
from rewardloop.policies.remote import ChatEndpoint

QUESTIONS = [
    Question("q1", "Capital of France?", "paris"),
    Question("q2", "Colour of the sky?", "blue sky"),
    Question("q3", "Two plus two?", "four"),
]


@dataclass
class Fixed:
    """An agent with a written answer per question id."""

    name: str
    replies: dict[str, str]

    def answer(self, question: Question) -> str:
        return self.replies[question.id]


AGENTS = [
    Fixed("A", {"q1": "Paris.", "q2": "blue", "q3": "four"}),  # F1: 1, 2/3, 1
    Fixed("B", {"q1": "London", "q2": "Blue sky!", "q3": "4"}),  # 0, 1, 0
    Fixed("C", {"q1": "paris", "q2": "red", "q3": "Four"}),  # 1, 0, 1
]


def test_means_intervals_and_wins_on_a_hand_made_case() -> None:
    report = run_evals(AGENTS, QUESTIONS, ReferenceJudge(), n_bootstrap=500, seed=7)
    np.testing.assert_allclose(report.scores, [[1, 2 / 3, 1], [0, 1, 0], [1, 0, 1]])
    assert [s.mean for s in report.summaries] == pytest.approx([8 / 9, 1 / 3, 2 / 3])
    # The intervals: percentiles of the means over the same 500 question draws for every agent.
    idx = np.random.RandomState(7).randint(0, 3, size=(500, 3))
    for s, row in zip(report.summaries, report.scores, strict=True):
        lo, hi = np.percentile(row[idx].mean(axis=1), [2.5, 97.5])
        assert (s.lower, s.upper, s.n) == (pytest.approx(lo), pytest.approx(hi), 3)
        assert row.min() <= s.lower <= s.mean <= s.upper <= row.max()
    pairs = {(p.a, p.b): (p.wins, p.ties, p.losses, p.win_rate) for p in report.pairwise}
    assert pairs == {
        ("A", "B"): (2, 0, 1, pytest.approx(2 / 3)),
        ("A", "C"): (1, 2, 0, pytest.approx(2 / 3)),
        ("B", "C"): (1, 0, 2, pytest.approx(1 / 3)),
    }
    row = report.to_dict()["questions"][1]
    assert row["answer/B"] == "Blue sky!" and row["score/A"] == pytest.approx(2 / 3)


def test_token_f1_follows_squad() -> None:
    assert token_f1("The shop opens at nine.", "It opens at nine") == pytest.approx(0.75)
    assert token_f1("", "") == 1.0 and token_f1("a", "paris") == 0.0  # articles dropped: nothing left


def test_the_html_escapes_every_answer_and_name() -> None:
    evil = Fixed("<b>x</b>", {q.id: "<script>alert(1)</script>" for q in QUESTIONS})
    page = run_evals([AGENTS[0], evil], QUESTIONS, ReferenceJudge(), n_bootstrap=100).to_html()
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<b>x</b>" not in page and "&lt;b&gt;x&lt;/b&gt;" in page


def test_the_llm_judge_rates_and_an_unscored_question_is_left_out_for_all() -> None:
    sent: list[dict] = []

    def judge(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        sent.append(body)
        user = body["messages"][1]["content"]
        reply = (
            "no idea"
            if "Two plus two" in user and "Answer: 4" in user
            else ("Score: 9" if user.endswith("Answer: Paris.") else "3")
        )
        return httpx.Response(200, json={"choices": [{"message": {"content": reply}}]})

    endpoint = ChatEndpoint(
        "http://judge.test/v1", "grader", client=httpx.Client(transport=httpx.MockTransport(judge))
    )
    report = run_evals(AGENTS[:2], QUESTIONS, LLMJudge(endpoint), n_bootstrap=100)
    assert (
        sent[0]["messages"][1]["content"]
        == "Question: Capital of France?\nReference answer: paris\nAnswer: Paris."
    )
    # q3 is unscored for B ("no idea"), so it is left out for A too.
    assert np.isnan(report.scores[1, 2]) and report.n_unscored == 1
    assert [s.mean for s in report.summaries] == [pytest.approx((9 + 3) / 2), pytest.approx((3 + 3) / 2)]
    assert report.to_dict()["questions"][2]["score/B"] is None


def test_the_reward_model_judge_scores_the_answer_to_the_question() -> None:
    class Longer:  # a reward model that likes long answers
        def score(self, prompt: str, candidates: list[str]) -> np.ndarray:
            return np.array([len(c) / 10 for c in candidates])

    report = run_evals(AGENTS[:1], QUESTIONS, RewardModelJudge(Longer()), n_bootstrap=100)
    np.testing.assert_allclose(report.scores, [[0.6, 0.4, 0.4]])


def test_a_generator_and_the_same_generator_behind_the_endpoint_answer_alike(store) -> None:
    pytest.importorskip("gguf")
    from tests.service._generator_app import generator_app

    from rewardloop.policies.generator import GeneratorPolicy

    policy = GeneratorPolicy.random(seed=1, name="chat", version="1", max_new_tokens=4)
    app, key = generator_app(store, policy)
    with TestClient(app) as http, pytest.MonkeyPatch.context() as mp:
        mp.setenv("AGENT_KEY", key)
        served = EndpointAgent("chat", ChatEndpoint("http://testserver/v1", "chat", "AGENT_KEY", client=http))
        local = GeneratorAgent("local", policy)
        refs = [Question(q.id, q.text, local.answer(q)) for q in QUESTIONS]
        report = run_evals([local, served], refs, ReferenceJudge(), n_bootstrap=100)
    assert report.answers[0] == report.answers[1]
    assert [(p.wins, p.ties, p.losses) for p in report.pairwise] == [(0, 3, 0)]
    assert [s.mean for s in report.summaries] == [1.0, 1.0]


@pytest.mark.parametrize(
    ("lines", "message"),  # a question file's errors name the line
    [
        (["{oops"], "line 1: not valid JSON"),
        (["", "[1]"], "line 2: expected a JSON object"),
        (['{"text": ""}'], "line 1: question: a non-empty string"),
        (['{"question": "q", "reference": 3}'], "line 1: reference: must be a string"),
        (['{"question": "q", "passages": "p"}'], "line 1: passages: must be a list of strings"),
        (['{"id": "a", "question": "q"}', '{"id": "a", "question": "r"}'], "the id 'a' is given twice"),
        ([""], "no questions"),
    ],
)
def test_bad_question_files_are_named(tmp_path, lines: list[str], message: str) -> None:
    path = tmp_path / "q.jsonl"
    path.write_text("\n".join(lines))
    with pytest.raises(EvalsInputError, match=message):
        read_questions(path)


def test_judge_none_needs_references_and_agents_need_distinct_names() -> None:
    with pytest.raises(EvalsInputError, match=r"q9.*needs a reference"):
        run_evals(AGENTS[:1], [Question("q9", "hi")], ReferenceJudge())
    with pytest.raises(EvalsInputError, match="name each agent once"):
        run_evals([AGENTS[0], AGENTS[0]], QUESTIONS, ReferenceJudge())


def test_rewardloop_evals_writes_json_and_html(tmp_path) -> None:
    pytest.importorskip("gguf")
    from rewardloop.policies.generator import GeneratorPolicy

    for seed in (1, 2):
        GeneratorPolicy.random(seed=seed, name=f"g{seed}", version="1", max_new_tokens=3).save(
            tmp_path / f"g{seed}"
        )
    questions = tmp_path / "q.jsonl"
    questions.write_text(
        "\n".join(json.dumps({"question": q.text, "reference": q.reference}) for q in QUESTIONS)
    )
    agents = f"{tmp_path / 'g1'},{tmp_path / 'g2'}"
    args = ["evals", "--agents", agents, "--questions", str(questions), "--judge", "none"]
    result = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "out"), "--bootstrap", "200"])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert [a["agent"] for a in report["agents"]] == ["g1", "g2"] and report["n_questions"] == 3
    assert report["pairwise"][0]["a"] == "g1" and (tmp_path / "out" / "report.html").is_file()
    bad = CliRunner().invoke(cli, [*args[:-1], "oracle"])
    assert bad.exit_code == 2 and "--judge: one of none, rm, llm" in bad.output
    no_url = CliRunner().invoke(cli, [*args[:-1], "llm"])
    assert no_url.exit_code == 2 and "--judge-url" in no_url.output
