"""The finishing touches of the OpenAPI document: the security schemes, which routes need them, and
error answers as ``application/problem+json``."""

from __future__ import annotations

from typing import Any

from rewardloop.service.errors import PROBLEM_JSON

SECURITY_SCHEMES = {
    "bearer": {
        "type": "http",
        "scheme": "bearer",
        "description": "an API key: `Authorization: Bearer <key>`",
    },
    "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key", "description": "the same key"},
}


def finish(schema: dict[str, Any]) -> dict[str, Any]:
    """Declare the key schemes, require them on every ``/v1`` operation (the others take no key), and
    give every error response the problem media type."""
    schema.setdefault("components", {})["securitySchemes"] = SECURITY_SCHEMES
    for path, operations in schema.get("paths", {}).items():
        for operation in operations.values():
            if path.startswith("/v1/"):
                operation["security"] = [{"bearer": []}, {"apiKey": []}]
            for code, response in operation.get("responses", {}).items():
                content = response.get("content", {})
                if code[:1] in "45" and "application/json" in content:
                    content[PROBLEM_JSON] = content.pop("application/json")
    return schema
