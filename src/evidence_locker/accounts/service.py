"""Accounts use cases: users, passwords, API tokens and web sessions.

Every function takes the caller's session and only flushes: the caller owns the transaction, so a
change and its audit event commit (or roll back) together. Secrets (passwords, bearer tokens,
session cookies) are never stored: passwords as argon2id hashes, tokens and cookies as SHA-256.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
from collections.abc import Iterable
from typing import TYPE_CHECKING

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from evidence_locker.accounts.models import ApiToken, User, WebSession
from evidence_locker.accounts.roles import Principal, Role
from evidence_locker.audit import service as audit
from evidence_locker.audit.models import AuditEvent
from evidence_locker.clock import Clock
from evidence_locker.fleet.models import Dock, Officer, Unit

if TYPE_CHECKING:
    from evidence_locker.config import Settings

USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
# Scope names are stored space-separated, so they must not contain spaces.
SCOPE_RE = re.compile(r"^[a-z][a-z0-9:_-]{0,31}$")
TOKEN_PREFIX = "elk_"  # noqa: S105 - a prefix, not a secret
MIN_PASSWORD_LENGTH = 12
# Argon2 cost grows with input; nobody types a longer password, so refuse it early.
MAX_PASSWORD_LENGTH = 1024

# Lock-out: this many bad passwords within LOCKOUT_WINDOW refuse the account for LOCKOUT_PERIOD.
LOCKOUT_FAILURES = 5
LOCKOUT_WINDOW = dt.timedelta(minutes=15)
LOCKOUT_PERIOD = dt.timedelta(minutes=15)

# Reasons recorded on `session.login_failed` events; only BAD_PASSWORD counts towards lock-out,
# so attempts refused during a lock-out do not extend it.
BAD_PASSWORD = "bad-password"  # noqa: S105 - an audit reason
LOCKED_OUT = "locked-out"
UNKNOWN_USER = "unknown-user"
INACTIVE = "inactive"
NO_PASSWORD = "no-password"  # noqa: S105 - an audit reason


class AccountsError(ValueError):
    """A request the accounts service refuses; the message is fit to show to the operator."""


class Passwords:
    """Argon2id hashing with explicit cost, so tests can run with cheap parameters."""

    def __init__(self, time_cost: int, memory_cost: int) -> None:
        self._hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_cost)
        self._dummy: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Passwords:
        return cls(settings.argon2_time_cost, settings.argon2_memory_cost)

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, password_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        try:
            return self._hasher.check_needs_rehash(password_hash)
        except InvalidHashError:
            return True

    def burn(self, password: str) -> None:
        """Spend the time of one verification, so an unknown or locked account answers no faster
        than a wrong password and does not reveal itself by timing."""
        if self._dummy is None:
            self._dummy = self._hasher.hash(secrets.token_urlsafe(16))
        self.verify(self._dummy, password)


def token_digest(secret: str) -> str:
    """SHA-256 of a bearer token or session cookie: what the database keeps instead of it.

    A plain hash is enough (unlike passwords) because the secrets carry 256 random bits."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def actor_for(
    principal: Principal, ip: str | None = None, user_agent: str | None = None
) -> audit.Actor:
    """The audit actor for an authenticated caller."""
    if principal.user_id is None and principal.dock_id is not None:
        return audit.Actor(
            type="dock",
            id=str(principal.dock_id),
            name=principal.username,
            ip=ip,
            user_agent=user_agent,
        )
    return audit.Actor(
        type="user",
        id=None if principal.user_id is None else str(principal.user_id),
        name=principal.username,
        ip=ip,
        user_agent=user_agent,
    )


def _user_actor(user: User, ip: str | None = None, user_agent: str | None = None) -> audit.Actor:
    return audit.Actor(
        type="user", id=str(user.id), name=user.username, ip=ip, user_agent=user_agent
    )


