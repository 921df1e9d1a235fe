"""A saved router folder: ``router.json`` (hyperparameters, arms, priors, statistics, random state) and
``state.npz`` (the arrays), as :meth:`BanditRouter.save <rewardloop.learners.bandits.BanditRouter.save>`
writes it. Reading it needs no router class, so ``load_router`` can pick the class from it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from rewardloop.policies.router import FloatArray, RouterInputError

#: Version of the saved layout (``router.json`` + ``state.npz``).
FORMAT_VERSION = 1


def read_saved(path: str | Path) -> tuple[dict[str, Any], dict[str, FloatArray]]:
    """The JSON metadata and the arrays of a saved router folder (no pickle: ``allow_pickle=False``)."""
    folder = Path(path)
    try:
        meta = json.loads((folder / "router.json").read_text())
        with np.load(folder / "state.npz", allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except FileNotFoundError as err:
        raise RouterInputError(
            "path", f"no saved router in {folder} ({Path(err.filename).name} missing)"
        ) from None
    if meta.get("format") != FORMAT_VERSION:
        raise RouterInputError(
            "format", f"{folder} has format {meta.get('format')}, expected {FORMAT_VERSION}"
        )
    return meta, arrays


__all__ = ["FORMAT_VERSION", "read_saved"]
