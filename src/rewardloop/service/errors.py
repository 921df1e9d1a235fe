"""Error bodies shared by every route: RFC 9457 problems (``application/problem+json``).

One shape everywhere: ``{"type", "title", "status", "detail", "field"}`` (plus ``errors`` listing every
validation error when there are several); ``field`` names the offending field, dotted (``body.kind``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from starlette.responses import JSONResponse

PROBLEM_JSON = "application/problem+json"
#: ``type`` of every problem: a page of the API's docs per status (RFC 9457 §4.2 lets it be relative).
TYPE_BASE = "/docs/errors#"
_FIELD = re.compile(r"^([A-Za-z_][\w.\[\]]*): ")


#: What each error status means, for the OpenAPI document's responses.
MEANING = {
    400: "malformed JSON",
    401: "missing, invalid or revoked API key",
    403: "the key lacks the route's scope",
    404: "not found in this project (named)",
    409: "a conflict: an id or idempotency key reused with another body, a refused move (named)",
    413: "request body too large",
    422: "a field failed validation (named)",
    503: "the store is unreachable or the service is at capacity",
}

#: The errors of every ``/v1`` route: the key checks, and the admission limit / store failures.
KEYED = (401, 403, 503)
#: The errors of every route that takes a JSON body.
BODY = (400, 413, 422)


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for these error statuses (problem bodies)."""
    from rewardloop.service.schemas import ErrorResponse

    return {code: {"model": ErrorResponse, "description": MEANING[code]} for code in sorted(set(codes))}


def problem(
    status: int, detail: str, field: str | None = None, errors: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """An RFC 9457 problem body.

    >>> problem(404, "policy: no policy 'x'", "policy")["title"]
    'Not Found'
    """
    try:
        title = HTTPStatus(status).phrase
    except ValueError:
        title = "Error"
    body: dict[str, Any] = {
        "type": f"{TYPE_BASE}{status}",
        "title": title,
        "status": status,
        "detail": detail,
        "field": field,
    }
    if errors is not None:
        body["errors"] = errors
    return body


def as_problem(status: int, body: dict[str, Any]) -> dict[str, Any]:
    """``body`` ({"detail", "field"?, ...}) completed into a problem; ``field`` guessed from a detail
    written as ``"name: reason"`` when absent.

    >>> as_problem(404, {"detail": "policy: no policy 'x'"})["field"]
    'policy'
    """
    if "type" in body and "status" in body:
        return body
    detail = str(body.get("detail", ""))
    field = body.get("field")
    if field is None:
        found = _FIELD.match(detail)
        field = found.group(1) if found else None
    extra = {k: v for k, v in body.items() if k not in ("detail", "field")}
    return {**problem(status, detail, field), **extra}


def problem_response(
    status: int, detail: str, field: str | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    """A problem answer (``application/problem+json``)."""
    return JSONResponse(problem(status, detail, field), status, headers=headers, media_type=PROBLEM_JSON)


def field_name(loc: Any) -> str:
    """A dotted field name from a pydantic error location: ``("body", "scale", 0)`` → ``body.scale.0``."""
    return ".".join(str(p) for p in loc)


def validation_payload(errors: Sequence[Any]) -> tuple[int, dict[str, Any]]:
    """(status, problem) for pydantic/FastAPI validation errors: 400 for malformed JSON, else 422 naming
    the first field (and listing every error).

    >>> validation_payload([{"loc": ("body", "kind"), "msg": "Input should be 'rating'"}])[1]["detail"]
    "body.kind: Input should be 'rating'"
    """
    for e in errors:
        if e.get("type") == "json_invalid":
            reason = e.get("ctx", {}).get("error", "")
            return 400, problem(400, f"malformed JSON in the request body: {reason}".rstrip(": "), "body")
    first = errors[0] if errors else {"loc": ("body",), "msg": "invalid"}
    where = field_name(first.get("loc", ("body",)))
    fields = [{"field": field_name(e.get("loc", ())), "message": e.get("msg", "")} for e in errors]
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return 422, problem(422, f"{where}: {first.get('msg', 'invalid')}{more}", where, fields)
