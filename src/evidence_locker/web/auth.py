"""Who is calling: a bearer token or a session cookie, resolved once per request."""

from __future__ import annotations

from starlette.requests import Request

from evidence_locker.accounts.roles import Principal
from evidence_locker.accounts.service import actor_for, resolve_session, resolve_token
from evidence_locker.audit.service import Actor
from evidence_locker.db import transaction
from evidence_locker.runtime import Runtime
from evidence_locker.web.problems import ApiError

SESSION_COOKIE = "locker_session"
#: The scope a person's API token needs for the JSON API and the pages (`locker tokens create`
#: gives it unless told otherwise). A token for one job only carries that job's scope and
#: reaches only its routes: `metrics` for Prometheus, `upload` for a dock.
API_SCOPE = "api"


def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


def resolve_principal(request: Request) -> Principal | None:
    """Blocking (database): call from a worker thread or a sync dependency."""
    if "principal" in request.scope.get("state", {}):
        cached: Principal | None = request.state.principal
        return cached
    runtime = runtime_of(request)
    principal: Principal | None = None
    auth = request.headers.get("authorization", "")
    with transaction(runtime.sessions) as session:
        if auth:
            scheme, _, secret = auth.partition(" ")
            if scheme.lower() != "bearer" or not secret.strip():
                raise ApiError(401, "Unauthorized", "use Authorization: Bearer <token>",
                               headers={"WWW-Authenticate": "Bearer"})
            principal = resolve_token(session, clock=runtime.clock, secret=secret.strip())
            if principal is None:
                raise ApiError(401, "Unauthorized", "the token is unknown, expired or revoked",
                               headers={"WWW-Authenticate": "Bearer"})
        else:
            cookie = request.cookies.get(SESSION_COOKIE)
            if cookie:
                found = resolve_session(session, clock=runtime.clock, secret=cookie)
                if found is not None:
                    principal = found[0]
                    request.state.csrf_token = found[1].csrf_token
    request.state.principal = principal
    return principal


def require_principal(request: Request, scope: str | None = API_SCOPE) -> Principal:
    """The caller, or 401. A bearer token must also carry `scope` (403 otherwise); a web session
    is the person at the browser, limited by their role alone. `scope=None` for the routes that
    check a scope of their own (tus and heartbeats: `upload`; /metrics: `metrics`)."""
    principal = resolve_principal(request)
    if principal is None:
        raise ApiError(401, "Unauthorized", "sign in or send a bearer token",
                       headers={"WWW-Authenticate": "Bearer"})
    if scope is not None and principal.token_id is not None and scope not in principal.scopes:
        raise ApiError(403, "Forbidden", f"this token does not have the {scope} scope")
    return principal


def actor_from(request: Request, principal: Principal) -> Actor:
    return actor_for(principal, client_ip(request), request.headers.get("user-agent"))
