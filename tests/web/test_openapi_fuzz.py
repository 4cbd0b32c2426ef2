"""OpenAPI-driven fuzzing (schemathesis) of the JSON API in process: every operation the app
describes, with valid and invalid inputs, as a professional-standards user (the widest footage
role: restrictions, audit trails), as an officer, and, where the operation is theirs, as an
auditor and a fleet administrator. No answer may be a 5xx, and every error must be a problem
document (RFC 9457) whose status is the response's.

Half the cases use the path parameters of things that exist (a recording the callers can see, a
camera, a user) so the fuzzing gets past "no such thing". The tus routes and the dock
heartbeat read their headers and bodies themselves; web/openapi.py and their `openapi_extra`
describe those, so the fuzzing reaches past their first check (the tus and heartbeat suites
test the protocols properly). Runs once (on the embedded default, not in the scale-out list of
scripts/test.sh): it tests the HTTP layer's handling of inputs, which the deployment does not
change; tests/web/test_security.py covers the database-specific inputs on both."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from matrix_world import World, build_world
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

# tus bodies are raw bytes under their own media type; send them as schemathesis sends any binary.
schemathesis.serializer.alias("application/offset+octet-stream", "application/octet-stream")

# Once: the HTTP layer's handling of inputs does not change with the deployment.
pytestmark = pytest.mark.embedded_only

#: No 5xx, and every answer as the description says: a documented status, a documented content
#: type, a body that matches its schema (web/openapi.py describes every error as a problem).
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]

EXAMPLES = 25  # per operation, caller and kind of input: a bounded run, not a soak


def _problem(case: Any, response: Any) -> str | None:
    """What is wrong with an error answer, or None. A HEAD answer has no body to judge."""
    if response.status_code < 400 or case.method.upper() == "HEAD":
        return None
    content_type = (response.headers.get("content-type") or [""])[0]  # name -> list of values
    if content_type.split(";")[0] != "application/problem+json":
        return f"{response.status_code} without application/problem+json"
    body = response.json()
    if not isinstance(body, dict) or body.get("status") != response.status_code or \
            not isinstance(body.get("title"), str) or not body["title"]:
        return f"{response.status_code} with a malformed problem document: {response.text[:200]}"
    return None


def callers_for(path: str) -> list[str]:
    who = ["standards", "officer1"]
    if path.startswith("/api/v1/audit"):
        who.append("auditor")
    if path.startswith("/api/v1/fleet"):
        who.append("fleetadmin")
    return who


def fuzz(strategy: Any, headers: dict[str, str], key: str, failures: dict[str, str]) -> int:
    """EXAMPLES cases of one operation as one caller; the first failure is kept (with a curl
    command to reproduce it) and ends that pair. Returns the number of calls made."""
    calls = 0

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=strategy)
    def run(case: Any) -> None:
        nonlocal calls
        if key in failures:
            return
        response = case.call(headers=headers)
        calls += 1

        try:
            case.validate_response(response, checks=CHECKS, headers=headers)
        except Exception as exc:  # the check's report
            failures[key] = f"{exc}\n{case.as_curl_command(headers=headers)}"
            return
        wrong = _problem(case, response)
        if wrong:
            failures[key] = f"{wrong}\n{case.as_curl_command(headers=headers)}"

    run()
    return calls


def test_fuzz_the_json_api(client, runtime, force, clock) -> None:
    world: World = build_world(client, runtime, force, clock)
    schema = schemathesis.openapi.from_asgi("/openapi.json", client.app)
    real = {"recording_id": world.recording, "serial": world.serial, "username": "sergeant1",
            "upload_id": world.upload_id, "case_id": world.case_id,
            "grant_id": world.case_grant_id}
    failures: dict[str, str] = {}
    operations = 0
    calls = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        params = [p.name for p in operation.path_parameters]
        fixed = {name: real[name] for name in params if name in real}
        strategies = [operation.as_strategy(generation_mode=mode)
                      for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)]
        if fixed:
            strategies += [operation.as_strategy(generation_mode=GenerationMode.POSITIVE,
                                                 path_parameters=fixed)]
        for username in callers_for(operation.path):
            headers = {"Authorization": f"Bearer {world.tokens[username]}"}
            calls += fuzz(st.one_of(strategies), headers, f"{operation.label} as {username}",
                          failures)
    assert operations >= 20, f"the schema describes only {operations} operations"
    assert calls >= 20 * operations, f"only {calls} calls for {operations} operations"
    assert not failures, f"{len(failures)} operation/caller pairs failed in {calls} calls:\n" + \
        "\n\n".join(f"{k}: {v}" for k, v in failures.items())
