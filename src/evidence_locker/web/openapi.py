"""The API's OpenAPI description, made to say what the server really answers.

FastAPI describes a 422 as its own `HTTPValidationError` and nothing else; every error here is
an RFC 9457 problem document (web/problems.py), and every `/api/v1` route may refuse a caller
(401 without a credential, 403 for a role it does not serve), miss a thing (404) or meet an
unavailable backend (503). A force's integrators read this, and the fuzzing test
(tests/web/test_openapi_fuzz.py) holds every answer to it: status, content type and body.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

PROBLEM_TYPE = "application/problem+json"

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "RFC 9457 problem details: what went wrong, for people and programs.",
    "type": "object",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string", "minLength": 1},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string"},
        "errors": {
            "type": "array",
            "description": "422: which inputs were refused and why",
            "items": {"type": "object", "properties": {
                "loc": {"type": "array", "items": {"anyOf": [{"type": "string"},
                                                             {"type": "integer"}]}},
                "msg": {"type": "string"}}},
        },
    },
    "additionalProperties": True,
}

#: Answers every API operation may give, whatever it does.
COMMON = {
    "401": "No credential, or one that has expired or been revoked.",
    "403": "The caller's role or the token's scope does not allow this.",
    "422": "A parameter or the body failed validation; `errors` says which.",
    "503": "The database or the object store is unavailable; retry after `Retry-After`.",
}
#: Any other refusal (400, 404, 409, 410, 412, 413, 415, 429, 431, ...): still a problem.
DEFAULT = "Refused; the problem document says why."


def problem_response(description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {PROBLEM_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}}


def body_of(model: type[BaseModel], media_type: str = "application/json") -> dict[str, Any]:
    """An `openapi_extra` request body for a route that reads its body itself (to bound its
    size or to stream it), so the description still says what it takes. The model's own
    definitions are hoisted into components by `describe_errors`."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    return {"requestBody": {"required": True,
                            "content": {media_type: {"schema": schema}}}}


def describe_errors(spec: dict[str, Any]) -> dict[str, Any]:
    """Every `/api/v1` operation's errors as problem documents (in place; returns `spec`)."""
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    schemas["Problem"] = PROBLEM_SCHEMA
    for path, operations in spec.get("paths", {}).items():
        for operation in operations.values():
            body = operation.get("requestBody", {})
            for media in body.get("content", {}).values():
                defs = media.get("schema", {}).pop("$defs", None)
                if defs:
                    schemas.update(defs)
            if not path.startswith("/api/"):
                continue
            responses = operation.setdefault("responses", {})
            for status, description in COMMON.items():
                responses[status] = problem_response(description)
            for status, entry in list(responses.items()):
                if status.startswith(("4", "5")) and status not in COMMON:
                    responses[status] = problem_response(entry.get("description") or DEFAULT)
            responses["default"] = problem_response(DEFAULT)
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    return spec


def install(app: FastAPI) -> None:
    """Replace the app's spec builder with one that describes errors truthfully (built once)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = describe_errors(get_openapi(
                title=app.title, version=app.version, description=app.description,
                routes=app.routes, tags=app.openapi_tags))
        return app.openapi_schema

    setattr(app, "openapi", openapi)  # noqa: B010 - FastAPI's documented override
