"""FastAPI assembly: routers, error handlers, health. The app is built around one Runtime."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from sqlalchemy.exc import DataError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response

from evidence_locker import __version__
from evidence_locker.accounts.oidc import router as oidc_router
from evidence_locker.accounts.roles import Role
from evidence_locker.audit.views import pages as audit_pages
from evidence_locker.audit.views import router as audit_router
from evidence_locker.catalogue.views import router as recordings_router
from evidence_locker.db import transaction
from evidence_locker.fleet.views import pages as fleet_pages
from evidence_locker.fleet.views import router as fleet_router
from evidence_locker.ingest.tus import TUS_VERSION, TusError
from evidence_locker.ingest.views import router as uploads_router
from evidence_locker.lifecycle.case_pages import router as case_pages
from evidence_locker.lifecycle.case_views import router as cases_router
from evidence_locker.lifecycle.pages import router as lifecycle_pages
from evidence_locker.lifecycle.record_views import router as tombstones_router
from evidence_locker.lifecycle.views import lists as lifecycle_lists
from evidence_locker.lifecycle.views import router as lifecycle_router
from evidence_locker.runtime import Runtime
from evidence_locker.storage.base import StorageError
from evidence_locker.web import openapi
from evidence_locker.web.auth import require_principal
from evidence_locker.web.pages import router as pages_router
from evidence_locker.web.problems import ApiError, problem

log = logging.getLogger(__name__)


MAX_HEADER_BYTES = 64 * 1024
MAX_HEADERS = 100


class HeaderLimit:
    """431 for requests whose headers are too many or too large. uvicorn's httptools parser
    takes any size (its h11 limit does not apply), and `locker serve` may face the network
    without nginx in front of it; nothing else looks at headers before the routes do."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            headers = scope["headers"]
            if len(headers) > MAX_HEADERS or \
                    sum(len(k) + len(v) for k, v in headers) > MAX_HEADER_BYTES:
                response = problem(431, "Request Header Fields Too Large",
                                   f"at most {MAX_HEADERS} headers and {MAX_HEADER_BYTES} bytes")
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_app(runtime: Runtime, *, background: bool | None = None) -> FastAPI:
    """`background` starts the in-process job workers and the audit sequencer (default: from
    settings.run_workers)."""
    run_background = runtime.settings.run_workers if background is None else background

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from evidence_locker.audit.chain import Sequencer

        sequencer = None
        if run_background:
            runtime.jobs.start_workers(runtime.settings.job_workers)
            sequencer = Sequencer(runtime.sessions, clock=runtime.clock,
                                  interval=runtime.settings.sequencer_interval_seconds)
            sequencer.start()
        try:
            yield
        finally:
            if sequencer is not None:
                sequencer.stop()
            runtime.jobs.stop_workers()

    app = FastAPI(
        title="Evidence Locker",
        version=__version__,
        description="Digital evidence management for police body-worn video.",
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    app.add_middleware(HeaderLimit)
    openapi.install(app)

    @app.exception_handler(TusError)
    async def tus_error(request: Request, exc: TusError) -> Response:
        return problem(exc.status, exc.title, exc.detail,
                       headers={"Tus-Resumable": TUS_VERSION, "Tus-Version": TUS_VERSION})

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> Response:
        return problem(exc.status, exc.title, exc.detail, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg")} for e in exc.errors()]
        return problem(422, "Invalid request", "see errors", errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        return problem(exc.status_code, str(exc.detail), headers=getattr(exc, "headers", None))

    def unavailable(part: str) -> Callable[[Request, Exception], Awaitable[Response]]:
        async def handler(request: Request, exc: Exception) -> Response:
            log.error("%s failed on %s %s: %s", part, request.method, request.url.path, exc)
            return problem(503, "Service Unavailable",
                           f"the {part} cannot be reached; nothing unacknowledged was kept, retry",
                           headers={"Retry-After": "30", "Tus-Resumable": TUS_VERSION})

        return handler

    app.add_exception_handler(StorageError, unavailable("object store"))
    app.add_exception_handler(OperationalError, unavailable("database"))

    @app.exception_handler(DataError)
    async def unstorable(request: Request, exc: DataError) -> Response:
        """A value from the request that the database cannot hold or compare (a NUL character
        in PostgreSQL text, a number beyond its column): the request's fault, not the server's."""
        log.warning("the database refused a value on %s %s: %s", request.method,
                    request.url.path, exc.orig)
        return problem(400, "Bad request", "a value in the request cannot be stored or searched "
                       "for (a NUL character, or a number too large)")

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem(500, "Internal Server Error", "the error was logged")

    app.include_router(uploads_router)
    app.include_router(recordings_router)
    app.include_router(lifecycle_router)
    app.include_router(lifecycle_lists)
    app.include_router(lifecycle_pages)
    app.include_router(tombstones_router)
    app.include_router(cases_router)
    app.include_router(case_pages)
    app.include_router(audit_router)
    app.include_router(audit_pages)
    app.include_router(pages_router)
    app.include_router(oidc_router)
    app.include_router(fleet_router)
    app.include_router(fleet_pages)
    app.mount("/static", StaticFiles(directory=Path(__file__).parent / "static"), name="static")

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, Any]:
        return {"status": "ok", "version": __version__}

    @app.get("/readyz", include_in_schema=False)
    def readyz() -> Response:
        """Ready to take traffic: database, object store and queue reachable, space to ingest."""
        checks: dict[str, str] = {}

        def check(name: str, probe: Callable[[], object]) -> None:
            try:
                probe()
                checks[name] = "ok"
            except Exception as exc:  # noqa: BLE001 - readiness reports, it does not raise
                checks[name] = f"error: {exc.__class__.__name__}"

        def database() -> None:
            with transaction(runtime.sessions) as session:
                session.execute(text("SELECT 1"))

        check("database", database)
        check("storage", runtime.store.ping)
        check("queue", runtime.jobs.pending)
        free = runtime.store.free_bytes()
        if free is not None and free < runtime.settings.min_free_bytes:
            checks["storage"] = "below free-space floor"
        ok = all(v == "ok" for v in checks.values())
        return JSONResponse({"status": "ok" if ok else "unavailable", "checks": checks},
                            status_code=200 if ok else 503,
                            headers=None if ok else {"Retry-After": "30"})

    @app.get("/metrics", include_in_schema=False)
    def metrics(request: Request) -> Response:
        """Prometheus exposition, for a token with the `metrics` scope (or an administrator)."""
        principal = require_principal(request, scope=None)
        if "metrics" not in principal.scopes and principal.role != Role.SYSTEM_ADMINISTRATOR:
            raise ApiError(403, "Forbidden", "needs a token with the metrics scope")
        return Response(generate_latest(runtime.metrics.registry),
                        media_type=CONTENT_TYPE_LATEST)

    return app
