"""Accounts service on a real, migrated SQLite database."""

from __future__ import annotations

import datetime as dt
import hashlib
import json

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from evidence_locker.accounts import service
from evidence_locker.accounts.models import ApiToken, User, WebSession
from evidence_locker.accounts.roles import Principal, Role
from evidence_locker.accounts.service import AccountsError, Passwords
from evidence_locker.audit.models import AuditEvent
from evidence_locker.audit.service import Actor
from evidence_locker.clock import FixedClock
from evidence_locker.fleet import service as fleet

PW = "correct horse battery"


def events(session: Session, action: str | None = None) -> list[AuditEvent]:
    q = select(AuditEvent).order_by(AuditEvent.id)
    if action is not None:
        q = q.where(AuditEvent.action == action)
    return list(session.scalars(q))


@pytest.fixture
def units(session: Session) -> None:
    fleet.create_unit(session, code="MPS", name="Met", kind="force")
    fleet.create_unit(session, code="BX", name="Bexley", kind="command", parent_code="MPS")
    fleet.create_unit(session, code="BX-RT", name="Response", kind="unit", parent_code="BX")
    fleet.create_officer(session, collar="1234BX", name="PC Smith", unit_code="BX-RT")


def make_user(
    session: Session,
    clock: FixedClock,
    admin: Actor,
    passwords: Passwords,
    username: str = "alice",
    role: str = "officer",
    **kw: str,
) -> User:
    user, _ = service.create_user(
        session,
        clock=clock,
        actor=admin,
        passwords=passwords,
        username=username,
        role=role,
        password=PW,
        **kw,
    )
    return user


def login(
    session: Session,
    clock: FixedClock,
    passwords: Passwords,
    password: str = PW,
    username: str = "alice",
) -> User | None:
    return service.authenticate(
        session,
        clock=clock,
        passwords=passwords,
        username=username,
        password=password,
        ip="192.0.2.1",
        user_agent="pytest",
    )


# --- users -------------------------------------------------------------------------------------


def test_create_user_with_unit_and_officer(
    session: Session, clock: FixedClock, admin: Actor, passwords: Passwords, units: None
) -> None:
    user, generated = service.create_user(
        session,
        clock=clock,
        actor=admin,
        passwords=passwords,
        username="pc.smith",
        role="officer",
        officer_collar="1234BX",
        display_name="PC Smith",
    )
    assert generated is not None and len(generated) >= service.MIN_PASSWORD_LENGTH
    assert user.password_hash is not None and user.password_hash.startswith("$argon2id$")
    assert generated not in user.password_hash
    assert user.officer_id is not None
    # The officer's unit is taken when no unit is given.
    p = service.principal_for_user(session, user)
    assert p == Principal(
        user_id=user.id,
        username="pc.smith",
        role=Role.OFFICER,
        unit_path="/MPS/BX/BX-RT/",
        officer_id=user.officer_id,
    )
    (ev,) = events(session, "user.created")
    assert ev.object_id == str(user.id) and ev.actor_name == "test-admin"
    details = json.loads(ev.details)
    assert details["role"] == "officer" and details["password_generated"] is True
    assert generated not in ev.details

    sup, none = service.create_user(
        session,
        clock=clock,
        actor=admin,
        passwords=passwords,
        username="sgt",
        role="supervisor",
        unit_code="BX",
        password=PW,
    )
    assert none is None
    assert service.principal_for_user(session, sup).unit_path == "/MPS/BX/"


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"username": "Alice"}, "invalid username"),
        ({"username": "a"}, "invalid username"),
        ({"username": "-alice"}, "invalid username"),
        ({"username": "al ice"}, "invalid username"),
        ({"username": "a" * 65}, "invalid username"),
        ({"role": "admin"}, "unknown role"),
        ({"unit_code": "NOPE"}, "unknown unit"),
        ({"officer_collar": "999"}, "unknown officer"),
        ({"password": "short"}, "at least"),
    ],
)
def test_create_user_rejects(
    session: Session,
    clock: FixedClock,
    admin: Actor,
    passwords: Passwords,
    kw: dict[str, str],
    message: str,
) -> None:
    args: dict[str, str] = {"username": "bob", "role": "auditor", "password": PW, **kw}
    with pytest.raises(AccountsError, match=message):
        service.create_user(session, clock=clock, actor=admin, passwords=passwords, **args)
    assert events(session) == []