def principal_for_user(
    session: Session,
    user: User,
    *,
    token_id: int | None = None,
    scopes: Iterable[str] = frozenset(),
) -> Principal:
    """The rules' view of a user: role, unit subtree (materialised path) and officer identity."""
    unit_path: str | None = None
    if user.unit_id is not None:
        unit = session.get(Unit, user.unit_id)
        unit_path = unit.path if unit is not None else None
    return Principal(
        user_id=user.id,
        username=user.username,
        role=Role(user.role),
        unit_path=unit_path,
        officer_id=user.officer_id,
        token_id=token_id,
        scopes=frozenset(scopes),
    )


# --- users -------------------------------------------------------------------------------------


def user_by_username(session: Session, username: str) -> User | None:
    return session.scalars(select(User).where(User.username == username)).one_or_none()


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountsError(f"password must be at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise AccountsError(f"password must be at most {MAX_PASSWORD_LENGTH} characters")


def generate_password() -> str:
    """A random password for a new account (16 URL-safe characters, 96 bits)."""
    return secrets.token_urlsafe(12)


def create_user(
    session: Session,
    *,
    clock: Clock,
    actor: audit.Actor,
    passwords: Passwords,
    username: str,
    role: str,
    unit_code: str | None = None,
    officer_collar: str | None = None,
    display_name: str = "",
    password: str | None = None,
) -> tuple[User, str | None]:
    """Create an account. Returns the user and the generated password when none was given, so it
    can be shown once to whoever hands it over.

    A user linked to an officer but given no unit takes the officer's unit, so that supervisors
    and evidence officers see their unit's footage without being entered twice."""
    if not USERNAME_RE.fullmatch(username):
        raise AccountsError(
            f"invalid username {username!r}: 2-64 characters, lower-case letters, digits, "
            "'.', '_' or '-', starting with a letter or digit"
        )
    try:
        role_value = Role(role)
    except ValueError:
        known = ", ".join(r.value for r in Role)
        raise AccountsError(f"unknown role {role!r}; known roles: {known}") from None
    if len(display_name) > 200:
        raise AccountsError("display name must be at most 200 characters")
    if user_by_username(session, username) is not None:
        raise AccountsError(f"user {username!r} already exists")

    officer: Officer | None = None
    if officer_collar is not None:
        officer = session.scalars(
            select(Officer).where(Officer.collar == officer_collar)
        ).one_or_none()
        if officer is None:
            raise AccountsError(f"unknown officer collar number {officer_collar!r}")
    unit: Unit | None = None
    if unit_code is not None:
        unit = session.scalars(select(Unit).where(Unit.code == unit_code)).one_or_none()
        if unit is None:
            raise AccountsError(f"unknown unit code {unit_code!r}")
    unit_id = unit.id if unit is not None else (officer.unit_id if officer is not None else None)

    generated: str | None = None
    if password is None:
        password = generated = generate_password()
    _check_password(password)

    user = User(
        username=username,
        display_name=display_name,
        role=role_value.value,
        unit_id=unit_id,
        officer_id=officer.id if officer is not None else None,
        password_hash=passwords.hash(password),
        active=True,
        created_at=clock.now(),
    )
    session.add(user)
    try:
        session.flush()
    except IntegrityError as exc:  # a concurrent creation of the same name
        raise AccountsError(f"user {username!r} already exists") from exc
    audit.record(
        session,
        clock=clock,
        actor=actor,
        action="user.created",
        object_type="user",
        object_id=str(user.id),
        details={
            "username": username,
            "role": role_value.value,
            "unit_id": unit_id,
            "officer_id": user.officer_id,
            "password_generated": generated is not None,
        },
    )
    session.flush()
    return user, generated


def _end_sessions(session: Session, user: User, now: dt.datetime) -> int:
    result = session.execute(
        update(WebSession)
        .where(WebSession.user_id == user.id, WebSession.ended_at.is_(None))
        .values(ended_at=now)
        .execution_options(synchronize_session="fetch")
    )
    return int(getattr(result, "rowcount", 0) or 0)


def set_password(
    session: Session,
    *,
    clock: Clock,
    actor: audit.Actor,
    passwords: Passwords,
    user: User,
    password: str,
) -> None:
    """Replace a user's password and end their web sessions, so a stolen cookie dies with the
    old password."""
    _check_password(password)
    now = clock.now()
    user.password_hash = passwords.hash(password)
    ended = _end_sessions(session, user, now)
    audit.record(
        session,
        clock=clock,
        actor=actor,
        action="user.password_set",
        object_type="user",
        object_id=str(user.id),
        details={"username": user.username, "sessions_ended": ended},
    )
    session.flush()


def deactivate_user(session: Session, *, clock: Clock, actor: audit.Actor, user: User) -> None:
    """Switch an account off. Never a delete: the audit trail keeps referring to the user. Their
    sessions end and their tokens are revoked at once."""
    if not user.active:
        raise AccountsError(f"user {user.username!r} is already inactive")
    now = clock.now()
    user.active = False
    ended = _end_sessions(session, user, now)
    revoked = session.execute(
        update(ApiToken)
        .where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=now)
        .execution_options(synchronize_session="fetch")
    )
    audit.record(
        session,
        clock=clock,
        actor=actor,
        action="user.deactivated",
        object_type="user",
        object_id=str(user.id),
        details={
            "username": user.username,
            "sessions_ended": ended,
            "tokens_revoked": int(getattr(revoked, "rowcount", 0) or 0),
        },
    )
    session.flush()


