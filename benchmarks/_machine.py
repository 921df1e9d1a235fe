"""What the benchmarks compare against physically: MiniLM's FLOPs per token and this machine's peaks.

MiniLM-L6 (hidden 384, FFN 1536, 6 layers): per token and layer the Q, K, V, O projections
(4 × 384²) and the FFN (2 × 384 × 1536) are 1.77 M multiply-adds; attention adds 2 × T × 384 for a
text of T tokens. A multiply-add is 2 FLOPs.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Sequence

import numpy as np

LAYERS, HIDDEN, FFN = 6, 384, 1536


def minilm_flops(token_counts: Sequence[int]) -> float:
    """FLOPs of one MiniLM forward pass over texts of these (unpadded) token counts."""
    per_token = 2 * LAYERS * (4 * HIDDEN * HIDDEN + 2 * HIDDEN * FFN)
    return float(sum(t * per_token + 2 * LAYERS * 2 * t * t * HIDDEN for t in token_counts))


def fp32_peak_gflops(threads: int = 1, size: int = 1024, repeats: int = 5) -> float:
    """Median GFLOP/s of a (size × size) @ (size × size) fp32 torch matmul on ``threads`` threads."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t0)
    torch.set_num_threads(before)
    return 2 * size**3 / statistics.median(times) / 1e9


def int8_peak_gops(threads: int = 1, size: int = 1024, repeats: int = 5) -> float | None:
    """Median GOP/s of ONNX Runtime's MatMulInteger (uint8 × int8 → int32), or None without onnx."""
    try:
        import onnxruntime as ort
        from onnx import TensorProto, helper
    except ImportError:
        return None
    node = helper.make_node("MatMulInteger", ["A", "B"], ["Y"])
    graph = helper.make_graph(
        [node],
        "peak",
        [
            helper.make_tensor_value_info("A", TensorProto.UINT8, [size, size]),
            helper.make_tensor_value_info("B", TensorProto.INT8, [size, size]),
        ],
        [helper.make_tensor_value_info("Y", TensorProto.INT32, [size, size])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feed = {
        "A": rng.integers(0, 255, (size, size), dtype=np.uint8),
        "B": rng.integers(-127, 127, (size, size), dtype=np.int8),
    }
    session.run(None, feed)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        session.run(None, feed)
        times.append(time.perf_counter() - t0)
    return 2 * size**3 / statistics.median(times) / 1e9


def load() -> str:
    """``[load 3.2 on 2 CPUs]``: printed beside every figure."""
    return f"[load {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs]"