def test_duplicate_username(
    session: Session, clock: FixedClock, admin: Actor, passwords: Passwords
) -> None:
    make_user(session, clock, admin, passwords)
    with pytest.raises(AccountsError, match="already exists"):
        make_user(session, clock, admin, passwords, role="auditor")


def test_all_design_roles_accepted(
    session: Session, clock: FixedClock, admin: Actor, passwords: Passwords
) -> None:
    for i, role in enumerate(Role):
        user = make_user(session, clock, admin, passwords, username=f"u{i}", role=role.value)
        assert service.principal_for_user(session, user).role is role


# --- authentication ----------------------------------------------------------------------------


def test_authenticate_ok_wrong_unknown(
    session: Session, clock: FixedClock, admin: Actor, passwords: Passwords
) -> None:
    user = make_user(session, clock, admin, passwords)
    assert login(session, clock, passwords) is user
    assert login(session, clock, passwords, username="  ALICE ") is user
    assert login(session, clock, passwords, password="wrong password!") is None
    assert login(session, clock, passwords, username="nobody") is None
    assert login(session, clock, passwords, username="not a valid name!") is None

    ok = events(session, "session.login")
    assert len(ok) == 2 and ok[0].actor_type == "user" and ok[0].ip == "192.0.2.1"
    failed = events(session, "session.login_failed")
    assert [(e.reason, e.object_id) for e in failed] == [
        (service.BAD_PASSWORD, str(user.id)),
        (service.UNKNOWN_USER, None),
        (service.UNKNOWN_USER, None),
    ]
    assert json.loads(failed[1].details) == {"username": "nobody"}
    assert all(PW not in e.details for e in events(session))


def test_authenticate_inactive(
    session: Session, clock: FixedClock, admin: Actor, passwords: Passwords
) -> None:
    user = make_user(session, clock, admin, passwords)
    service.deactivate_user(session, clock=clock, actor=admin, user=user)
    assert login(session, clock, passwords) is None
    assert events(session, "session.login_failed")[-1].reason == service.INACTIVE


def test_lockout_after_five_failures_and_release(
    session: Session, clock: FixedClock, admin: Actor, passwords: Passwords
) -> None:
    user = make_user(session, clock, admin, passwords)
    for _ in range(4):
        assert login(session, clock, passwords, password="wrong password!") is None
        clock.advance(dt.timedelta(minutes=1))
    assert service.locked_until(session, clock=clock, user=user) is None
    assert login(session, clock, passwords, password="wrong password!") is None
    fifth = clock.now()
    assert service.locked_until(session, clock=clock, user=user) == fifth + dt.timedelta(minutes=15)

    # The right password is refused while locked, and the refusal does not extend the lock.
    clock.advance(dt.timedelta(minutes=14))
    assert login(session, clock, passwords) is None
    assert events(session, "session.login_failed")[-1].reason == service.LOCKED_OUT
    clock.advance(dt.timedelta(minutes=1))
    assert login(session, clock, passwords) is user

    # A success resets the count.
    for _ in range(4):
        assert login(session, clock, passwords, password="wrong password!") is None
    assert login(session, clock, passwords) is user


def test_lockout_needs_failures_within_window(
    session: Session, clock: FixedClock, admin: Actor, passwords: Passwords
) -> None:
    user = make_user(session, clock, admin, passwords)
    for _ in range(8):
        assert login(session, clock, passwords, password="wrong password!") is None
        clock.advance(dt.timedelta(minutes=4))  # 5 failures span 16 minutes
    assert service.locked_until(session, clock=clock, user=user) is None
    assert login(session, clock, passwords) is user


def test_lockout_is_per_user_and_survives_a_new_session(
    factory: sessionmaker[Session], clock: FixedClock, admin: Actor, passwords: Passwords
) -> None:
    """Counters live in the audit table, so another process (session) sees them."""
    with factory() as s, s.begin():
        make_user(s, clock, admin, passwords)
        make_user(s, clock, admin, passwords, username="bob")
    for _ in range(5):
        with factory() as s, s.begin():
            assert login(s, clock, passwords, password="wrong password!") is None
    with factory() as s, s.begin():
        assert login(s, clock, passwords) is None
        assert login(s, clock, passwords, username="bob") is not None


