"""Judged evaluation of answering agents: run each agent on a question set, score every answer with a
judge, and compare the agents (``rewardloop evals``).

Agents are registered generator policies (:class:`GeneratorAgent`) or chat models behind an
OpenAI-compatible endpoint (:class:`EndpointAgent`). Judges:

- ``none`` — no judge model: the token F1 of the answer against the question's reference answer
  (SQuAD's: the harmonic mean of token precision and recall after lower-casing and stripping
  punctuation); every question needs a reference;
- ``rm`` — rewardloop's reward model (``rewardloop rm train``): its score of the answer to the question
  (the logistic model's: a probability);
- ``llm`` — a chat model behind an OpenAI-compatible endpoint, asked to rate the answer (and the
  reference, when there is one) from 1 to 10; the first whole number of its reply is the score.

The report: each agent's mean score with a percentile bootstrap interval (the agents' scores resampled
with the same question draws, so that the intervals are of one resampled question set), pairwise
wins, ties and losses per question, and the per-question table. A question the judge could not score
for some agent (an LLM reply with no number in 1..10) is left out of every agent's figures and counted
(``n_unscored``), so that the agents are compared on the same questions.
"""

from __future__ import annotations

import html
import json
import re
import string
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from rewardloop.evaluation.ope.bootstrap import bootstrap_means
from rewardloop.policies.generator import DEFAULT_SYSTEM, GeneratorPolicy, chat_messages
from rewardloop.policies.remote import ChatEndpoint
from rewardloop.store.files import jsonl_objects
from rewardloop.types import answer_text

JUDGES = ("none", "rm", "llm")


class EvalsInputError(ValueError):
    """A question file, agent or judge is unusable; the message names the line, agent or option."""


@dataclass(frozen=True)
class Question:
    """One question: its id, text, reference answer (optional) and retrieved passages (optional)."""

    id: str
    text: str
    reference: str | None = None
    passages: tuple[str, ...] = ()

    def messages(self, system: str = DEFAULT_SYSTEM) -> list[dict[str, str]]:
        """The chat an agent answers (the passages in the system message, as a generator serves them)."""
        return chat_messages(system, self.text, {"passages": list(self.passages)})


def read_questions(path: str | Path) -> list[Question]:
    """The questions of a JSONL file (one object a line: ``question`` or ``text``, optional ``id``,
    ``reference``, ``passages``); an EvalsInputError naming the line and field otherwise."""
    questions = [
        _question(row, n, f"{path} line {n}") for n, row in jsonl_objects(Path(path), EvalsInputError)
    ]
    if not questions:
        raise EvalsInputError(f"{path}: no questions")
    ids = Counter(q.id for q in questions)
    if (twice := [i for i, c in ids.items() if c > 1]) != []:
        raise EvalsInputError(f"{path}: the id {twice[0]!r} is given twice")
    return questions


def _question(row: dict[str, Any], n: int, where: str) -> Question:
    text = row.get("question", row.get("text"))
    if not isinstance(text, str) or not text.strip():
        raise EvalsInputError(f"{where}: question: a non-empty string is required")
    reference = row.get("reference")
    if reference is not None and not isinstance(reference, str):
        raise EvalsInputError(f"{where}: reference: must be a string")
    passages = row.get("passages", [])
    if not isinstance(passages, list) or not all(isinstance(p, str) for p in passages):
        raise EvalsInputError(f"{where}: passages: must be a list of strings")
    return Question(str(row.get("id", f"q{n}")), text, reference, tuple(passages))


# ------------------------------------------------------------------------------------------ agents


class Agent(Protocol):
    name: str

    def answer(self, question: Question) -> str: ...


@dataclass
class GeneratorAgent:
    """A generator policy answering with the decoding saved with it (seeded per question)."""

    name: str
    policy: GeneratorPolicy
    seed: int = 0

    def answer(self, question: Question) -> str:
        context = {"text": question.text, "metadata": {"passages": list(question.passages)}}
        return answer_text(self.policy.decide(context, np.random.default_rng(self.seed)))


@dataclass
class EndpointAgent:
    """A chat model behind an OpenAI-compatible endpoint."""

    name: str
    endpoint: ChatEndpoint

    def answer(self, question: Question) -> str:
        return self.endpoint.complete(question.messages()).text


# ------------------------------------------------------------------------------------------ judges


def _tokens(text: str) -> list[str]:
    """Lower-cased words without punctuation or English articles (SQuAD's normalisation)."""
    table = str.maketrans("", "", string.punctuation)
    return [w for w in text.lower().translate(table).split() if w not in ("a", "an", "the")]


