"""What the classifier and the set policy share: a head on the MiniLM encoder, embeddings → logits.

The encoder is the process-wide shared one unless a policy is given its own (a fine-tuned one); the
head maps embeddings of shape (B, in_dim) to one logit per label (B, L).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from rewardloop.encoders import MiniLMEncoder, default_encoder
from rewardloop.policies.artifacts import load_weights, read_meta, save_weights, write_meta
from rewardloop.policies.contract import Exploration


class EncoderHeadPolicy:
    """A policy that reads a text through the encoder and a head with one output per label.

    Subclasses check their own arguments, then call this ``__init__`` with the head (``None``: the one
    ``fresh_head()`` builds), and turn :meth:`raw_logits_embeddings` into probabilities. A saved folder
    holds ``head.safetensors`` and a JSON file of the labels, the head's input width, the names and what
    the subclass adds.
    """

    kind: str
    #: The folder's JSON file, and what a folder without it is not (for the error).
    meta_name: str
    folder_what: str

    def __init__(
        self,
        labels: Sequence[str],
        head: nn.Module | None,
        fresh_head: Callable[[], nn.Module],
        encoder: MiniLMEncoder | None,
        name: str,
        version: str,
        in_dim: int,
        exploration: Exploration | None,
    ) -> None:
        self.labels = list(labels)
        self.in_dim = in_dim
        #: False for a fresh, untrained head: learners then start afresh (seeded) instead of from it.
        self.head_fitted = head is not None
        self.head = head if head is not None else fresh_head()
        self.head.eval()
        self._encoder = encoder
        self.name = name
        self.version = version
        self.exploration = exploration if exploration is not None else Exploration()

    @property
    def encoder(self) -> MiniLMEncoder:
        if self._encoder is None:
            self._encoder = default_encoder()  # thread-safe: one shared encoder, built once
        return self._encoder

    def warm(self) -> None:
        """Load the encoder and run it once, so that the first request does not pay for it."""
        self.embed(["warm-up"])

    @property
    def n_labels(self) -> int:
        return len(self.labels)

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """This policy's embeddings of ``texts``, shape (n, in_dim): what the head reads."""
        return self.encoder.encode(texts)

    def raw_logits_embeddings(self, X: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
        """The head's logits, shape (n, L), for embeddings X of shape (n, in_dim)."""
        X = np.asarray(X, dtype=np.float32)
        if X.ndim != 2 or X.shape[1] != self.in_dim:
            raise ValueError(f"X: expected embeddings of shape (n, {self.in_dim}), got {X.shape}")
        with torch.inference_mode():
            logits = self.head(torch.from_numpy(X))  # (n, L)
        raw: npt.NDArray[np.float64] = logits.double().numpy()
        return raw

    def save_head(self, path: str | Path, extra: Mapping[str, Any]) -> Path:
        """Write ``head.safetensors`` and the JSON ``meta_name`` (with ``extra``) into the folder ``path``."""
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        save_weights(self.head, folder / "head.safetensors")
        meta = {
            "kind": self.kind,
            "labels": self.labels,
            "in_dim": self.in_dim,
            "name": self.name,
            "version": self.version,
            **extra,
        }
        write_meta(folder / self.meta_name, meta)
        return folder

    @classmethod
    def read_head(
        cls, folder: Path, make: Callable[[dict[str, Any]], nn.Module]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The metadata of a folder written by :meth:`save_head`, and the constructor arguments it holds:
        the labels, the names, the input width and the head (built by ``make(meta)``, then read back)."""
        meta = read_meta(folder, cls.meta_name, cls.kind, cls.folder_what)
        head = make(meta)
        load_weights(head, folder / "head.safetensors")
        saved = {key: meta[key] for key in ("labels", "name", "version", "in_dim")}
        return meta, {**saved, "head": head}


__all__ = ["EncoderHeadPolicy"]