def test_rehash_on_login_when_cost_changes(
    session: Session, clock: FixedClock, admin: Actor, passwords: Passwords
) -> None:
    user = make_user(session, clock, admin, passwords)
    old = user.password_hash
    stronger = Passwords(time_cost=2, memory_cost=1024)
    assert login(session, clock, stronger) is user
    assert user.password_hash != old and "t=2" in (user.password_hash or "")
    assert json.loads(events(session, "session.login")[-1].details)["rehashed"] is True


def test_set_password_ends_sessions(
    session: Session, clock: FixedClock, admin: Actor, passwords: Passwords
) -> None:
    user = make_user(session, clock, admin, passwords)
    cookie, _ = service.create_session(session, clock=clock, user=user, hours=12)
    with pytest.raises(AccountsError):
        service.set_password(
            session, clock=clock, actor=admin, passwords=passwords, user=user, password="x"
        )
    service.set_password(
        session,
        clock=clock,
        actor=admin,
        passwords=passwords,
        user=user,
        password="another long secret",
    )
    assert login(session, clock, passwords) is None
    assert login(session, clock, passwords, password="another long secret") is user
    assert service.resolve_session(session, clock=clock, secret=cookie) is None
    (ev,) = events(session, "user.password_set")
    assert json.loads(ev.details)["sessions_ended"] == 1
    assert "another long secret" not in ev.details


def test_deactivate_never_deletes_and_revokes(
    session: Session, clock: FixedClock, admin: Actor, passwords: Passwords
) -> None:
    user = make_user(session, clock, admin, passwords)
    secret = service.create_api_token(session, clock=clock, actor=admin, user=user, scopes={"api"})
    cookie, _ = service.create_session(session, clock=clock, user=user, hours=1)
    service.deactivate_user(session, clock=clock, actor=admin, user=user)
    assert session.get(User, user.id) is not None
    assert service.resolve_token(session, clock=clock, secret=secret) is None
    assert service.resolve_session(session, clock=clock, secret=cookie) is None
    token = session.scalars(select(ApiToken)).one()
    assert token.revoked_at == clock.now()
    (ev,) = events(session, "user.deactivated")
    assert json.loads(ev.details) == {"username": "alice", "sessions_ended": 1, "tokens_revoked": 1}
    with pytest.raises(AccountsError, match="already inactive"):
        service.deactivate_user(session, clock=clock, actor=admin, user=user)
    with pytest.raises(AccountsError, match="inactive"):
        service.create_api_token(session, clock=clock, actor=admin, user=user, scopes={"api"})


# --- API tokens --------------------------------------------------------------------------------


def test_token_create_resolve_revoke(
    session: Session, clock: FixedClock, admin: Actor, passwords: Passwords, units: None
) -> None:
    user = make_user(session, clock, admin, passwords, role="supervisor", unit_code="BX")
    secret = service.create_api_token(
        session, clock=clock, actor=admin, user=user, scopes={"api"}, name="laptop"
    )
    assert secret.startswith("elk_") and len(secret) > 40
    token = session.scalars(select(ApiToken)).one()
    assert token.token_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in token.token_hash and token.scopes == "api"

    p = service.resolve_token(session, clock=clock, secret=secret)
    assert p == Principal(
        user_id=user.id,
        username="alice",
        role=Role.SUPERVISOR,
        unit_path="/MPS/BX/",
        token_id=token.id,
        scopes=frozenset({"api"}),
    )
    assert service.actor_for(p, ip="192.0.2.9") == Actor(
        type="user", id=str(user.id), name="alice", ip="192.0.2.9"
    )
    assert service.resolve_token(session, clock=clock, secret=secret + "x") is None
    assert service.resolve_token(session, clock=clock, secret="elk_nothing") is None
    assert service.resolve_token(session, clock=clock, secret=token.token_hash) is None

    service.revoke_token(session, clock=clock, actor=admin, token_id=token.id)
    assert service.resolve_token(session, clock=clock, secret=secret) is None
    with pytest.raises(AccountsError, match="already revoked"):
        service.revoke_token(session, clock=clock, actor=admin, token_id=token.id)
    with pytest.raises(AccountsError, match="no token"):
        service.revoke_token(session, clock=clock, actor=admin, token_id=999)

    created, revoked = events(session, "token.created"), events(session, "token.revoked")
    assert [e.object_id for e in created] == [str(token.id)]
    assert [e.object_id for e in revoked] == [str(token.id)]
    assert json.loads(created[0].details)["scopes"] == ["api"]
    assert all(secret not in e.details for e in events(session))


