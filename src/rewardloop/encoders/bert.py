"""MiniLM's forward pass in plain torch, from the package's ``model.safetensors`` and ``tokenizer.json``.

The encoder's inference path, so that a process that only embeds text (``rewardloop eval``, the
service) imports neither ``transformers`` nor its model classes: importing them and building the model
through ``AutoModel.from_pretrained`` cost about 6.5 s of CPU on this machine, more than importing torch.
The layers are BERT's (Devlin et al. 2019), as ``transformers.BertModel`` computes them in inference
(no dropout): the same weights give the same hidden states to float rounding (tested against it).
Tokenisation is the model's own fast tokenizer (the ``tokenizers`` library that transformers wraps).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch.nn import functional as F


class PlainTokenizer:
    """``tokenizers.Tokenizer`` of the model folder, truncating to ``max_length`` and padding to the
    longest text of each batch (the folder's file says 128 and fixed padding: both replaced)."""

    def __init__(self, folder: str | Path, max_length: int) -> None:
        from tokenizers import Tokenizer

        self._tok = Tokenizer.from_file(str(Path(folder) / "tokenizer.json"))
        self._tok.enable_truncation(max_length)
        pad_id = self._tok.token_to_id("[PAD]")
        self.pad_token_id = 0 if pad_id is None else int(pad_id)
        self._tok.enable_padding(pad_id=self.pad_token_id, pad_token="[PAD]")

    def __call__(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(input_ids, attention_mask)``, each of shape (n_texts, longest)."""
        encoded = self._tok.encode_batch(list(texts))
        ids = torch.tensor([e.ids for e in encoded], dtype=torch.long)
        mask = torch.tensor([e.attention_mask for e in encoded], dtype=torch.long)
        return ids, mask


class PlainMiniLM:
    """BERT encoder layers over the weights of ``folder``; :meth:`hidden` gives the last hidden states.

    Examples
    --------
    >>> from rewardloop.encoders.minilm import _model_path  # doctest: +SKIP
    >>> model = PlainMiniLM(_model_path())                  # doctest: +SKIP
    >>> model.hidden(torch.tensor([[101, 102]]), torch.tensor([[1, 1]])).shape  # doctest: +SKIP
    torch.Size([1, 2, 384])
    """

    def __init__(self, folder: str | Path) -> None:
        from safetensors.torch import load_file

        folder = Path(folder)
        config: dict[str, Any] = json.loads((folder / "config.json").read_text())
        if (
            config.get("model_type") != "bert"
            or config.get("position_embedding_type", "absolute") != "absolute"
        ):
            raise ValueError(f"{folder}: not a BERT model with absolute positions")
        if config.get("hidden_act", "gelu") != "gelu":
            raise ValueError(f"{folder}: activation {config['hidden_act']!r}, only exact gelu is built here")
        self.heads = int(config["num_attention_heads"])
        self.layers = int(config["num_hidden_layers"])
        self.eps = float(config["layer_norm_eps"])
        self.w = load_file(str(folder / "model.safetensors"))
        self.hidden_size = int(self.w["embeddings.word_embeddings.weight"].shape[1])

    def _norm(self, x: torch.Tensor, name: str) -> torch.Tensor:
        w = self.w
        return F.layer_norm(x, (self.hidden_size,), w[f"{name}.weight"], w[f"{name}.bias"], self.eps)

    def _linear(self, x: torch.Tensor, name: str) -> torch.Tensor:
        return F.linear(x, self.w[f"{name}.weight"], self.w[f"{name}.bias"])

    def hidden(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Last hidden states, shape (B, T, hidden), for token ids and mask of shape (B, T)."""
        w, (B, T), H = self.w, input_ids.shape, self.hidden_size
        x = (
            F.embedding(input_ids, w["embeddings.word_embeddings.weight"])
            + w["embeddings.position_embeddings.weight"][:T]
            + w["embeddings.token_type_embeddings.weight"][0]  # one segment: type 0
        )  # (B, T, H)
        x = self._norm(x, "embeddings.LayerNorm")
        keep = attention_mask[:, None, None, :].bool()  # (B, 1, 1, T): padding is never attended to
        for layer in range(self.layers):
            p = f"encoder.layer.{layer}"

            def heads(t: torch.Tensor) -> torch.Tensor:
                return t.view(B, T, self.heads, H // self.heads).transpose(1, 2)  # (B, heads, T, d)

            q = heads(self._linear(x, f"{p}.attention.self.query"))
            k = heads(self._linear(x, f"{p}.attention.self.key"))
            v = heads(self._linear(x, f"{p}.attention.self.value"))
            ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=keep)  # softmax(qkᵀ/√d) v
            ctx = ctx.transpose(1, 2).reshape(B, T, H)
            x = self._norm(
                self._linear(ctx, f"{p}.attention.output.dense") + x, f"{p}.attention.output.LayerNorm"
            )
            inner = F.gelu(self._linear(x, f"{p}.intermediate.dense"))  # (B, T, 4H)
            x = self._norm(self._linear(inner, f"{p}.output.dense") + x, f"{p}.output.LayerNorm")
        return x
