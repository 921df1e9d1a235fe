"""The generator policy on a tiny random model of the SmolLM2 architecture (real tokenizer); the real
SmolLM2-135M runs in the tests marked slow."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

pytest.importorskip("gguf")
from rewardloop.policies.contract import PolicyInputError
from rewardloop.policies.generator import (
    OTHER_ANSWERS,
    GeneratorInputError,
    GeneratorPolicy,
    Int8Linear,
    chat_messages,
    quantize_model,
)

LABELS = ["HassTurnOn", "HassTurnOff", "HassGetWeather"]


@pytest.fixture(scope="module")
def policy() -> GeneratorPolicy:
    return GeneratorPolicy.random(seed=0, max_new_tokens=8)


def _teacher_forced_logp(policy: GeneratorPolicy, prompt: str, answer_ids: list[int]) -> float:
    """Σ log p(answer token) by one forward pass over prompt + answer (the reference computation)."""
    ids = policy.tokenizer(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"]
    full = torch.cat([ids, torch.tensor([answer_ids])], dim=1)
    with torch.no_grad():
        logp = policy.model(full).logits[0].log_softmax(-1)
    n = ids.shape[1]
    return float(sum(logp[n - 1 + t, tok] for t, tok in enumerate(answer_ids)))


def test_greedy_decision_has_propensity_one_and_logs_the_model_logp(policy: GeneratorPolicy) -> None:
    d = policy.decide("Turn on the kitchen light", np.random.default_rng(0))
    assert d.kind == "generator" and d.pscore == 1.0 and d.actions == (d.action,)
    assert d.text == "Turn on the kitchen light"
    meta = d.metadata
    assert meta["completion_tokens"] >= 1 and meta["prompt_tokens"] > 5 and meta["decode"] == "greedy"
    assert meta["sampling_logp"] == 0.0 and meta["sequence_logp"] < 0
    assert d.latency_ms is not None and d.latency_ms > 0


def test_sampled_pscore_is_the_product_of_token_probabilities(policy: GeneratorPolicy) -> None:
    sampler = GeneratorPolicy(
        policy.model, policy.tokenizer, mode="sample", temperature=1.0, max_new_tokens=6
    )
    messages = chat_messages(sampler.system, "Hello there", {})
    gen = sampler.generate([sampler.prompt(messages)], np.random.default_rng(3))[0]
    ids = sampler.tokenizer(gen.text, add_special_tokens=False)["input_ids"]
    # At temperature 1 with no top-k/top-p the sampling distribution is the model's.
    assert gen.sampling_logp == pytest.approx(gen.sequence_logp, abs=1e-4)
    if gen.completion_tokens == len(ids):  # no end token inside the budget: decode(ids) round-trips
        assert gen.sequence_logp == pytest.approx(
            _teacher_forced_logp(sampler, sampler.prompt(messages), ids), abs=1e-3
        )
    d = sampler.decide("Hello there", np.random.default_rng(3))
    assert d.actions == (d.action, OTHER_ANSWERS)
    assert d.pscore == pytest.approx(math.exp(d.metadata["sampling_logp"]))
    assert sum(d.action_dist) == pytest.approx(1.0)


def test_same_seed_same_answer_and_temperature_changes_the_sampling_logp(policy: GeneratorPolicy) -> None:
    hot = GeneratorPolicy(
        policy.model, policy.tokenizer, mode="sample", temperature=2.0, top_k=50, max_new_tokens=6
    )
    a = hot.decide("Lock the door", np.random.default_rng(7))
    b = hot.decide("Lock the door", np.random.default_rng(7))
    assert (a.action, a.pscore) == (b.action, b.pscore)
    assert a.metadata["sampling_logp"] != pytest.approx(a.metadata["sequence_logp"])


def test_passages_and_messages_reach_the_prompt(policy: GeneratorPolicy) -> None:
    messages = chat_messages("SYS", "q?", {"passages": ["Paris is in France."]})
    assert messages[0] == {"role": "system", "content": "SYS\nUse these passages:\n[1] Paris is in France."}
    conv = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": "bye"},
    ]
    rendered = policy.prompt(chat_messages("SYS", None, {"messages": conv}))
    assert rendered.startswith("<|im_start|>system\nSYS<|im_end|>") and rendered.endswith(
        "<|im_start|>assistant\n"
    )
    d = policy.decide(
        {"text": "q?", "metadata": {"passages": ["p1"], "user_id": "u1"}}, np.random.default_rng(0)
    )
    assert d.metadata["passages"] == ["p1"] and d.metadata["user_id"] == "u1"


@pytest.mark.parametrize(
    ("context", "field"),
    [
        ("", "text"),
        ({"text": 3}, "text"),
        ({"text": "x", "metadata": {"passages": "not a list"}}, "metadata.passages"),
        ({"metadata": {"messages": [{"role": "robot", "content": "x"}]}}, "metadata.messages[0]"),
        ({"metadata": {"messages": [{"role": "user", "content": 1}]}}, "metadata.messages[0].content"),
        ({"metadata": {"messages": []}}, "metadata.messages"),
    ],
)
def test_bad_contexts_name_the_field(policy: GeneratorPolicy, context: object, field: str) -> None:
    with pytest.raises(GeneratorInputError) as err:
        policy.decide(context, np.random.default_rng(0))
    assert err.value.field == field


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"mode": "beam"}, "mode"),
        ({"temperature": 0.0}, "temperature"),
        ({"top_p": 0.0}, "top_k/top_p"),
        ({"max_new_tokens": 0}, "max_new_tokens"),
    ],
)
def test_bad_options_name_the_field(policy: GeneratorPolicy, options: dict, field: str) -> None:
    with pytest.raises(GeneratorInputError) as err:
        GeneratorPolicy(policy.model, policy.tokenizer, **options)
    assert err.value.field == field


def test_sampling_needs_an_rng(policy: GeneratorPolicy) -> None:
    sampler = GeneratorPolicy(policy.model, policy.tokenizer, mode="sample")
    with pytest.raises(GeneratorInputError, match="rng"):
        sampler.decide("hi", None)


def test_label_scores_equal_teacher_forced_log_likelihoods(policy: GeneratorPolicy) -> None:
    texts = ["turn on the fan", "what is the weather"]
    scores = policy.score_labels(texts, LABELS)
    assert scores.shape == (2, 3)
    eos = policy.tokenizer.eos_token_id
    for i, text in enumerate(texts):
        for k, label in enumerate(LABELS):
            ids = policy.tokenizer(label, add_special_tokens=False)["input_ids"] + [eos]
            expected = _teacher_forced_logp(policy, policy.classify_prompt(text, LABELS), ids)
            assert scores[i, k] == pytest.approx(expected, abs=1e-3)
    assert policy.predict_scored(texts, LABELS) == [LABELS[int(k)] for k in scores.argmax(1)]


def test_predict_by_decoding_returns_labels_or_empty(policy: GeneratorPolicy) -> None:
    out = policy.predict(["turn on the fan", "lights off"], LABELS, batch_size=2)
    assert len(out) == 2 and all(o in [*LABELS, ""] for o in out)


def test_int8_weight_layer_matches_fp32_within_quantisation_error() -> None:
    torch.manual_seed(0)
    linear = torch.nn.Linear(64, 32)
    q = Int8Linear(linear)
    x = torch.randn(3, 5, 64)
    assert q.weight_int8.dtype == torch.int8 and q.scales.shape == (32,)
    # Each weight is off by at most half a step (scale / 2): |Δy| ≤ Σ|x| · scale / 2.
    bound = x.abs().sum(-1, keepdim=True) * q.scales / 2
    assert ((q(x) - linear(x)).abs() <= bound + 1e-5).all()


@pytest.mark.parametrize("method", ["int8-weight", "int8-dynamic"])
def test_quantized_policy_keeps_lm_head_fp32_and_answers(policy: GeneratorPolicy, method: str) -> None:
    q = policy.quantized(method, version="int8")
    assert isinstance(q.model.lm_head, torch.nn.Linear) and type(q.model.lm_head) is torch.nn.Linear
    assert not isinstance(policy.model.model.layers[0].mlp.up_proj, Int8Linear)  # the original is untouched
    d = q.decide("turn on the fan", np.random.default_rng(0))
    assert d.metadata["quantization"] == method and d.policy_version == "int8"
    with pytest.raises(GeneratorInputError, match="already"):
        q.quantized()
    with pytest.raises(PolicyInputError, match="quantization"):
        quantize_model(policy.model, "int4")  # type: ignore[arg-type]


def test_save_load_round_trip_fp32_and_int8(policy: GeneratorPolicy, tmp_path) -> None:
    texts = ["turn on the fan"]
    for p in (policy, policy.quantized("int8-weight")):
        folder = p.save(tmp_path / (p.quantization or "fp32"))
        back = GeneratorPolicy.load(folder)
        assert back.options() == p.options()
        np.testing.assert_allclose(back.score_labels(texts, LABELS), p.score_labels(texts, LABELS), atol=1e-4)
    assert not list(tmp_path.rglob("*.bin")) and not list(tmp_path.rglob("*.pt"))
    with pytest.raises(FileNotFoundError, match=r"no policy\.json"):
        GeneratorPolicy.load(tmp_path / "missing")


def test_int8_dynamic_round_trip_is_exact_and_stores_int8(policy: GeneratorPolicy, tmp_path) -> None:
    """A dynamic int8 policy saves its own int8 values and scales (not an fp32 parent) and reloads to the
    same outputs bit for bit, its layers packed again for torch's int8 matmul."""
    from safetensors import safe_open
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

    q = policy.quantized("int8-dynamic", version="int8")
    folder = q.save(tmp_path / "dyn")
    with safe_open(str(folder / "model" / "int8.safetensors"), framework="pt") as f:
        up = f.get_tensor("model.layers.0.mlp.up_proj.weight_int8")
        assert up.dtype == torch.int8 and not any(k.startswith("lm_head.weight_int8") for k in f.keys())  # noqa: SIM118
    back = GeneratorPolicy.load(folder)
    assert back.options() == q.options() and isinstance(back.model.model.layers[0].mlp.up_proj, DynamicLinear)
    assert type(back.model.lm_head) is torch.nn.Linear
    ids = policy.tokenizer("turn on the fan", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        assert torch.equal(back.model(ids).logits, q.model(ids).logits)
    assert back.decide("turn on the fan").action == q.decide("turn on the fan").action
    (folder / "policy.json").write_text((folder / "policy.json").read_text().replace("int8-dynamic", "int4"))
    with pytest.raises(GeneratorInputError, match="unknown quantization 'int4'"):
        GeneratorPolicy.load(folder)


@pytest.mark.slow
def test_real_smollm2_answers_and_scores() -> None:
    real = GeneratorPolicy.smollm2(max_new_tokens=16)
    d = real.decide("What is the capital of France?", np.random.default_rng(0))
    assert "paris" in d.action.lower()
    scores = real.score_labels(["turn on the kitchen light"], ["HassTurnOn", "HassGetWeather"])
    assert scores.shape == (1, 2) and np.isfinite(scores).all()
