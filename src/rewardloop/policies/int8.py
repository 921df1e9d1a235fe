"""int8 weights for a generator's linear layers, on the CPU, and their safetensors form.

Two methods, both with per-output-channel symmetric scales and the ``lm_head`` kept in fp32:

- ``int8-weight``: :class:`Int8Linear`, weight-only int8 (activations stay fp32) in torch's int8-weight
  kernel; saves memory, and on this project's CPUs runs slower than fp32.
- ``int8-dynamic``: torch dynamic quantisation (``torch.ao``: activations quantised per batch, int8
  matmul in fbgemm), the fast one.

Both save as the same tensors: every quantised layer's ``weight_int8`` (int8, shape (out, in)),
``scales`` (fp32, (out,)) and ``bias``. A dynamic layer's packed weights cannot go to safetensors, so
:func:`to_int8_weight` turns each one into an :class:`Int8Linear` holding its exact int8 values and
scales, and :func:`from_int8_weight` packs them back: a saved ``int8-dynamic`` model reloads to the
same outputs bit for bit.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from rewardloop.policies.contract import PolicyInputError

Quantization = Literal["int8-weight", "int8-dynamic"]
QUANTIZATIONS: tuple[str, ...] = ("int8-weight", "int8-dynamic")


class Int8Linear(nn.Module):
    """A linear layer with int8 weights and one fp32 scale per output channel (weight-only int8).

    ``W ≈ scale[:, None] * W_int8`` with ``scale = max|W_row| / 127``; the matmul runs in torch's
    int8-weight kernel (``_weight_int8pack_mm``), activations stay fp32.
    """

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        weight = linear.weight.detach().float()  # (out, in)
        scale = weight.abs().amax(dim=1).clamp(min=1e-12) / 127.0  # (out,)
        bias = None if linear.bias is None else linear.bias.detach().clone()
        self._set(torch.round(weight / scale[:, None]).clamp(-127, 127).to(torch.int8), scale, bias)

    def _set(self, weight_int8: torch.Tensor, scales: torch.Tensor, bias: torch.Tensor | None) -> None:
        self.weight_int8: torch.Tensor
        self.scales: torch.Tensor
        self.register_buffer("weight_int8", weight_int8.contiguous())
        self.register_buffer("scales", scales.float().contiguous())
        self.bias = None if bias is None else nn.Parameter(bias.float())
        self.out_features, self.in_features = weight_int8.shape

    @classmethod
    def from_parts(
        cls, weight_int8: torch.Tensor, scales: torch.Tensor, bias: torch.Tensor | None
    ) -> Int8Linear:
        """A layer of these int8 weights (out, in), per-channel scales (out,) and bias (out,)."""
        layer = cls.__new__(cls)
        nn.Module.__init__(layer)
        layer._set(weight_int8, scales, bias)
        return layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, self.in_features).contiguous()  # (B*T, in)
        y = torch._weight_int8pack_mm(flat, self.weight_int8, self.scales)  # (B*T, out)
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*x.shape[:-1], self.out_features)


def _children(model: nn.Module, kind: type[nn.Module]) -> Iterator[tuple[nn.Module, str, nn.Module]]:
    """(parent, name, child) for every submodule of type ``kind`` (exactly), listed before any swap."""
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if type(child) is kind:
                yield module, name, child


def _dynamic_linear() -> type[nn.Module]:
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

    return DynamicLinear


def quantize_model(model: nn.Module, method: Quantization, skip: Sequence[str] = ("lm_head",)) -> nn.Module:
    """An int8 copy of ``model``: every ``nn.Linear`` but those named in ``skip`` (``lm_head``)."""
    if method not in QUANTIZATIONS:
        raise PolicyInputError("quantization", f"must be one of {', '.join(QUANTIZATIONS)}, got {method!r}")
    model = copy.deepcopy(model).eval()
    if method == "int8-dynamic":
        from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

        names = {
            n for n, m in model.named_modules() if isinstance(m, nn.Linear) and n.split(".")[-1] not in skip
        }
        quantized: nn.Module = quantize_dynamic(  # type: ignore[no-untyped-call]
            model, dict.fromkeys(names, per_channel_dynamic_qconfig), dtype=torch.qint8
        )
        return quantized
    for parent, name, child in _children(model, nn.Linear):
        if name not in skip:
            setattr(parent, name, Int8Linear(child))  # type: ignore[arg-type]
    return model


def to_int8_weight(model: nn.Module) -> nn.Module:
    """A copy of a dynamically quantised ``model`` whose quantised layers are :class:`Int8Linear` with
    the same int8 values and scales (what safetensors can store)."""
    model = copy.deepcopy(model)
    for parent, name, child in _children(model, _dynamic_linear()):
        weight = child.weight()  # type: ignore[operator]
        if weight.qscheme() != torch.per_channel_affine or bool(weight.q_per_channel_zero_points().any()):
            raise PolicyInputError(f"{name}", "only symmetric per-channel int8 weights can be saved")
        parts = weight.int_repr(), weight.q_per_channel_scales().float(), child.bias()  # type: ignore[operator]
        setattr(parent, name, Int8Linear.from_parts(*parts))
    return model


def from_int8_weight(model: nn.Module) -> nn.Module:
    """``model`` with every :class:`Int8Linear` packed into a torch dynamic int8 layer (in place)."""
    dynamic = _dynamic_linear()
    for parent, name, child in _children(model, Int8Linear):
        assert isinstance(child, Int8Linear)
        zeros = torch.zeros(child.out_features, dtype=torch.long)
        weight = torch._make_per_channel_quantized_tensor(child.weight_int8, child.scales.double(), zeros, 0)
        layer = dynamic(child.in_features, child.out_features, dtype=torch.qint8)
        layer.set_weight_bias(weight, None if child.bias is None else child.bias.detach())  # type: ignore[operator]
        setattr(parent, name, layer)
    return model


def save_int8(model: nn.Module, file: Path) -> None:
    """Write a quantised ``model``'s tensors to the safetensors ``file`` (int8 weights stay int8)."""
    from safetensors.torch import save_model

    has_dynamic = any(True for _ in _children(model, _dynamic_linear()))
    save_model(to_int8_weight(model) if has_dynamic else model, str(file))


def load_int8(model: nn.Module, file: Path, method: Quantization) -> nn.Module:
    """``model`` (an fp32 skeleton of the saved architecture) with the int8 tensors of ``file``: the
    layers the file holds ``weight_int8`` for become int8 (``method``), the rest take its fp32 tensors."""
    from safetensors import safe_open
    from safetensors.torch import load_model

    with safe_open(str(file), framework="pt") as f:
        names = {key.removesuffix(".weight_int8") for key in f.keys() if key.endswith(".weight_int8")}  # noqa: SIM118
    for prefix, parent in list(model.named_modules()):
        for name, child in list(parent.named_children()):
            if type(child) is nn.Linear and f"{prefix}.{name}".lstrip(".") in names:
                out, inp = child.weight.shape
                bias = None if child.bias is None else torch.empty(out)
                weight = torch.empty((out, inp), dtype=torch.int8)
                setattr(parent, name, Int8Linear.from_parts(weight, torch.empty(out), bias))
    load_model(model, str(file))
    return from_int8_weight(model) if method == "int8-dynamic" else model


__all__ = [
    "QUANTIZATIONS",
    "Int8Linear",
    "Quantization",
    "from_int8_weight",
    "load_int8",
    "quantize_model",
    "save_int8",
    "to_int8_weight",
]
