"""The files of a saved policy folder: torch weights in safetensors, metadata in JSON (no pickle).

Loading runs no code: a folder is read back from these two kinds of file only.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from safetensors.torch import load_file, save_file
from torch import nn


def save_weights(module: nn.Module, file: Path) -> None:
    """Write ``module``'s parameters and buffers to the safetensors ``file``."""
    save_file({k: v.detach().contiguous() for k, v in module.state_dict().items()}, str(file))


def load_weights(module: nn.Module, file: Path) -> None:
    """Read ``module``'s parameters and buffers back from the safetensors ``file``."""
    module.load_state_dict(load_file(str(file)))


def write_meta(file: Path, meta: Mapping[str, Any]) -> None:
    """Write a folder's JSON metadata (indented: people read it)."""
    file.write_text(json.dumps(meta, indent=2))


def read_meta(folder: Path, name: str, kind: str, what: str) -> dict[str, Any]:
    """The JSON metadata ``name`` of a saved ``what`` folder (e.g. ``"a classifier policy"``), checked to
    be of ``kind``: FileNotFoundError without it, ValueError for another kind."""
    file = folder / name
    if not file.exists():
        raise FileNotFoundError(f"{folder}: not {what} folder (no {name})")
    meta: dict[str, Any] = json.loads(file.read_text())
    if meta.get("kind") != kind:
        raise ValueError(f"{file}: kind is {meta.get('kind')!r}, not {what}")
    return meta


__all__ = ["load_weights", "read_meta", "save_weights", "write_meta"]
