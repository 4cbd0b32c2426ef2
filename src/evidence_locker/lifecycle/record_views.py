"""/api/v1/tombstones: what the retention sweep deleted, for the force's records manager, as
JSON pages or CSV, and a deletion certificate per tombstone (JSON or PDF).

Who may read: auditors (the records manager reads reports, never footage) and professional
standards (complaints: "was it deleted, when, under which rule?"). A tombstone holds no footage
but names the camera, officer and times of a recording, so nobody else; a restricted
recording's tombstone only to whom the recording was shown (its access list, and professional
standards unless it was post-incident: `records.shown_to`). Every read is an audit
event in the same transaction; a CSV export is audited before its rows stream out.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from starlette.responses import Response, StreamingResponse

from evidence_locker.accounts.roles import Principal, Role
from evidence_locker.audit import reports
from evidence_locker.audit.service import record
from evidence_locker.audit.views import key_ring
from evidence_locker.db import transaction
from evidence_locker.lifecycle import records, reviews
from evidence_locker.web.auth import actor_from, require_principal, runtime_of
from evidence_locker.web.problems import ApiError, aware

router = APIRouter(prefix="/api/v1/tombstones", tags=["lifecycle"])

#: The records manager's roles.
READERS = frozenset({Role.AUDITOR, Role.PROFESSIONAL_STANDARDS})


def may_read_tombstones(p: Principal) -> bool:
    return p.role in READERS and p.user_id is not None


def _reader(request: Request) -> Principal:
    principal = require_principal(request)
    if not may_read_tombstones(principal):
        raise ApiError(403, "Forbidden", "auditors and professional standards read tombstones")
    return principal


Reader = Annotated[Principal, Depends(_reader)]


def _headers(filename: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "private, no-store", "X-Content-Type-Options": "nosniff"}


@router.get("", responses={200: {"content": {"application/json": {}, "text/csv": {}}}})
def list_tombstones(
    request: Request, principal: Reader,
    since: dt.datetime | None = Query(None, alias="from", description="deleted at or after"),
    until: dt.datetime | None = Query(None, alias="to", description="deleted before"),
    unit: str | None = Query(None, max_length=32, description="unit code, with its sub-units"),
    format: str = Query("json", pattern="^(json|csv)$"),
    limit: int = Query(50, ge=1, le=500),
    cursor: str | None = Query(None, max_length=200),
) -> Any:
    """Finished deletions, oldest first: one page of JSON, or every one as CSV (streamed)."""
    runtime = runtime_of(request)
    since, until = aware(since, "from"), aware(until, "to")
    filters = {k: v for k, v in (("from", since.isoformat() if since else None),
                                 ("to", until.isoformat() if until else None),
                                 ("unit", unit)) if v}
    with transaction(runtime.sessions) as session:
        try:
            if format == "json":
                items, next_cursor = records.tombstone_page(
                    session, since=since, until=until, unit=unit, limit=limit, cursor=cursor,
                    viewer=principal)
            else:
                records.unit_named(session, unit)
        except reviews.QueueError as exc:
            raise ApiError(400, "Bad request", str(exc)) from exc
        except LookupError as exc:
            raise ApiError(400, "Bad request", str(exc)) from exc
        records.audit_export(session, clock=runtime.clock, actor=actor_from(request, principal),
                             via=f"api-{format}", filters=filters)
    if format == "json":
        return {"items": items, "next_cursor": next_cursor}

    def rows() -> Iterator[bytes]:
        # Its own read transaction: a year of deletions is never held in memory.
        with transaction(runtime.sessions) as s:
            for line in records.csv_lines(records.tombstone_rows(
                    s, since=since, until=until, unit=unit, viewer=principal)):
                yield line.encode("utf-8")

    return StreamingResponse(rows(), media_type="text/csv; charset=utf-8",
                             headers=_headers("tombstones.csv"))


@router.get("/{tombstone_id}/certificate",
            responses={200: {"content": {"application/json": {}, "application/pdf": {}}}})
def deletion_certificate(
    request: Request, principal: Reader,
    tombstone_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
    format: str = Query("json", pattern="^(json|pdf)$"),
) -> Any:
    """A deletion certificate: the tombstone, and the deleted recording's audit trail with its
    chain checked and the covering signed checkpoint."""
    runtime = runtime_of(request)
    with transaction(runtime.sessions) as session:
        try:
            cert = records.certificate(session, tombstone_id=tombstone_id,
                                       keys=key_ring(runtime), viewer=principal)
        except LookupError as exc:
            raise ApiError(404, "Not found", str(exc)) from exc
        body: Any
        if format == "json":
            body = {"tombstone": records.tombstone_json(session, cert.tombstone),
                    "events": [{**reports.as_dict(e), "intact": reports.intact(e)}
                               for e in cert.events],
                    "chain": cert.chain.as_dict()}
        else:
            body = reports.to_pdf(
                title="Certificate of deletion",
                subject=f"tombstone {cert.tombstone.id}, recording {cert.tombstone.recording_id}",
                requested_by=principal.username, generated_at=runtime.clock.now(),
                events=cert.events, status=cert.chain, force_name=runtime.settings.force_name,
                facts=records.certificate_facts(session, cert))
        record(session, clock=runtime.clock, actor=actor_from(request, principal),
               action="tombstone.certificate_read", object_type="tombstone",
               object_id=str(tombstone_id),
               details={"format": format, "recording_id": str(cert.tombstone.recording_id),
                        "events": len(cert.events), "chain_ok": cert.chain.ok})
    if format == "json":
        return body
    return Response(body, media_type="application/pdf",
                    headers=_headers(f"deletion-{tombstone_id}.pdf"))
