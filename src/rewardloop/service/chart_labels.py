"""Chart labels that fit: a category name longer than :data:`MAX_TICK` characters is shown on the
axis as its first ``MAX_TICK − 1`` characters and an ellipsis, and whole on hover (and in the page's
tables, which wrap it). The axes grow their margins to the labels (plotly's ``automargin``), so a
rotated label is never cut off at the chart's edge.

Names that would shorten to the same text keep their whole names (two bars must not merge into one
category); the escaping of :func:`rewardloop.service.panels._label` is applied after shortening, so an
entity is never cut in half.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

#: Most characters of a category name an axis shows (an intent name like ``card_payment_not_re…``).
MAX_TICK = 20


def short_name(name: str, limit: int = MAX_TICK) -> str:
    """``name``, or its first ``limit − 1`` characters and an ellipsis.

    >>> short_name("card_payment_not_recognised_by_the_merchant")
    'card_payment_not_re…'
    >>> short_name("lights_on")
    'lights_on'
    """
    return name if len(name) <= limit else name[: limit - 1] + "…"


def tick_names(names: Sequence[str], limit: int = MAX_TICK) -> list[str]:
    """The axis text of each name: :func:`short_name`, except for names whose short forms collide
    (they stay whole, so that every name keeps a category of its own).

    >>> tick_names(["transfer_not_received_yet_a", "transfer_not_received_yet_b", "weather_for_tomorrow_x"])
    ['transfer_not_received_yet_a', 'transfer_not_received_yet_b', 'weather_for_tomorro…']
    """
    short = [short_name(n, limit) for n in names]
    seen = Counter(short)
    return [s if seen[s] == 1 else n for n, s in zip(names, short, strict=True)]


#: Axis settings of every category axis: margins that grow to the labels.
CATEGORY_AXIS = {"automargin": True}

__all__ = ["CATEGORY_AXIS", "MAX_TICK", "short_name", "tick_names"]
