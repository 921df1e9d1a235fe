"""The finishing touches of the OpenAPI document: the security schemes, which routes need them, and
error answers as ``application/problem+json``."""

from __future__ import annotations

from typing import Any

from rewardloop.service.errors import MEANING, PROBLEM_JSON

SECURITY_SCHEMES = {
    "bearer": {
        "type": "http",
        "scheme": "bearer",
        "description": "an API key: `Authorization: Bearer <key>`",
    },
    "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key", "description": "the same key"},
    "subscriptionKey": {
        "type": "apiKey",
        "in": "header",
        "name": "Ocp-Apim-Subscription-Key",
        "description": "the same key, in Azure Personalizer's header (the /personalizer routes)",
    },
}


#: The ``Idempotency-Key`` header of every ``/v1`` write (service/idempotency.py).
IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "a key of 1-255 printable ASCII characters, new for each new write: the same key "
    "with the same request answers the first answer again (header `Idempotent-Replayed: true`), with "
    "another request a 422; kept per API key for `service.idempotency_hours`",
    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
}
_WRITES = ("post", "put", "patch", "delete")


def _idempotent(operation: dict[str, Any]) -> None:
    """Document the ``Idempotency-Key`` header on a write, and the answers it adds."""
    operation.setdefault("parameters", []).append({"$ref": "#/components/parameters/IdempotencyKey"})
    responses = operation.setdefault("responses", {})
    problem = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}
    responses.setdefault("400", {"description": MEANING[400], "content": problem})
    responses.setdefault("422", {"description": MEANING[422], "content": problem})
    responses["400"]["description"] += "; a malformed Idempotency-Key"
    responses["422"]["description"] += "; an Idempotency-Key reused with another request"


def finish(schema: dict[str, Any]) -> dict[str, Any]:
    """Declare the key schemes, require them on every ``/v1`` operation (the others take no key),
    document ``Idempotency-Key`` on every ``/v1`` write, and give every error response the problem
    media type."""
    components = schema.setdefault("components", {})
    components["securitySchemes"] = SECURITY_SCHEMES
    components.setdefault("parameters", {})["IdempotencyKey"] = IDEMPOTENCY_KEY
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            if path.startswith("/v1/"):
                operation["security"] = [{"bearer": []}, {"apiKey": []}]
            if path.startswith("/personalizer/"):
                operation["security"] = [{"subscriptionKey": []}, {"bearer": []}, {"apiKey": []}]
            if path.startswith(("/v1/", "/personalizer/")) and method in _WRITES:
                _idempotent(operation)
            for code, response in operation.get("responses", {}).items():
                content = response.get("content", {})
                if code[:1] in "45" and "application/json" in content:
                    content[PROBLEM_JSON] = content.pop("application/json")
    return schema