# --- authentication ----------------------------------------------------------------------------


def locked_until(session: Session, *, clock: Clock, user: User) -> dt.datetime | None:
    """When the account's lock-out ends, or None if it is not locked.

    Derived from the audit log rather than a counter, so that it holds across processes without
    a schema change: a lock starts at a bad password that is the LOCKOUT_FAILURES-th within
    LOCKOUT_WINDOW since the last successful login, and lasts LOCKOUT_PERIOD. Attempts refused
    while locked are not bad passwords, so they neither extend the lock nor count afterwards.
    """
    now = clock.now()
    uid = str(user.id)
    last_ok = (
        select(func.coalesce(func.max(AuditEvent.id), 0))
        .where(
            AuditEvent.action == "session.login",
            AuditEvent.object_type == "user",
            AuditEvent.object_id == uid,
        )
        .scalar_subquery()
    )
    # A lock still running began within LOCKOUT_PERIOD and its failures within LOCKOUT_WINDOW
    # before that, so nothing older matters.
    times = list(
        session.scalars(
            select(AuditEvent.occurred_at)
            .where(
                AuditEvent.action == "session.login_failed",
                AuditEvent.object_type == "user",
                AuditEvent.object_id == uid,
                AuditEvent.reason == BAD_PASSWORD,
                AuditEvent.occurred_at > now - LOCKOUT_PERIOD - LOCKOUT_WINDOW,
                AuditEvent.id > last_ok,
            )
            .order_by(AuditEvent.occurred_at.desc(), AuditEvent.id.desc())
            .limit(200)
        )
    )
    times.reverse()
    until: dt.datetime | None = None
    n = LOCKOUT_FAILURES - 1
    for i in range(n, len(times)):
        if times[i] - times[i - n] <= LOCKOUT_WINDOW:
            end = times[i] + LOCKOUT_PERIOD
            if until is None or end > until:
                until = end
    return until if until is not None and until > now else None


def authenticate(
    session: Session,
    *,
    clock: Clock,
    passwords: Passwords,
    username: str,
    password: str,
    ip: str | None,
    user_agent: str | None,
) -> User | None:
    """Check a username and password. Records `session.login` or `session.login_failed` (with the
    reason in the event's `reason` column); the caller must commit even when this returns None,
    or failures are forgotten and the lock-out never engages."""
    claimed = username.strip().lower()
    user = user_by_username(session, claimed) if USERNAME_RE.fullmatch(claimed) else None
    failed_actor = audit.Actor(type="anonymous", ip=ip, user_agent=user_agent)
    too_long = len(password) > MAX_PASSWORD_LENGTH

    def fail(reason: str) -> None:
        audit.record(
            session,
            clock=clock,
            actor=failed_actor,
            action="session.login_failed",
            object_type="user",
            object_id=None if user is None else str(user.id),
            reason=reason,
            details={"username": username[:100]},
        )
        session.flush()

    if user is None:
        passwords.burn(password[:MAX_PASSWORD_LENGTH])
        fail(UNKNOWN_USER)
        return None
    if locked_until(session, clock=clock, user=user) is not None:
        passwords.burn(password[:MAX_PASSWORD_LENGTH])
        fail(LOCKED_OUT)
        return None
    if user.password_hash is None:
        passwords.burn(password[:MAX_PASSWORD_LENGTH])
        fail(NO_PASSWORD)
        return None
    if too_long or not passwords.verify(user.password_hash, password):
        fail(BAD_PASSWORD)
        return None
    if not user.active:
        fail(INACTIVE)
        return None

    rehashed = passwords.needs_rehash(user.password_hash)
    if rehashed:  # the configured cost changed since this hash was made
        user.password_hash = passwords.hash(password)
    audit.record(
        session,
        clock=clock,
        actor=_user_actor(user, ip, user_agent),
        action="session.login",
        object_type="user",
        object_id=str(user.id),
        details={"username": user.username, "rehashed": rehashed},
    )
    session.flush()
    return user