def test_token_expires(
    session: Session, clock: FixedClock, admin: Actor, passwords: Passwords
) -> None:
    user = make_user(session, clock, admin, passwords)
    secret = service.create_api_token(
        session,
        clock=clock,
        actor=admin,
        user=user,
        scopes={"api", "upload"},
        expires_in=dt.timedelta(days=1),
    )
    p = service.resolve_token(session, clock=clock, secret=secret)
    assert p is not None and p.scopes == frozenset({"api", "upload"})
    clock.advance(dt.timedelta(hours=23, minutes=59))
    assert service.resolve_token(session, clock=clock, secret=secret) is not None
    clock.advance(dt.timedelta(minutes=1))
    assert service.resolve_token(session, clock=clock, secret=secret) is None


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"scopes": set()}, "at least one scope"),
        ({"scopes": {"two words"}}, "invalid scope"),
        ({"expires_in": dt.timedelta(0)}, "positive"),
        ({"user": None}, "exactly one"),
    ],
)
def test_token_rejects(
    session: Session,
    clock: FixedClock,
    admin: Actor,
    passwords: Passwords,
    kw: dict[str, object],
    message: str,
) -> None:
    user = make_user(session, clock, admin, passwords)
    args: dict[str, object] = {"user": user, "scopes": {"api"}, **kw}
    with pytest.raises(AccountsError, match=message):
        service.create_api_token(session, clock=clock, actor=admin, **args)  # type: ignore[arg-type]


def test_dock_token_principal(session: Session, clock: FixedClock, admin: Actor) -> None:
    dock, secret = fleet.register_dock(session, clock=clock, actor=admin, name="BX-dock-1")
    p = service.resolve_token(session, clock=clock, secret=secret)
    assert p is not None
    assert (p.user_id, p.role, p.dock_id, p.username, p.scopes) == (
        None,
        None,
        dock.id,
        "dock:BX-dock-1",
        frozenset({"upload"}),
    )
    assert service.actor_for(p) == Actor(type="dock", id=str(dock.id), name="dock:BX-dock-1")
    dock.active = False
    assert service.resolve_token(session, clock=clock, secret=secret) is None
    dock.active = True
    assert p.token_id is not None
    service.revoke_token(session, clock=clock, actor=admin, token_id=p.token_id)
    assert service.resolve_token(session, clock=clock, secret=secret) is None


# --- web sessions ------------------------------------------------------------------------------


def test_session_resolve_expire_end(
    session: Session, clock: FixedClock, admin: Actor, passwords: Passwords
) -> None:
    user = make_user(session, clock, admin, passwords)
    cookie, csrf = service.create_session(session, clock=clock, user=user, hours=12, ip="192.0.2.1")
    assert cookie != csrf
    stored = session.scalars(select(WebSession)).one()
    assert stored.token_hash == service.token_digest(cookie) and stored.csrf_token == csrf

    resolved = service.resolve_session(session, clock=clock, secret=cookie)
    assert resolved is not None
    principal, ws = resolved
    assert principal.user_id == user.id and principal.role is Role.OFFICER
    assert ws.csrf_token == csrf
    assert service.resolve_session(session, clock=clock, secret="nope") is None
    assert service.resolve_session(session, clock=clock, secret="") is None

    clock.advance(dt.timedelta(hours=12))
    assert service.resolve_session(session, clock=clock, secret=cookie) is None
    assert service.end_session(session, clock=clock, secret=cookie) is False

    cookie2, _ = service.create_session(session, clock=clock, user=user, hours=1)
    assert service.end_session(session, clock=clock, secret=cookie2, ip="192.0.2.1") is True
    assert service.resolve_session(session, clock=clock, secret=cookie2) is None
    assert service.end_session(session, clock=clock, secret=cookie2) is False

    assert len(events(session, "session.created")) == 2
    (logout,) = events(session, "session.logout")
    assert logout.actor_name == "alice" and logout.ip == "192.0.2.1"
    assert all(cookie not in e.details and cookie2 not in e.details for e in events(session))
    with pytest.raises(AccountsError):
        service.create_session(session, clock=clock, user=user, hours=0)


def test_audit_written_in_same_transaction(
    factory: sessionmaker[Session], clock: FixedClock, admin: Actor, passwords: Passwords
) -> None:
    """Services only flush: rolling back the caller's transaction drops change and event alike."""
    with factory() as s:
        make_user(s, clock, admin, passwords)
        s.rollback()
    with factory() as s:
        assert s.scalars(select(User)).all() == []
        assert events(s) == []
