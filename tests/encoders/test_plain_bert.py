"""The plain-torch MiniLM (encoders/bert.py) that encodes until ``encoder.model`` is asked for: the same
vectors as transformers' BertModel; weights changed on ``encoder.model`` are what encodes from then
on; a process that only encodes never imports transformers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from rewardloop.encoders import MiniLMEncoder
from rewardloop.encoders.bert import PlainMiniLM, PlainTokenizer
from rewardloop.encoders.minilm import _model_path

TEXTS = [
    "turn on the kitchen lights",
    "what's the weather like in Paris tomorrow",
    "",
    "Ünïcødé — 東京 😀 café",
    "word " * 400,  # truncated at 256 tokens
    "hi",
]


@pytest.fixture(scope="module")
def encoder() -> MiniLMEncoder:
    return MiniLMEncoder(cache_size=0)


def test_plain_forward_gives_the_transformers_vectors(encoder: MiniLMEncoder) -> None:
    plain = MiniLMEncoder(cache_size=0).encode(TEXTS)
    reference = MiniLMEncoder(cache_size=0)
    reference.model  # noqa: B018 - asking for the model switches encoding to transformers
    assert reference._model is not None
    expected = reference.encode(TEXTS)
    assert np.abs(plain - expected).max() < 1e-5
    assert np.allclose(np.linalg.norm(plain, axis=1), 1.0, atol=1e-6)


def test_plain_tokenizer_matches_the_transformers_one(encoder: MiniLMEncoder) -> None:
    ids, mask = PlainTokenizer(_model_path(), 256)(TEXTS)
    batch = encoder.tokenizer(TEXTS, padding=True, truncation=True, max_length=256, return_tensors="pt")
    assert ids.shape == (len(TEXTS), 256)  # padded to the longest, which was cut at 256
    assert torch.equal(ids, batch["input_ids"]) and torch.equal(mask, batch["attention_mask"])


def test_weights_changed_on_the_model_are_what_encodes() -> None:
    """A fine-tuned encoder loads its weights into ``encoder.model``: encoding must use them."""
    enc = MiniLMEncoder(cache_size=0)
    before = enc.encode(["turn on the lights"])
    with torch.no_grad():
        enc.model.encoder.layer[5].output.dense.weight.mul_(0.5)
    after = enc.encode(["turn on the lights"])
    assert float(before[0] @ after[0]) < 0.999
    enc.model = MiniLMEncoder(cache_size=0).model  # a replaced model (LoRA merges) is used as well
    assert np.abs(enc.encode(["turn on the lights"]) - before).max() < 1e-5


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"model_type": "llama"}, "not a BERT model"),
        ({"position_embedding_type": "relative_key"}, "not a BERT model"),
        ({"hidden_act": "relu"}, "only exact gelu"),
    ],
)
def test_other_architectures_are_refused(tmp_path: Path, change: dict[str, str], message: str) -> None:
    config = json.loads((Path(_model_path()) / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, **change}))
    with pytest.raises(ValueError, match=message):
        PlainMiniLM(tmp_path)


@pytest.mark.slow
def test_encoding_alone_does_not_import_transformers() -> None:
    code = (
        "import sys; from rewardloop.encoders import MiniLMEncoder; "
        "MiniLMEncoder().encode(['hello']); print('transformers' in sys.modules)"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "False"