# --- API tokens --------------------------------------------------------------------------------


def _scopes_text(scopes: Iterable[str]) -> str:
    clean = sorted(set(scopes))
    if not clean:
        raise AccountsError("a token needs at least one scope")
    for scope in clean:
        if not SCOPE_RE.fullmatch(scope):
            raise AccountsError(f"invalid scope {scope!r}")
    text = " ".join(clean)
    if len(text) > 200:
        raise AccountsError("too many scopes")
    return text


def issue_api_token(
    session: Session,
    *,
    clock: Clock,
    actor: audit.Actor,
    user: User | None = None,
    dock: Dock | None = None,
    scopes: Iterable[str],
    name: str = "",
    expires_in: dt.timedelta | None = None,
) -> tuple[ApiToken, str]:
    """Like `create_api_token`, but also returns the row (for its id)."""
    if (user is None) == (dock is None):
        raise AccountsError("a token belongs to exactly one user or one dock")
    if user is not None and not user.active:
        raise AccountsError(f"user {user.username!r} is inactive")
    if dock is not None and not dock.active:
        raise AccountsError(f"dock {dock.name!r} is inactive")
    if expires_in is not None and expires_in <= dt.timedelta(0):
        raise AccountsError("a token's lifetime must be positive")
    if len(name) > 100:
        raise AccountsError("token name must be at most 100 characters")
    scope_text = _scopes_text(scopes)
    now = clock.now()
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(
        token_hash=token_digest(secret),
        name=name,
        user_id=None if user is None else user.id,
        dock_id=None if dock is None else dock.id,
        scopes=scope_text,
        created_at=now,
        expires_at=None if expires_in is None else now + expires_in,
        revoked_at=None,
    )
    session.add(token)
    session.flush()
    audit.record(
        session,
        clock=clock,
        actor=actor,
        action="token.created",
        object_type="api_token",
        object_id=str(token.id),
        details={
            "name": name,
            "user": None if user is None else user.username,
            "dock": None if dock is None else dock.name,
            "scopes": scope_text.split(),
            "expires_at": None if token.expires_at is None else token.expires_at.isoformat(),
        },
    )
    session.flush()
    return token, secret


def create_api_token(
    session: Session,
    *,
    clock: Clock,
    actor: audit.Actor,
    user: User | None = None,
    dock: Dock | None = None,
    scopes: Iterable[str],
    name: str = "",
    expires_in: dt.timedelta | None = None,
) -> str:
    """Issue a bearer token for a user or a dock; returns the secret, which is shown only once."""
    _, secret = issue_api_token(
        session,
        clock=clock,
        actor=actor,
        user=user,
        dock=dock,
        scopes=scopes,
        name=name,
        expires_in=expires_in,
    )
    return secret


