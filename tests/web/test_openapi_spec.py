"""The published description says what the server answers: every API error is a problem
document, and the routes that read raw headers and bodies (tus, the dock heartbeat) describe
them. The fuzzing test holds real answers to this description; this one holds the description
to the API's shape, so a new route cannot fall back to FastAPI's defaults unnoticed."""

from __future__ import annotations

from typing import Any


def _operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(path, method, op) for path, ops in spec["paths"].items()
            for method, op in ops.items()]


def test_every_api_error_is_a_problem_document(client) -> None:
    spec = client.get("/openapi.json").json()
    operations = _operations(spec)
    assert len(operations) >= 20
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    for path, method, op in operations:
        assert path.startswith("/api/v1/"), path
        responses = op["responses"]
        for status in ("401", "403", "422", "503", "default"):
            content = responses[status]["content"]
            assert list(content) == ["application/problem+json"], (method, path, status)
        for status, entry in responses.items():
            if status[0] in "45":
                assert "application/problem+json" in entry["content"], (method, path, status)


def test_raw_routes_describe_their_headers_and_bodies(client) -> None:
    spec = client.get("/openapi.json").json()
    create = spec["paths"]["/api/v1/uploads/"]["post"]
    headers = {p["name"]: p for p in create["parameters"] if p["in"] == "header"}
    assert headers["Tus-Resumable"]["required"] and headers["Upload-Length"]["required"]
    patch = spec["paths"]["/api/v1/uploads/{upload_id}"]["patch"]
    assert "application/offset+octet-stream" in patch["requestBody"]["content"]
    assert any(p["name"] == "Upload-Offset" for p in patch["parameters"])
    heartbeat = spec["paths"]["/api/v1/docks/heartbeat"]["post"]
    schema = heartbeat["requestBody"]["content"]["application/json"]["schema"]
    assert {"agent_version", "bays", "sent_at", "cameras"} <= set(schema["required"])
    camera_ref = schema["properties"]["cameras"]["items"]["$ref"]
    assert camera_ref.rsplit("/", 1)[1] in spec["components"]["schemas"]
