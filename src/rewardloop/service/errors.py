"""Error bodies shared by every route: ``{"detail": ..., "field": ...}`` naming the offending field."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def field_name(loc: Any) -> str:
    """A dotted field name from a pydantic error location: ``("body", "scale", 0)`` → ``body.scale.0``."""
    return ".".join(str(p) for p in loc)


def validation_payload(errors: Sequence[Any]) -> tuple[int, dict[str, Any]]:
    """(status, body) for pydantic/FastAPI validation errors: 400 for malformed JSON, else 422 naming
    the first field (and listing every error).

    >>> validation_payload([{"loc": ("body", "kind"), "msg": "Input should be 'rating'"}])[1]["detail"]
    "body.kind: Input should be 'rating'"
    """
    for e in errors:
        if e.get("type") == "json_invalid":
            reason = e.get("ctx", {}).get("error", "")
            return 400, {
                "detail": f"malformed JSON in the request body: {reason}".rstrip(": "),
                "field": "body",
            }
    first = errors[0] if errors else {"loc": ("body",), "msg": "invalid"}
    where = field_name(first.get("loc", ("body",)))
    fields = [{"field": field_name(e.get("loc", ())), "message": e.get("msg", "")} for e in errors]
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return 422, {"detail": f"{where}: {first.get('msg', 'invalid')}{more}", "field": where, "errors": fields}
