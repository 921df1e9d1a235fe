"""Cursor pagination for every list route: ``page_token`` in, ``next_page_token`` out.

A token is opaque to callers: URL-safe base64 of ``{"r": route, "k": key}``, where ``key`` is the sort
key of the last item of the page (keyset pagination, not an offset). The next page holds the items whose
key comes after it, so a page never repeats or skips an item that existed when the first page was read,
however many items are inserted meanwhile (an offset shifts under inserts; a keyset does not). A token
from another route, or one that is not a token at all, is refused with 400 naming ``page_token``.

>>> token = encode_token("keys", ["2026-01-01T00:00:00+00:00", "k1"])
>>> decode_token("keys", token, 2)
['2026-01-01T00:00:00+00:00', 'k1']
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from typing import Annotated, Any, TypeVar

import orjson
from fastapi import HTTPException, Query

T = TypeVar("T")

#: Items per page when the caller does not say; the most a page may hold.
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500

PageToken = Annotated[
    str | None,
    Query(
        max_length=2000,
        description="the `next_page_token` of the previous page (omit it for the first page)",
    ),
]
PageSize = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="items per page")]

_BAD = "page_token: not a token this list gave out (pass the previous page's next_page_token unchanged)"


def encode_token(route: str, key: Sequence[Any]) -> str:
    """The opaque token of the page after the item whose sort key is ``key``."""
    raw = orjson.dumps({"r": route, "k": list(key)})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(route: str, token: str, width: int) -> list[Any]:
    """The sort key a token of ``route`` holds (``width`` values, any number when negative); 400 naming
    ``page_token`` otherwise."""
    try:
        data = orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, ValueError, orjson.JSONDecodeError):
        raise HTTPException(400, _BAD) from None
    if not isinstance(data, dict) or data.get("r") != route:
        raise HTTPException(400, _BAD)
    key = data.get("k")
    if (
        not isinstance(key, list)
        or (len(key) != width and width >= 0)
        or not all(isinstance(v, str | int | float) for v in key)
    ):
        raise HTTPException(400, _BAD)
    return key


def decode_key(route: str, token: str, parsers: Sequence[Callable[[Any], Any]]) -> tuple[Any, ...]:
    """The sort key a token of ``route`` holds, each value read by its parser (e.g. ``float``,
    ``datetime.fromisoformat``); a value a parser refuses is a bad token: 400 naming ``page_token``."""
    key = decode_token(route, token, len(parsers))
    try:
        return tuple(parse(value) for parse, value in zip(parsers, key, strict=True))
    except (TypeError, ValueError):
        raise HTTPException(400, _BAD) from None


def page(
    items: Sequence[T],
    sort_key: Callable[[T], tuple[Any, ...]],
    route: str,
    token: str | None,
    size: int,
) -> tuple[list[T], str | None]:
    """One page of an in-memory list in ``sort_key`` order, after the item ``token`` names; the page
    and the token of the next one (None on the last page). The key values must be JSON scalars that
    sort as the items do (strings, numbers), a fixed number of them per route.

    >>> first, token = page(["b", "a", "c"], lambda s: (s,), "letters", None, 2)
    >>> first, page(["b", "a", "c", "ab"], lambda s: (s,), "letters", token, 2)  # "ab" came in meanwhile
    (['a', 'b'], (['c'], None))
    """
    ordered = sorted(items, key=sort_key)
    if token is not None:
        width = len(sort_key(ordered[0])) if ordered else len(decode_token(route, token, -1))
        after = tuple(decode_token(route, token, width))
        ordered = [item for item in ordered if _after(sort_key(item), after)]
    shown = ordered[:size]
    more = len(ordered) > size
    return shown, encode_token(route, sort_key(shown[-1])) if more and shown else None


def _after(key: tuple[Any, ...], cursor: tuple[Any, ...]) -> bool:
    try:
        return key > cursor
    except TypeError:  # a token whose values have other types than the keys
        raise HTTPException(400, _BAD) from None


__all__ = [
    "DEFAULT_PAGE_SIZE",
    "MAX_PAGE_SIZE",
    "PageSize",
    "PageToken",
    "decode_key",
    "decode_token",
    "encode_token",
    "page",
]
