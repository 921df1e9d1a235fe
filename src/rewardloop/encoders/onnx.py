"""MiniLM through ONNX Runtime: exported from the installed package with ``torch.onnx`` on first use.

The graph is the model *and* its pooling (mean over real tokens, L2 normalisation), so one
``session.run`` returns finished embeddings. Exports live in ``$REWARDLOOP_DATA/onnx/`` (default
``~/.cache/rewardloop/onnx/``), named by a hash of the weights file, so a changed model is re-exported
and nothing is ever downloaded. ``onnx-int8`` is the fp32 graph with int8 per-channel weights and
dynamically quantised activations (``onnxruntime.quantization.quantize_dynamic``).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

OPSET = 17


def cache_dir() -> Path:
    """Where exported graphs are kept: ``$REWARDLOOP_DATA/onnx`` (created if missing)."""
    root = Path(os.environ.get("REWARDLOOP_DATA", Path.home() / ".cache" / "rewardloop")).expanduser()
    path = root / "onnx"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _weights_key(model_path: str) -> str:
    digest = hashlib.sha256()
    with open(Path(model_path) / "model.safetensors", "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def _export_fp32(model_path: str, target: Path) -> None:
    import torch
    from transformers import AutoModel, AutoTokenizer

    class Pooled(torch.nn.Module):
        """MiniLM + mean pooling + L2 norm, as in :meth:`MiniLMEncoder._forward`."""

        def __init__(self, model: Any) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            hidden = self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)  # (B, 384)
            return torch.nn.functional.normalize(pooled, p=2, dim=1)

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    model = Pooled(AutoModel.from_pretrained(model_path).eval())
    sample = tokenizer(["an example", "a longer example text"], padding=True, return_tensors="pt")
    axes = {"batch": 0, "tokens": 1}
    with torch.inference_mode(), warnings.catch_warnings():
        # The tracer warns about Python-level shape checks in transformers; the axes stay dynamic
        # (tests/encoders checks other lengths and batch sizes against torch).
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (sample["input_ids"], sample["attention_mask"]),
            str(target),
            input_names=["input_ids", "attention_mask"],
            output_names=["embedding"],
            dynamic_axes={
                "input_ids": {v: k for k, v in axes.items()},
                "attention_mask": {v: k for k, v in axes.items()},
                "embedding": {0: "batch"},
            },
            opset_version=OPSET,
            dynamo=False,  # the TorchScript exporter: no onnxscript needed, dynamic axes as declared
        )


def _quantize(source: Path, target: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(source), str(target), per_channel=True, weight_type=QuantType.QInt8)


def _atomic(target: Path, build: Any, *args: Any) -> Path:
    """Build ``target`` through a temporary file in the same folder, so a reader never sees half a file."""
    if target.exists():
        return target
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=target.stem, suffix=".tmp.onnx")
    os.close(fd)
    try:
        build(*args, Path(tmp))
        os.chmod(tmp, 0o644)  # mkstemp makes it private; the cache is shared like the data folder
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def exported_model(model_path: str, int8: bool) -> Path:
    """The cached ONNX file of the model at ``model_path`` (exported or quantised now if missing)."""
    key = _weights_key(model_path)
    folder = cache_dir()
    fp32 = _atomic(folder / f"minilm-{key}-opset{OPSET}.onnx", _export_fp32, model_path)
    if not int8:
        return fp32
    return _atomic(folder / f"minilm-{key}-opset{OPSET}-int8.onnx", _quantize, fp32)


def length_groups(lengths: npt.NDArray[np.int64], max_waste: float = 0.15) -> list[npt.NDArray[np.int64]]:
    """Split indices sorted by token count into runs whose padding wastes at most ``max_waste``.

    ONNX Runtime's per-call cost is small, so a padded token (full compute, thrown away) costs more
    than one more call: a run ends when its longest text would pad the shortest by more than
    ``max_waste`` of the run's tokens.
    """
    order = np.argsort(lengths, kind="stable")
    groups: list[npt.NDArray[np.int64]] = []
    start = 0
    for end in range(1, len(order) + 1):
        if end < len(order):
            run = lengths[order[start : end + 1]]
            if run.max() * len(run) <= (1 + max_waste) * run.sum():
                continue
        groups.append(order[start:end])
        start = end
    return groups


class OnnxMiniLM:
    """An ONNX Runtime session over the exported MiniLM; ``forward`` maps a tokenised batch to embeddings."""

    def __init__(self, model_path: str, int8: bool, num_threads: int | None, pad_id: int = 0) -> None:
        try:
            import onnxruntime as ort
        except ImportError as err:
            raise ImportError(
                "the onnx encoder backends need the onnx extra: pip install 'rewardloop[onnx]'"
            ) from err
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if num_threads is not None:
            options.intra_op_num_threads = num_threads
            options.inter_op_num_threads = 1
        self.pad_id = pad_id
        self.path = exported_model(model_path, int8)
        self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])

    def forward(self, batch: Mapping[str, list[list[int]]]) -> npt.NDArray[np.float32]:
        """Embeddings (n, 384) of unpadded token lists, run in groups of similar length."""
        ids = batch["input_ids"]
        lengths = np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(ids))
        out = np.empty((len(ids), 384), dtype=np.float32)
        for group in length_groups(lengths):
            width = int(lengths[group].max())
            input_ids = np.full((len(group), width), self.pad_id, dtype=np.int64)
            mask = np.zeros((len(group), width), dtype=np.int64)
            for row, i in enumerate(group):
                input_ids[row, : lengths[i]] = ids[i]
                mask[row, : lengths[i]] = 1
            feed = {"input_ids": input_ids, "attention_mask": mask}
            out[group] = self.session.run(None, feed)[0]
        return out