def token_f1(answer: str, reference: str) -> float:
    """SQuAD's token F1 of ``answer`` against ``reference``.

    >>> token_f1("The shop opens at nine.", "It opens at nine")  # common: opens, at, nine
    0.75
    """
    a, r = _tokens(answer), _tokens(reference)
    if not a or not r:
        return float(a == r)
    common = sum((Counter(a) & Counter(r)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(a), common / len(r)
    return 2 * precision * recall / (precision + recall)


class Judge(Protocol):
    name: str

    def score(self, question: Question, answer: str) -> float: ...


@dataclass
class ReferenceJudge:
    """``--judge none``: the token F1 against the reference answer."""

    name: str = "none"

    @staticmethod
    def check(questions: Sequence[Question]) -> None:
        """Refuse questions without a reference (before any agent is asked)."""
        for q in questions:
            if q.reference is None:
                raise EvalsInputError(f"question {q.id!r}: --judge none needs a reference answer")

    def score(self, question: Question, answer: str) -> float:
        self.check([question])
        assert question.reference is not None
        return token_f1(answer, question.reference)


@dataclass
class RewardModelJudge:
    """``--judge rm``: a reward model's score (``model.score(prompt, candidates)``) of the answer."""

    model: Any
    name: str = "rm"

    def score(self, question: Question, answer: str) -> float:
        return float(self.model.score(question.text, [answer])[0])


JUDGE_PROMPT = (
    "You grade answers. Rate how well the answer answers the question, from 1 (useless or wrong) to 10 "
    "(correct, complete and brief). Reply with the number only."
)


@dataclass
class LLMJudge:
    """``--judge llm``: a chat model's rating from 1 to 10 (NaN when its reply names none)."""

    endpoint: ChatEndpoint
    name: str = "llm"

    def score(self, question: Question, answer: str) -> float:
        parts = [f"Question: {question.text}"]
        if question.reference is not None:
            parts.append(f"Reference answer: {question.reference}")
        parts.append(f"Answer: {answer}")
        reply = self.endpoint.complete(
            [{"role": "system", "content": JUDGE_PROMPT}, {"role": "user", "content": "\n".join(parts)}]
        ).text
        return parse_rating(reply)


def parse_rating(reply: str) -> float:
    """The first whole number of ``reply`` when it is in 1..10, else NaN.

    >>> parse_rating("Score: 7/10"), parse_rating("eleven"), parse_rating("12")
    (7.0, nan, nan)
    """
    found = re.search(r"\d+", reply)
    value = int(found.group()) if found else 0
    return float(value) if 1 <= value <= 10 else float("nan")


# ------------------------------------------------------------------------------------------ report


@dataclass(frozen=True)
class AgentSummary:
    agent: str
    mean: float
    lower: float
    upper: float
    n: int


@dataclass(frozen=True)
class PairwiseResult:
    """``a`` against ``b`` per question: wins, ties, losses; ``win_rate`` = (wins + ties / 2) / n."""

    a: str
    b: str
    wins: int
    ties: int
    losses: int

    @property
    def win_rate(self) -> float:
        n = self.wins + self.ties + self.losses
        return (self.wins + self.ties / 2) / n if n else float("nan")


@dataclass
class EvalsReport:
    """The answers, the scores (n_agents, n_questions; NaN: unscored) and the comparisons."""

    judge: str
    agents: list[str]
    questions: list[Question]
    answers: list[list[str]]
    scores: npt.NDArray[np.float64]
    summaries: list[AgentSummary]
    pairwise: list[PairwiseResult]
    alpha: float
    n_unscored: int
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        rows = [
            {
                "id": q.id,
                "question": q.text,
                "reference": q.reference,
                **{f"answer/{a}": self.answers[k][i] for k, a in enumerate(self.agents)},
                **{f"score/{a}": _num(self.scores[k, i]) for k, a in enumerate(self.agents)},
            }
            for i, q in enumerate(self.questions)
        ]
        return {
            "judge": self.judge,
            "confidence": 1 - self.alpha,
            "n_questions": len(self.questions),
            "n_unscored": self.n_unscored,
            "agents": [vars(s) for s in self.summaries],
            "pairwise": [{**vars(p), "win_rate": p.win_rate} for p in self.pairwise],
            "questions": rows,
            **self.extra,
        }

    def to_html(self) -> str:
        """A page of the report; every answer, question and name is escaped."""
        return _html(self)


def _num(x: float) -> float | None:
    return None if np.isnan(x) else float(x)


def run_evals(
    agents: Sequence[Agent],
    questions: Sequence[Question],
    judge: Judge,
    *,
    n_bootstrap: int = 2000,
    alpha: float = 0.05,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> EvalsReport:
    """Every agent answers every question; ``judge`` scores each answer; the agents are compared."""
    names = [a.name for a in agents]
    if len(set(names)) != len(names) or not names:
        raise EvalsInputError(f"--agents: name each agent once (got {', '.join(names) or 'none'})")
    if isinstance(judge, ReferenceJudge):
        judge.check(questions)
    answers = [[""] * len(questions) for _ in agents]
    scores = np.full((len(agents), len(questions)), np.nan)
    total, done = len(agents) * len(questions), 0
    for k, agent in enumerate(agents):
        for i, q in enumerate(questions):
            answers[k][i] = agent.answer(q)
            scores[k, i] = judge.score(q, answers[k][i])
            done += 1
            if progress is not None:
                progress(done, total)
    return compare(names, list(questions), answers, scores, judge.name, n_bootstrap, alpha, seed)


def compare(
    names: list[str],
    questions: list[Question],
    answers: list[list[str]],
    scores: npt.NDArray[np.float64],
    judge: str,
    n_bootstrap: int = 2000,
    alpha: float = 0.05,
    seed: int = 0,
) -> EvalsReport:
    """The report of ``scores`` (n_agents, n_questions): means, bootstrap intervals, pairwise wins."""
    scored = ~np.isnan(scores).any(axis=0)  # (n_questions,): scored for every agent
    s = scores[:, scored]  # (n_agents, n_scored)
    if s.shape[1] == 0:
        raise EvalsInputError("judge: no question was scored for every agent")
    means = bootstrap_means(s, n_bootstrap, seed)  # (n_agents, B), the same question draws
    lo, hi = np.percentile(means, [100 * alpha / 2, 100 * (1 - alpha / 2)], axis=1)
    summaries = [
        AgentSummary(a, float(s[k].mean()), float(lo[k]), float(hi[k]), int(s.shape[1]))
        for k, a in enumerate(names)
    ]
    pairwise = [
        PairwiseResult(
            names[j],
            names[k],
            int((s[j] > s[k]).sum()),
            int((s[j] == s[k]).sum()),
            int((s[j] < s[k]).sum()),
        )
        for j in range(len(names))
        for k in range(j + 1, len(names))
    ]
    unscored = int((~scored).sum())
    return EvalsReport(judge, names, questions, answers, scores, summaries, pairwise, alpha, unscored)


def _html(report: EvalsReport) -> str:
    e = html.escape
    pct = f"{100 * (1 - report.alpha):g}%"
    agents = "".join(
        f"<tr><td>{e(s.agent)}</td><td>{s.mean:.3f}</td><td>[{s.lower:.3f}, {s.upper:.3f}]</td>"
        f"<td>{s.n}</td></tr>"
        for s in report.summaries
    )
    pairs = "".join(
        f"<tr><td>{e(p.a)}</td><td>{e(p.b)}</td><td>{p.wins}</td><td>{p.ties}</td><td>{p.losses}</td>"
        f"<td>{p.win_rate:.3f}</td></tr>"
        for p in report.pairwise
    )
    heads = "".join(f"<th>{e(a)}</th>" for a in report.agents)
    rows = "".join(
        f"<tr><td>{e(q.id)}</td><td>{e(q.text)}</td><td>{e(q.reference or '')}</td>"
        + "".join(
            f"<td>{e(report.answers[k][i])}<br><small>{_cell(report.scores[k, i])}</small></td>"
            for k in range(len(report.agents))
        )
        + "</tr>"
        for i, q in enumerate(report.questions)
    )
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Judged evaluation ({e(report.judge)})</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse;margin-bottom:2em}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}}</style></head><body>
<h1>Judged evaluation: judge {e(report.judge)}</h1>
<p>{len(report.questions)} questions, {report.n_unscored} left out (unscored for some agent).</p>
<h2>Mean score ({pct} bootstrap interval)</h2>
<table><tr><th>agent</th><th>mean</th><th>interval</th><th>n</th></tr>{agents}</table>
<h2>Pairwise, per question</h2>
<table><tr><th>a</th><th>b</th><th>a wins</th><th>ties</th><th>b wins</th><th>a's win rate</th></tr>
{pairs}</table>
<h2>Answers</h2>
<table><tr><th>id</th><th>question</th><th>reference</th>{heads}</tr>{rows}</table>
</body></html>
"""


def _cell(score: float) -> str:
    return "unscored" if np.isnan(score) else f"score {score:.3f}"


def write_report(report: EvalsReport, out: str | Path) -> tuple[Path, Path]:
    """``report.json`` and ``report.html`` in the folder ``out``."""
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "report.json").write_text(json.dumps(report.to_dict(), indent=2, allow_nan=False))
    (folder / "report.html").write_text(report.to_html(), encoding="utf-8")
    return folder / "report.json", folder / "report.html"


__all__ = [
    "JUDGES",
    "Agent",
    "AgentSummary",
    "EndpointAgent",
    "EvalsInputError",
    "EvalsReport",
    "GeneratorAgent",
    "Judge",
    "LLMJudge",
    "PairwiseResult",
    "Question",
    "ReferenceJudge",
    "RewardModelJudge",
    "compare",
    "parse_rating",
    "read_questions",
    "run_evals",
    "token_f1",
    "write_report",
]
