"""Distillation: a tiny generator served by rewardloop's own ``/v1/chat/completions`` is the teacher;
its answers to the logged prompts become the student's SFT examples (no remote API is called)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from fastapi.testclient import TestClient
from typer.testing import CliRunner

pytest.importorskip("trl")
pytest.importorskip("gguf")

from tests.service._generator_app import generator_app, served_over_http

from rewardloop.cli.main import app as cli
from rewardloop.loop.distil import BAD_CONTEXT, EMPTY, REPEATED, teacher_examples
from rewardloop.loop.serving import load_policy
from rewardloop.policies.generator import Generation, GeneratorPolicy, classifier_system
from rewardloop.policies.remote import ChatEndpoint, EndpointError
from rewardloop.store import Store, read_decisions, read_runs, write_decisions
from rewardloop.types import Decision, DecisionBatch

LABELS = ("HassTurnOn", "HassTurnOff")


def _decision(did: str, text: str | None, kind: str = "generator", **metadata: object) -> Decision:
    actions = LABELS if kind == "classifier" else ("an answer",)
    return Decision(
        policy="student",
        policy_version="1",
        kind=kind,  # type: ignore[arg-type]
        actions=actions,
        action=actions[0],
        action_dist=(0.5, 0.5) if kind == "classifier" else (1.0,),
        pscore=0.5 if kind == "classifier" else 1.0,
        text=text,
        id=did,
        metadata=metadata,
    )


def _logged() -> list[Decision]:
    return [
        _decision("g1", "Where is Paris?", passages=["Paris is in France."]),
        _decision("g2", "Where is Paris?", passages=["Paris is in France."]),  # the same prompt: asked once
        _decision("c1", "turn on the fan", kind="classifier"),  # asked with the classify instruction
        _decision("g3", "Hello", passages="not a list"),  # not a valid prompt: counted
        _decision("g4", None, features=[1.0]),  # no text, no feedback: not a prompt
    ]


class EchoTeacher(GeneratorPolicy):
    """A tiny random generator whose answer is the end of the prompt it was given: text that depends on
    the prompt (a random model's greedy tokens mostly decode to nothing, and an empty answer is
    skipped), through the real serving, logging and chat endpoint."""

    def generate(self, prompts, rng=None, max_new_tokens=None):  # type: ignore[no-untyped-def]
        answers = super().generate(prompts, rng, max_new_tokens)
        return [
            Generation(f"echo: {p.split()[-2]}", a.sequence_logp, a.sampling_logp, a.prompt_tokens, 3)
            for p, a in zip(prompts, answers, strict=True)
        ]


@pytest.fixture(scope="module")
def teacher() -> GeneratorPolicy:
    tiny = GeneratorPolicy.random(seed=3, name="chat", version="1", max_new_tokens=5)
    return EchoTeacher(tiny.model, tiny.tokenizer, **tiny.options())


def test_the_teacher_answers_each_distinct_prompt_as_served(
    store: Store, teacher: GeneratorPolicy, monkeypatch
) -> None:
    app, key = generator_app(store, teacher)
    monkeypatch.setenv("TEACHER_KEY", key)
    with TestClient(app) as http:
        endpoint = ChatEndpoint("http://testserver/v1", "chat", "TEACHER_KEY", client=http)
        data = teacher_examples(DecisionBatch(_logged()), endpoint, "You are the student.")
    assert data.decision_ids == ["g1", "c1"]
    assert data.skipped == {REPEATED: 1, BAD_CONTEXT: 1}
    assert data.systems == [None, classifier_system(LABELS)]
    assert data.metadata[0] == {"passages": ["Paris is in France."]}
    # Exactly what the teacher answers (greedy) to the prompt the student is trained on.
    served = [
        {"text": "x", "metadata": {"messages": data.messages(i, "You are the student.")}} for i in (0, 1)
    ]
    expected = [teacher.decide(context).action for context in served]
    assert data.completions == expected
    asked = list(read_decisions(store, policy="chat"))
    assert len(asked) == 2 and {d.metadata["api"] for d in asked} == {"openai"}  # logged by the teacher


def test_empty_teacher_answers_are_counted_not_learned(store: Store, monkeypatch) -> None:
    # Regression: the endpoint answered "" as its logged placeholder "<empty>", which became the
    # student's target text; now the answer is "" and distillation skips it.
    silent = GeneratorPolicy.random(seed=3, name="chat", version="1", max_new_tokens=5)
    app, key = generator_app(store, silent)
    monkeypatch.setenv("TEACHER_KEY", key)
    with TestClient(app) as http:
        endpoint = ChatEndpoint("http://testserver/v1", "chat", "TEACHER_KEY", client=http)
        data = teacher_examples(DecisionBatch(_logged()), endpoint, "You are the student.")
    assert data.decision_ids == [] and data.completions == []
    assert data.skipped == {REPEATED: 1, BAD_CONTEXT: 1, EMPTY: 2}


def test_a_teacher_refusing_the_key_stops_at_once(store: Store, teacher: GeneratorPolicy) -> None:
    app, _ = generator_app(store, teacher)
    with TestClient(app) as http:
        endpoint = ChatEndpoint("http://testserver/v1", "chat", client=http)  # no key
        with pytest.raises(EndpointError, match="HTTP 401"):
            teacher_examples(DecisionBatch(_logged()), endpoint, "S")
    assert list(read_decisions(store, policy="chat")) == []


def _project(tmp_path: Path, start: Path) -> Path:
    cfg = {
        "store": {"url": f"sqlite:///{tmp_path / 'student.db'}"},
        "policies": [{"name": "student", "kind": "generator"}],
        "training": {
            "output_dir": str(tmp_path / "artifacts"),
            "init_from": str(start),
            "batch_size": 2,
            "options": {"max_steps": 2, "lr": 1e-2},
        },
    }
    path = tmp_path / "rewardloop.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_rewardloop_distil_trains_the_student_on_the_teachers_answers_over_http(
    tmp_path: Path, teacher: GeneratorPolicy, monkeypatch
) -> None:
    student = GeneratorPolicy.random(seed=0, name="student", version="1", max_new_tokens=4)
    student.save(tmp_path / "start")
    path = _project(tmp_path, tmp_path / "start")
    logged = Store.open(f"sqlite:///{tmp_path / 'student.db'}")
    write_decisions(logged, _logged())
    teacher_store = Store.open(f"sqlite:///{tmp_path / 'teacher.db'}")
    app, key = generator_app(teacher_store, teacher)
    monkeypatch.setenv("TEACHER_KEY", key)
    with served_over_http(app) as url:
        result = CliRunner().invoke(
            cli,
            [
                *("distil", "-c", str(path), "--teacher-url", url, "--teacher-model", "chat"),
                *("--key-env", "TEACHER_KEY", "--policy", "student"),
            ],
        )
    assert result.exit_code == 0, result.output
    assert "2 teacher answers" in result.output
    (run,) = read_runs(logged)
    assert (run.learner, run.status, run.n_samples) == ("sft", "succeeded", 2)
    assert run.config["distil"] == {"teacher_url": url, "teacher_model": "chat", "prompts_from": "student"}
    assert key not in str(run.config)
    assert run.metrics[f"skipped/{REPEATED}"] == 1 and run.metrics[f"skipped/{BAD_CONTEXT}"] == 1
    fitted = load_policy("generator", run.artifact_path)
    start = student.model.state_dict()
    assert any(not torch.equal(v, start[k]) for k, v in fitted.model.state_dict().items() if "q_proj" in k)
    assert len(list(read_decisions(teacher_store, policy="chat"))) == 2
    logged.close()
    teacher_store.close()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--teacher-url", "teacher:8000"], "--teacher-url: must start with http"),
        (
            ["--teacher-url", "http://127.0.0.1:9/v1", "--key-env", "REWARDLOOP_NO_KEY"],
            "REWARDLOOP_NO_KEY is not set",
        ),
        (
            ["--teacher-url", "http://127.0.0.1:9/v1", "--set", "training.init_from=nowhere"],
            "training.init_from",
        ),
    ],
)
def test_bad_distil_options_are_named(tmp_path: Path, args: list[str], message: str) -> None:
    path = _project(tmp_path, tmp_path / "missing")
    result = CliRunner().invoke(cli, ["distil", "-c", str(path), "--policy", "student", *args])
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split())
