"""Encoder backends: the ONNX Runtime paths agree with torch fp32; bad backend names are clean errors."""

from __future__ import annotations

import numpy as np
import pytest

from rewardloop.config import ConfigError, parse_config
from rewardloop.encoders import (
    BACKENDS,
    EncoderBackendError,
    MiniLMEncoder,
    default_backend,
    default_encoder,
    reset_default_encoder,
    set_default_backend,
)
from rewardloop.encoders.onnx import length_groups

TEXTS = [
    "turn on the kitchen lights",
    "what's the weather like in Paris tomorrow",
    "hi",
    "set a timer for ten minutes",
    "The movie was a complete waste of time, the plot made no sense and the acting was wooden.",
    "word " * 400,  # truncated at 256 tokens, far longer than the export's sample
    "turn on the kitchen lights",  # a repeat: served from the cache
]


@pytest.fixture(autouse=True)
def _no_configured_backend(monkeypatch):
    monkeypatch.delenv("REWARDLOOP_ENCODER__BACKEND", raising=False)
    set_default_backend(None)
    yield
    set_default_backend(None)


@pytest.fixture(scope="module")
def torch_vectors():
    return MiniLMEncoder(cache_size=0).encode(TEXTS)


@pytest.fixture(scope="module")
def onnx_cache(tmp_path_factory):
    pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")
    mp = pytest.MonkeyPatch()
    mp.setenv("REWARDLOOP_DATA", str(tmp_path_factory.mktemp("data")))
    yield
    mp.undo()


@pytest.mark.parametrize(("backend", "min_cosine"), [("onnx", 0.99999), ("onnx-int8", 0.95)])
def test_onnx_backends_agree_with_torch(onnx_cache, torch_vectors, backend, min_cosine):
    enc = MiniLMEncoder(backend=backend)
    vectors = enc.encode(TEXTS)
    assert vectors.shape == (len(TEXTS), 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    cosine = (vectors * torch_vectors).sum(1)
    assert cosine.min() >= min_cosine, cosine
    # one text at a time gives the batch's vectors (padding and grouping change nothing) in fp32;
    # int8 quantises activations per tensor, so a text's vector depends on what it is batched with
    enc_single = MiniLMEncoder(backend=backend, cache_size=0)
    single = np.vstack([enc_single.encode([t]) for t in TEXTS[:3]])
    if backend == "onnx":
        np.testing.assert_allclose(single, vectors[:3], atol=1e-5)
    else:
        assert (single * vectors[:3]).sum(1).min() >= min_cosine


def test_export_is_cached_and_named_by_the_weights(onnx_cache):
    first = MiniLMEncoder(backend="onnx")._onnx.path
    again = MiniLMEncoder(backend="onnx")._onnx.path
    assert first == again and first.exists() and first.name.startswith("minilm-")
    assert not list(first.parent.glob("*.tmp.onnx"))  # no half-written file left behind


def test_length_groups_split_where_padding_would_waste():
    lengths = np.array([20, 5, 40, 5, 21, 6])
    groups = [g.tolist() for g in length_groups(lengths, max_waste=0.15)]
    # sorted: 5, 5, 6 | 20, 21 | 40 — adding 20 to the first run would pad 36 tokens to 80
    assert groups == [[1, 3, 5], [0, 4], [2]]
    assert [g.tolist() for g in length_groups(np.array([7]))] == [[0]]
    assert length_groups(np.array([], dtype=np.int64)) == []


@pytest.mark.parametrize("name", ["tf", "ONNX", "onnx_int8", ""])
def test_unknown_backend_names_the_known_ones(name):
    with pytest.raises(EncoderBackendError, match="known: torch, onnx, onnx-int8"):
        MiniLMEncoder(backend=name)
    with pytest.raises(EncoderBackendError, match=r"encoder\.backend: unknown encoder backend"):
        set_default_backend(name)


def test_default_backend_from_config_then_environment(monkeypatch):
    assert default_backend() == "torch" and BACKENDS == ("torch", "onnx", "onnx-int8")
    monkeypatch.setenv("REWARDLOOP_ENCODER__BACKEND", "onnx")
    assert default_backend() == "onnx"
    set_default_backend("onnx-int8")
    assert default_backend() == "onnx-int8"
    set_default_backend(None)
    monkeypatch.setenv("REWARDLOOP_ENCODER__BACKEND", "cuda")
    with pytest.raises(
        EncoderBackendError, match="REWARDLOOP_ENCODER__BACKEND: unknown encoder backend 'cuda'"
    ):
        default_backend()


def test_set_default_backend_drops_the_shared_encoder(monkeypatch):
    built = []
    monkeypatch.setattr(
        "rewardloop.encoders.minilm.MiniLMEncoder", lambda backend: built.append(backend) or backend
    )
    reset_default_encoder()
    assert default_encoder() == "torch" and default_encoder() == "torch"
    set_default_backend("onnx")
    assert default_encoder() == "onnx" and built == ["torch", "onnx"]
    reset_default_encoder()


def test_config_section_validates_the_backend():
    assert parse_config({}).encoder.backend == "torch"
    assert parse_config({"encoder": {"backend": "onnx"}}).encoder.backend == "onnx"
    with pytest.raises(ConfigError, match=r"encoder\.backend"):
        parse_config({"encoder": {"backend": "gpu"}})
