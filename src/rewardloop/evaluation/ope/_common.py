"""Shared types of the OPE package: array aliases, the input error, the no-exploration threshold."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: A propensity this close to 1 counts as "no exploration" in the diagnostics.
DETERMINISTIC_PSCORE = 1.0 - 1e-9


class OPEInputError(ValueError):
    """Inputs to an estimator are inconsistent; the message names the argument."""
