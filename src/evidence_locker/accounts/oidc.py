"""Optional OpenID Connect sign-in with the force's identity provider (IdP).

The authorization code flow with PKCE (S256), state and nonce, through authlib's Starlette client:

- `GET /login/oidc` sends the browser to the IdP. authlib's state, nonce and PKCE verifier ride in
  a short-lived, HMAC-signed, HttpOnly cookie scoped to /login/oidc, which binds the callback to
  the browser that started the flow (no login CSRF) and needs no server-side store, so any
  scale-out node can take the callback.
- `GET /login/oidc/callback` checks the state, redeems the code (with the verifier), validates
  the ID token (signature from the IdP's JWKS, issuer, audience, nonce, expiry), then maps the
  identity to a local user and opens the same web session as a password sign-in.

The IdP authenticates; Evidence Locker authorises. The identity maps, by one configured claim,
to an existing, active local user, whose role and unit stay managed here. Nobody is created on
a first sign-in: a role that lets someone see footage must be granted deliberately by an
administrator, not by whoever can get an account at the IdP. The IdP account's issuer and
subject are bound to the user at the first successful sign-in and checked at every later one,
so a username claim that changes hands at the IdP cannot take over another account.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
from dataclasses import dataclass
from typing import Any

import httpx
from authlib.common.errors import AuthlibBaseError
from authlib.integrations.base_client import MismatchingStateError, OAuthError
from authlib.integrations.starlette_client import OAuth, StarletteOAuth2App
from fastapi import APIRouter, Request
from joserfc.errors import JoseError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from evidence_locker.accounts.models import User, UserIdentity
from evidence_locker.accounts.service import (
    INACTIVE,
    LOCKED_OUT,
    UNKNOWN_USER,
    USERNAME_RE,
    create_session,
    locked_until,
    user_by_username,
)
from evidence_locker.audit import service as audit
from evidence_locker.clock import Clock
from evidence_locker.config import Settings, check_idp_url
from evidence_locker.db import transaction
from evidence_locker.fleet.models import Officer
from evidence_locker.web.auth import SESSION_COOKIE, client_ip, runtime_of
from evidence_locker.web.pages import render
from evidence_locker.web.problems import ApiError

log = logging.getLogger(__name__)

LOGIN_PATH = "/login/oidc"
CALLBACK_PATH = "/login/oidc/callback"
STATE_COOKIE = "locker_oidc_state"
# How long the browser may take at the IdP between leaving and coming back.
STATE_SECONDS = 600
METHOD = "oidc"

# Reasons on `session.login_failed` events, beside the password ones (unknown-user, inactive,
# locked-out) that mean the same here. None of them counts towards the password lock-out.
STATE_MISMATCH = "state-mismatch"  # no state, or a forged, expired or already used one
IDP_ERROR = "idp-error"  # the IdP answered the authorization request with an error
TOKEN_REFUSED = "token-refused"  # noqa: S105 - an audit reason: code or ID token refused
IDP_UNREACHABLE = "idp-unreachable"
ISSUER_MISMATCH = "issuer-mismatch"  # the response names another issuer (RFC 9207 mix-up)
MISSING_CLAIM = "missing-claim"
SUBJECT_MISMATCH = "subject-mismatch"  # the claimed user is bound to another IdP account
CLAIM_CHANGED = "claim-changed"  # this IdP account is bound to a user the claim no longer names
AMBIGUOUS = "ambiguous"  # a collar number linked to more than one user


# --- service -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class IdpIdentity:
    """Who the IdP says signed in: a verified ID token's issuer and subject, and the value of
    the claim that names the local account."""

    issuer: str
    subject: str
    claim: str
    value: str | None


@dataclass(frozen=True)
class OidcSignIn:
    """The outcome: the user to open a session for, or the refusal reason (never both)."""

    user: User | None
    reason: str | None
    bound_now: bool = False


def _claimed_user(session: Session, *, matches: str, value: str) -> tuple[User | None, str | None]:
    """The local user the claim names: by username, or through the officer with that collar
    number. Returns (user, refusal reason)."""
    if matches == "collar":
        officer = session.scalars(select(Officer).where(Officer.collar == value)).one_or_none()
        if officer is None:
            return None, UNKNOWN_USER
        users = list(session.scalars(select(User).where(User.officer_id == officer.id).limit(2)))
        if len(users) > 1:
            return None, AMBIGUOUS
        return (users[0], None) if users else (None, UNKNOWN_USER)
    name = value.strip().lower()
    user = user_by_username(session, name) if USERNAME_RE.fullmatch(name) else None
    return (user, None) if user is not None else (None, UNKNOWN_USER)


def sign_in(
    session: Session,
    *,
    clock: Clock,
    identity: IdpIdentity,
    matches: str,
    ip: str | None,
    user_agent: str | None,
) -> OidcSignIn:
    """Map a verified IdP identity to an active local user and record the outcome:
    `session.login` (method oidc) or `session.login_failed` with the reason. Binds the IdP
    subject to the user at the first success. Only flushes; the caller commits either way."""
    bound = session.scalars(
        select(UserIdentity).where(
            UserIdentity.issuer == identity.issuer, UserIdentity.subject == identity.subject
        )
    ).one_or_none()
    user: User | None = None if bound is None else session.get(User, bound.user_id)
    reason: str | None
    if not identity.value:
        reason = MISSING_CLAIM
    elif bound is not None:
        # The subject decides. A claim that now names another account (or none: a rename at
        # the IdP) is refused rather than followed, so that an administrator settles it.
        claimed, _ = _claimed_user(session, matches=matches, value=identity.value)
        same = claimed is not None and user is not None and claimed.id == user.id
        reason = None if same else CLAIM_CHANGED
    else:
        user, reason = _claimed_user(session, matches=matches, value=identity.value)
        if user is not None and session.scalars(
            select(UserIdentity.id).where(
                UserIdentity.user_id == user.id, UserIdentity.issuer == identity.issuer
            )
        ).first() is not None:
            # Bound to another subject of this IdP: a second IdP account claiming the name.
            reason = SUBJECT_MISMATCH
    if reason is None and user is not None:
        if not user.active:
            reason = INACTIVE
        elif locked_until(session, clock=clock, user=user) is not None:
            reason = LOCKED_OUT
    details: dict[str, Any] = {
        "method": METHOD,
        "issuer": identity.issuer,
        "subject": identity.subject,
        "claim": identity.claim,
        "claimed": None if identity.value is None else identity.value[:200],
    }
    if reason is not None or user is None:
        return _refuse(session, clock=clock, user=user, reason=reason or UNKNOWN_USER,
                       details=details, ip=ip, user_agent=user_agent)

    actor = audit.Actor(type="user", id=str(user.id), name=user.username, ip=ip,
                        user_agent=user_agent)
    bound_now = False
    if bound is None:
        link = UserIdentity(user_id=user.id, issuer=identity.issuer, subject=identity.subject,
                            created_at=clock.now())
        try:
            with session.begin_nested():
                session.add(link)
        except IntegrityError:  # a concurrent first sign-in bound this user or subject first
            return _refuse(session, clock=clock, user=user, reason=SUBJECT_MISMATCH,
                           details=details, ip=ip, user_agent=user_agent)
        audit.record(
            session,
            clock=clock,
            actor=actor,
            action="user.identity_bound",
            object_type="user",
            object_id=str(user.id),
            details={"username": user.username, "issuer": identity.issuer,
                     "subject": identity.subject},
        )
        bound_now = True
    audit.record(
        session,
        clock=clock,
        actor=actor,
        action="session.login",
        object_type="user",
        object_id=str(user.id),
        details={"username": user.username, **details, "bound_now": bound_now},
    )
    session.flush()
    return OidcSignIn(user=user, reason=None, bound_now=bound_now)


def _refuse(session: Session, *, clock: Clock, user: User | None, reason: str,
            details: dict[str, Any], ip: str | None, user_agent: str | None) -> OidcSignIn:
    """A refused sign-in, audited as coming from nobody (the IdP's word is not yet accepted)."""
    audit.record(
        session,
        clock=clock,
        actor=audit.Actor(type="anonymous", ip=ip, user_agent=user_agent),
        action="session.login_failed",
        object_type="user",
        object_id=None if user is None else str(user.id),
        reason=reason,
        details=details,
    )
    session.flush()
    return OidcSignIn(user=None, reason=reason)


def unbind_identities(session: Session, *, clock: Clock, actor: audit.Actor, user: User) -> int:
    """Forget the IdP accounts bound to a user, so that the next sign-in binds afresh: how an
    administrator settles a `subject-mismatch` or `claim-changed` refusal deliberately (the IdP
    account was replaced, or a rename was legitimate). Returns how many were removed; the audit
    trail keeps what they were."""
    links = list(session.scalars(select(UserIdentity).where(UserIdentity.user_id == user.id)))
    for link in links:
        audit.record(
            session,
            clock=clock,
            actor=actor,
            action="user.identity_unbound",
            object_type="user",
            object_id=str(user.id),
            details={"username": user.username, "issuer": link.issuer, "subject": link.subject},
        )
        session.delete(link)
    session.flush()
    return len(links)


def record_flow_failure(
    session: Session,
    *,
    clock: Clock,
    issuer: str,
    reason: str,
    detail: str | None,
    ip: str | None,
    user_agent: str | None,
) -> None:
    """Audit a sign-in that failed before anyone was identified (state, IdP or token errors)."""
    audit.record(
        session,
        clock=clock,
        actor=audit.Actor(type="anonymous", ip=ip, user_agent=user_agent),
        action="session.login_failed",
        object_type="user",
        object_id=None,
        reason=reason,
        details={"method": METHOD, "issuer": issuer, "detail": (detail or "")[:300]},
    )
    session.flush()


# --- the signed state cookie -------------------------------------------------------------------


def _mac(settings: Settings, payload: bytes) -> str:
    key = hashlib.sha256(b"locker-oidc-state:" + settings.resolved_secret_key.encode()).digest()
    return base64.urlsafe_b64encode(hmac.new(key, payload, hashlib.sha256).digest()).decode()


def dump_state(settings: Settings, data: dict[str, Any], *, issued_at: float) -> str:
    """Sign authlib's per-flow data (state, nonce, PKCE verifier, redirect URI) for the cookie.
    Signed, not encrypted: it goes only to the browser that started the flow (HttpOnly)."""
    payload = base64.urlsafe_b64encode(
        json.dumps({"iat": issued_at, "data": data}, separators=(",", ":")).encode()
    )
    return payload.decode() + "." + _mac(settings, payload)


def load_state(settings: Settings, cookie: str, *, now: float) -> dict[str, Any]:
    """The flow data from a state cookie, or {} when it is missing, forged or too old."""
    payload, _, mac = cookie.partition(".")
    if not payload or len(cookie) > 4096:
        return {}
    if not hmac.compare_digest(mac, _mac(settings, payload.encode())):
        return {}
    try:
        body = json.loads(base64.urlsafe_b64decode(payload.encode()))
    except ValueError:
        return {}
    if not isinstance(body, dict) or not isinstance(body.get("data"), dict):
        return {}
    issued = body.get("iat")
    if not isinstance(issued, int | float) or not 0 <= now - issued <= STATE_SECONDS:
        return {}
    data: dict[str, Any] = body["data"]
    return data


# --- the IdP client ----------------------------------------------------------------------------


class IdpClient:
    """authlib's client for the configured IdP, with discovery checked once: the issuer in the
    discovery document must be the configured one, its endpoints https (http only on loopback)."""

    def __init__(self, settings: Settings) -> None:
        assert settings.oidc_issuer is not None
        self.issuer = settings.oidc_issuer
        oauth = OAuth()
        app = oauth.register(
            name="idp",
            client_id=settings.oidc_client_id,
            client_secret=settings.oidc_client_secret,
            server_metadata_url=self.issuer.rstrip("/") + "/.well-known/openid-configuration",
            client_kwargs={"scope": settings.oidc_scopes, "code_challenge_method": "S256",
                           "timeout": 15.0},
        )
        assert isinstance(app, StarletteOAuth2App)
        self.app = app
        self._checked = False

    async def discover(self) -> None:
        if self._checked:
            return
        metadata = await self.app.load_server_metadata()
        if metadata.get("issuer") != self.issuer:
            self.app.server_metadata = {}
            raise ValueError(f"the discovery document names issuer {metadata.get('issuer')!r}, "
                             f"not the configured {self.issuer!r}")
        for key in ("authorization_endpoint", "token_endpoint", "jwks_uri", "userinfo_endpoint"):
            url = metadata.get(key)
            if key != "userinfo_endpoint" and not url:
                raise ValueError(f"the discovery document has no {key}")
            if url:
                check_idp_url(str(url))
        if "S256" not in metadata.get("code_challenge_methods_supported", ["S256"]):
            raise ValueError("the identity provider does not support PKCE with S256")
        self._checked = True


def _client(request: Request) -> IdpClient:
    settings = runtime_of(request).settings
    if not settings.oidc_enabled:
        raise ApiError(404, "Not Found", "OpenID Connect sign-in is not configured")
    client: IdpClient | None = getattr(request.app.state, "oidc_client", None)
    if client is None:
        client = request.app.state.oidc_client = IdpClient(settings)
    return client


# --- routes ------------------------------------------------------------------------------------

router = APIRouter(include_in_schema=False)

MESSAGES = {
    UNKNOWN_USER: "Your {idp} account ({value}) has no Evidence Locker account. Roles are "
                  "granted in Evidence Locker, not at {idp}: ask a system administrator to "
                  "create your account.",
    INACTIVE: "The Evidence Locker account for {value} is deactivated. Ask a system "
              "administrator if you need it again.",
    LOCKED_OUT: "This Evidence Locker account is locked after repeated failed sign-ins. "
                "Try again later.",
    SUBJECT_MISMATCH: "The Evidence Locker account {value} is linked to a different {idp} "
                      "account. Sign in with that one, or ask a system administrator.",
    CLAIM_CHANGED: "Your {idp} account is linked to a different Evidence Locker account than "
                   "the one {idp} now names ({value}). Ask a system administrator.",
    AMBIGUOUS: "More than one Evidence Locker account is linked to collar number {value}. "
               "Ask a system administrator.",
    MISSING_CLAIM: "{idp} did not say who you are (no {claim} claim).",
    STATE_MISMATCH: "This sign-in has expired, was already used, or was started in another "
                    "browser. Start again.",
    IDP_ERROR: "{idp} did not sign you in.",
    TOKEN_REFUSED: "{idp}'s answer could not be verified. Start again.",
    ISSUER_MISMATCH: "The answer did not come from {idp}. Start again.",
    IDP_UNREACHABLE: "{idp} cannot be reached or is misconfigured. Try again later, or sign "
                     "in with your password.",
}
STATUS = {STATE_MISMATCH: 400, TOKEN_REFUSED: 400, ISSUER_MISMATCH: 400, IDP_ERROR: 401,
          IDP_UNREACHABLE: 502}


def _refused(request: Request, reason: str, value: str | None = None) -> Response:
    settings = runtime_of(request).settings
    message = MESSAGES.get(reason, MESSAGES[UNKNOWN_USER]).format(
        idp=settings.oidc_display_name, value=value or "?", claim=settings.oidc_claim)
    response = render(request, "oidc_refused.html", {"message": message, "reason": reason},
                       status=STATUS.get(reason, 403))
    response.delete_cookie(STATE_COOKIE, path=LOGIN_PATH)
    return response


def _redirect_uri(request: Request, settings: Settings) -> str:
    return settings.oidc_redirect_uri or str(request.url_for("oidc_callback"))


@router.get(LOGIN_PATH, name="oidc_login")
async def oidc_login(request: Request) -> Response:
    """Start a sign-in at the IdP (the login page's "Sign in with ..." button)."""
    runtime = runtime_of(request)
    settings = runtime.settings
    client = _client(request)
    request.scope["session"] = {}
    try:
        await client.discover()
        redirect = await client.app.authorize_redirect(request, _redirect_uri(request, settings))
    except (httpx.HTTPError, ValueError, KeyError, AuthlibBaseError) as exc:
        log.error("OpenID Connect discovery at %s failed: %s", client.issuer, exc)
        return _refused(request, IDP_UNREACHABLE)
    response = RedirectResponse(redirect.headers["location"], status_code=303)
    response.set_cookie(
        STATE_COOKIE,
        dump_state(settings, dict(request.session), issued_at=runtime.clock.now().timestamp()),
        max_age=STATE_SECONDS, path=LOGIN_PATH, httponly=True,
        # Lax, not Strict: the IdP sends the browser back with a cross-site top-level GET.
        samesite="lax", secure=settings.secure_cookies,
    )
    return response


@router.get(CALLBACK_PATH, name="oidc_callback")
async def oidc_callback(request: Request) -> Response:
    """The IdP sends the browser back here with a code (or an error) and the state."""
    runtime = runtime_of(request)
    settings = runtime.settings
    client = _client(request)
    ip, user_agent = client_ip(request), request.headers.get("user-agent")
    request.scope["session"] = load_state(settings, request.cookies.get(STATE_COOKIE, ""),
                                          now=runtime.clock.now().timestamp())

    def flow_failed(reason: str, detail: str | None) -> Response:
        with transaction(runtime.sessions) as session:
            record_flow_failure(session, clock=runtime.clock, issuer=client.issuer,
                                reason=reason, detail=detail, ip=ip, user_agent=user_agent)
        return _refused(request, reason)

    token: dict[str, Any]
    try:
        await client.discover()
        # RFC 9207: an IdP that names itself in the response must name the configured issuer,
        # so that a code from another IdP (a mix-up attack) is never sent to this one.
        named = request.query_params.get("iss")
        says_it = client.app.server_metadata.get("authorization_response_iss_parameter_supported")
        if (named is not None or says_it) and named != client.issuer:
            return await run_in_threadpool(flow_failed, ISSUER_MISMATCH, named)
        token = await client.app.authorize_access_token(request)
        claims = dict(token.get("userinfo") or {})
        if not claims.get("sub") or not claims.get("iss"):
            raise OAuthError(description="no ID token in the token response")
        if not claims.get(settings.oidc_claim):
            # Many IdPs put profile claims only in the UserInfo response; it must be about the
            # same subject as the ID token (OpenID Connect Core 5.3.2).
            info = await client.app.userinfo(token=token)
            if info.get("sub") != claims["sub"]:
                raise OAuthError(description="the UserInfo subject differs from the ID token's")
            claims = {**info, **claims}
    except MismatchingStateError as exc:
        return await run_in_threadpool(flow_failed, STATE_MISMATCH, str(exc))
    except OAuthError as exc:
        reason = IDP_ERROR if request.query_params.get("error") else TOKEN_REFUSED
        return await run_in_threadpool(flow_failed, reason, f"{exc.error}: {exc.description}")
    except (AuthlibBaseError, JoseError) as exc:
        return await run_in_threadpool(flow_failed, TOKEN_REFUSED, repr(exc))
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        log.error("OpenID Connect sign-in at %s failed: %s", client.issuer, exc)
        return await run_in_threadpool(flow_failed, IDP_UNREACHABLE, repr(exc))

    value = claims.get(settings.oidc_claim)
    identity = IdpIdentity(issuer=str(claims["iss"]), subject=str(claims["sub"]),
                           claim=settings.oidc_claim,
                           value=None if value is None else str(value))

    def finish() -> tuple[OidcSignIn, str | None]:
        with transaction(runtime.sessions) as session:
            result = sign_in(session, clock=runtime.clock, identity=identity,
                             matches=settings.oidc_claim_matches, ip=ip, user_agent=user_agent)
            if result.user is None:
                return result, None
            # A fresh session id at every sign-in, as for passwords: no session fixation.
            secret, _ = create_session(session, clock=runtime.clock, user=result.user,
                                       hours=settings.session_hours, ip=ip,
                                       user_agent=user_agent)
            return result, secret

    result, secret = await run_in_threadpool(finish)
    if secret is None:
        assert result.reason is not None
        return _refused(request, result.reason, identity.value)
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(SESSION_COOKIE, secret, httponly=True, samesite="lax",
                        secure=settings.secure_cookies, max_age=settings.session_hours * 3600)
    response.delete_cookie(STATE_COOKIE, path=LOGIN_PATH)
    return response
