"""Hash assignment of units to experiment variants: pure functions, no store, cheap to import.

A unit (a user id, a session id) lands at ``u = sha256(salt ␟ unit_id)[:8] / 2⁶⁴`` in [0, 1): the
same on every process and machine (never Python's salted ``hash()``), and independent across
experiments, since each has its own salt. Challengers occupy [0, s) in name order and the champion
[s, 1), so raising the challenger share s from 5% to 25% only moves champion units over: nobody
flips back and forth during a ramp.

>>> exp = Experiment(name="e", policy="p", variants={"champion": "1.0.0", "challenger": "1.1.0"},
...                  shares={"champion": 0.95, "challenger": 0.05}, salt="s")
>>> assign_variant(exp, "user-42") == assign_variant(exp, "user-42")
True
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence

from rewardloop.types import Experiment

CHAMPION = "champion"
_SCALE = float(1 << 64)


def bucket(salt: str, unit_id: str) -> float:
    """The unit's position in [0, 1) for this salt: the first 8 bytes of sha256(salt ␟ unit_id).

    >>> bucket("exp-1", "user-1") == bucket("exp-1", "user-1")
    True
    """
    digest = hashlib.sha256(f"{salt}\x1f{unit_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / _SCALE


def layout(exp: Experiment) -> list[str]:
    # Challengers first in name order, the champion on top: see the module docstring.
    return [*sorted(v for v in exp.variants if v != CHAMPION), CHAMPION]


def assign_variant(exp: Experiment, unit_id: str) -> tuple[str, float]:
    """``(variant, share)`` that serves ``unit_id`` in ``exp``; pure, so a service may cache ``exp``."""
    if not isinstance(unit_id, str) or not unit_id:
        raise ValueError(f"unit_id: must be a non-empty string, got {unit_id!r}")
    if exp.shadow:
        return CHAMPION, 1.0
    u = bucket(exp.salt, unit_id)
    edge = 0.0
    order = layout(exp)
    for name in order:
        edge += exp.shares[name]
        if u < edge and exp.shares[name] > 0:
            return name, float(exp.shares[name])
    return CHAMPION, float(exp.shares[CHAMPION])  # u in the rounding gap at the top


def stage_shares(variants: Sequence[str], challenger_share: float) -> dict[str, float]:
    """Shares for one ramp stage: ``challenger_share`` split evenly over the non-champion variants."""
    others = [v for v in variants if v != CHAMPION]
    each = challenger_share / len(others)
    shares = {v: each for v in others}
    shares[CHAMPION] = 1.0 - math.fsum(shares.values())
    return shares