def resolve_token(session: Session, *, clock: Clock, secret: str) -> Principal | None:
    """The caller a bearer token stands for, or None if it is unknown, revoked, expired, or its
    user or dock is inactive."""
    if not secret.startswith(TOKEN_PREFIX) or len(secret) > 200:
        return None
    token = session.scalars(
        select(ApiToken).where(ApiToken.token_hash == token_digest(secret))
    ).one_or_none()
    if token is None or token.revoked_at is not None:
        return None
    if token.expires_at is not None and token.expires_at <= clock.now():
        return None
    scopes = frozenset(token.scopes.split())
    if token.user_id is not None:
        user = session.get(User, token.user_id)
        if user is None or not user.active:
            return None
        return principal_for_user(session, user, token_id=token.id, scopes=scopes)
    if token.dock_id is not None:
        dock = session.get(Dock, token.dock_id)
        if dock is None or not dock.active:
            return None
        return Principal(
            user_id=None,
            username=f"dock:{dock.name}",
            role=None,
            dock_id=dock.id,
            token_id=token.id,
            scopes=scopes,
        )
    return None


def revoke_token(session: Session, *, clock: Clock, actor: audit.Actor, token_id: int) -> ApiToken:
    """Revoke a token by id; the row stays, so the audit trail can still name it."""
    token = session.get(ApiToken, token_id)
    if token is None:
        raise AccountsError(f"no token with id {token_id}")
    if token.revoked_at is not None:
        raise AccountsError(f"token {token_id} is already revoked")
    token.revoked_at = clock.now()
    audit.record(
        session,
        clock=clock,
        actor=actor,
        action="token.revoked",
        object_type="api_token",
        object_id=str(token.id),
        details={"name": token.name, "user_id": token.user_id, "dock_id": token.dock_id},
    )
    session.flush()
    return token


# --- web sessions ------------------------------------------------------------------------------


def create_session(
    session: Session,
    *,
    clock: Clock,
    user: User,
    hours: float,
    ip: str | None = None,
    user_agent: str | None = None,
) -> tuple[str, str]:
    """Open a web session for an authenticated user; returns (cookie secret, CSRF token)."""
    if hours <= 0:
        raise AccountsError("a session's lifetime must be positive")
    if not user.active:
        raise AccountsError(f"user {user.username!r} is inactive")
    now = clock.now()
    secret = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    web_session = WebSession(
        token_hash=token_digest(secret),
        user_id=user.id,
        csrf_token=csrf,
        created_at=now,
        expires_at=now + dt.timedelta(hours=hours),
        ended_at=None,
    )
    session.add(web_session)
    session.flush()
    audit.record(
        session,
        clock=clock,
        actor=_user_actor(user, ip, user_agent),
        action="session.created",
        object_type="web_session",
        object_id=str(web_session.id),
        details={"username": user.username, "expires_at": web_session.expires_at.isoformat()},
    )
    session.flush()
    return secret, csrf


def _live_session(session: Session, *, clock: Clock, secret: str) -> WebSession | None:
    if not secret or len(secret) > 200:
        return None
    web_session = session.scalars(
        select(WebSession).where(WebSession.token_hash == token_digest(secret))
    ).one_or_none()
    if web_session is None or web_session.ended_at is not None:
        return None
    if web_session.expires_at <= clock.now():
        return None
    return web_session


def resolve_session(
    session: Session, *, clock: Clock, secret: str
) -> tuple[Principal, WebSession] | None:
    """The user behind a session cookie, or None if it is unknown, ended, expired or the user is
    inactive. The WebSession carries the CSRF token to compare against."""
    web_session = _live_session(session, clock=clock, secret=secret)
    if web_session is None:
        return None
    user = session.get(User, web_session.user_id)
    if user is None or not user.active:
        return None
    return principal_for_user(session, user), web_session


def end_session(
    session: Session,
    *,
    clock: Clock,
    secret: str,
    ip: str | None = None,
    user_agent: str | None = None,
) -> bool:
    """Log out: end the session behind a cookie. Returns False if there was no live session."""
    web_session = _live_session(session, clock=clock, secret=secret)
    if web_session is None:
        return False
    web_session.ended_at = clock.now()
    user = session.get(User, web_session.user_id)
    actor = (
        _user_actor(user, ip, user_agent)
        if user is not None
        else audit.Actor(type="user", id=str(web_session.user_id), ip=ip, user_agent=user_agent)
    )
    audit.record(
        session,
        clock=clock,
        actor=actor,
        action="session.logout",
        object_type="web_session",
        object_id=str(web_session.id),
        details={"user_id": web_session.user_id},
    )
    session.flush()
    return True
