"""Distillation: a teacher behind an OpenAI-compatible chat endpoint re-answers the logged prompts, and
the student generator learns the teacher's answers by SFT through the one training path.

The prompts are the logged decisions' (classifier and generator decisions with text) as they were
served — passages, conversation and, for a classifier decision, the classify instruction naming its
labels — under the student's own system message for generator decisions, so that the teacher sees
exactly the prompt the student is trained on. A prompt logged many times is asked once. Training is
:func:`rewardloop.loop.training.train_plan` with the ``sft`` learner: saved, and recorded as a
TrainingRun whose config says ``distil`` (teacher URL and model, never the key) and whose metrics
count the prompts it could not use (``skipped/<reason>``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from rewardloop.learners.sft import ChatExamples, columns, prompt_of, prompted_decisions
from rewardloop.loop.training import (
    TrainingError,
    TrainingOutcome,
    TrainingPlan,
    data_window,
    plan_run,
    start_policy,
    train_plan,
)
from rewardloop.policies.generator import GeneratorInputError, GeneratorPolicy
from rewardloop.policies.remote import ChatEndpoint, EndpointError, EndpointUnavailable
from rewardloop.store import Store, read_decisions
from rewardloop.types import DecisionBatch, TimeWindow

#: Skip reasons of :func:`teacher_examples` (``skipped/<reason>`` in the TrainingRun).
REPEATED = "prompt asked already (a repeated decision)"
EMPTY = "teacher gave an empty answer"
FAILED = "teacher request failed"
BAD_CONTEXT = "decision context is not a valid prompt"


@dataclass(frozen=True)
class DistilResult:
    """The run (its outcome) and the examples the teacher gave."""

    outcome: TrainingOutcome
    examples: ChatExamples
    prompts_from: str


def teacher_examples(
    batch: DecisionBatch,
    teacher: ChatEndpoint,
    system: str,
    progress: Callable[[int, int], None] | None = None,
) -> ChatExamples:
    """The teacher's answer to each distinct prompt of ``batch``, as SFT examples.

    ``system`` is the student's system message (the prompt of a generator decision is served under
    it). Raises EndpointError when the teacher refuses the requests as configured (a bad key, model
    or URL); a request that fails otherwise, an empty answer, a repeated prompt and a context that is
    not a valid prompt are skipped and counted.
    """
    skipped: dict[str, int] = {}
    rows: list[tuple[Any, ...]] = []
    seen: set[str] = set()
    prompted = list(prompted_decisions(batch, skipped))
    for k, (d, _) in enumerate(prompted):
        sys_msg, text, meta = prompt_of(d)
        probe = ChatExamples([sys_msg], [text], [meta], [""], [1.0], [d.id])
        try:
            messages = probe.messages(0, system)
        except GeneratorInputError:
            reason: str | None = BAD_CONTEXT
        else:
            reason = _ask(teacher, messages, seen, rows, (sys_msg, text, meta, d.id))
        if reason is not None:
            skipped[reason] = skipped.get(reason, 0) + 1
        if progress is not None:
            progress(k + 1, len(prompted))
    systems, texts, metas, answers, weights, ids = columns(rows, 6)
    return ChatExamples(systems, texts, metas, answers, weights, ids, skipped)


def _ask(
    teacher: ChatEndpoint,
    messages: list[dict[str, str]],
    seen: set[str],
    rows: list[tuple[Any, ...]],
    prompt: tuple[Any, ...],
) -> str | None:
    """Ask ``teacher`` for one prompt and append its example to ``rows``; the skip reason, or None."""
    key = json.dumps(messages, sort_keys=True)
    if key in seen:
        return REPEATED
    seen.add(key)
    try:
        answer = teacher.complete(messages).text
    except EndpointUnavailable:
        return FAILED
    if not answer:
        return EMPTY
    sys_msg, text, meta, decision_id = prompt
    rows.append((sys_msg, text, meta, answer, 1.0, decision_id))
    return None


def logged_prompts(store: Store, policy: str, window: TimeWindow, newest: int | None) -> DecisionBatch:
    """``policy``'s logged decisions in the window (any kind; the prompted ones are used), the newest
    ``newest`` of them when set."""
    batch = read_decisions(store, policy=policy, since=window.since, until=window.until)
    return batch if newest is None or len(batch) <= newest else DecisionBatch(list(batch.decisions)[-newest:])


def distil(
    store: Store,
    plan: TrainingPlan,
    teacher: ChatEndpoint,
    prompts_from: str | None = None,
    *,
    training_dump: Mapping[str, Any] | None = None,
    progress: Any = None,
    asking: Callable[[int, int], None] | None = None,
) -> DistilResult:
    """Re-answer ``prompts_from``'s logged prompts (default: the student's own) with ``teacher`` and
    train the student (``plan.policy``, a generator, from ``training.init_from``) on the answers with
    SFT (``plan.learner_cls`` must be the ``sft`` learner); saved and recorded as a TrainingRun.

    Raises TrainingError naming the key or the count when it cannot run (the teacher refusing the
    requests, no prompt, too few answers for ``training.min_feedback``).
    """
    if plan.policy.kind != "generator":
        raise TrainingError(
            f"--policy: {plan.policy.name!r} is a {plan.policy.kind}; the student is a generator"
        )
    if plan.learner != "sft":
        raise TrainingError(f"training.learner: distillation trains with sft, not {plan.learner!r}")
    student = start_policy(plan)
    assert isinstance(student, GeneratorPolicy)  # a generator plan starts from a saved generator
    source = prompts_from or plan.policy.name
    batch = logged_prompts(store, source, plan.window, plan.max_episodes)
    try:
        data = teacher_examples(batch, teacher, student.system, asking)
    except EndpointError as err:
        raise TrainingError(f"teacher: {err}") from None
    if len(data) == 0:
        raise TrainingError(
            f"data: no teacher answers for {source!r}'s {len(batch)} decisions in the window "
            f"(skipped: {dict(data.skipped) or 'none'}); log decisions with text, or check the teacher"
        )
    if len(data) < plan.min_feedback:
        raise TrainingError(
            f"training.min_feedback: {len(data)} teacher answers, fewer than the {plan.min_feedback} required"
        )
    window = data_window(plan, batch)
    recorded = {"teacher_url": teacher.base_url, "teacher_model": teacher.model, "prompts_from": source}
    dump = training_dump or {}
    run = plan_run(plan, data, window, dump, {"distil": recorded})
    outcome = train_plan(store, plan, data, student, window, dump, progress, run=run)
    return DistilResult(outcome, data, source)


__all__ = ["DistilResult", "distil", "logged_prompts", "teacher_examples"]
