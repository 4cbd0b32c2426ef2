"""`locker users` and `locker tokens`: thin commands over the accounts service.

Each command is one transaction, done by the system on behalf of the operating-system user who ran
it. A secret (generated password, bearer token) is printed alone on the last line of stdout so
scripts can take it with `tail -n 1`.
"""

from __future__ import annotations

import datetime as dt
import getpass
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from sqlalchemy.orm import Session

from evidence_locker import db
from evidence_locker.accounts import service
from evidence_locker.audit.service import Actor
from evidence_locker.clock import SystemClock
from evidence_locker.config import Settings

users_app = typer.Typer(help="Manage user accounts.", no_args_is_help=True)
tokens_app = typer.Typer(help="Manage API bearer tokens.", no_args_is_help=True)


@users_app.callback()
def _users() -> None:
    """Manage user accounts."""


@tokens_app.callback()
def _tokens() -> None:
    """Manage API bearer tokens."""


def cli_actor() -> Actor:
    """The audit actor for a command run at the console: the system, named after the OS user."""
    try:
        who = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry, e.g. an arbitrary container uid
        who = "unknown"
    return Actor(type="system", name=f"cli:{who}")


@contextmanager
def cli_transaction(settings: Settings) -> Iterator[Session]:
    """One command, one transaction against the configured database."""
    engine = db.make_engine(settings.resolved_database_url)
    try:
        with db.transaction(db.make_session_factory(engine)) as session:
            yield session
    finally:
        engine.dispose()


def fail(message: str) -> typer.Exit:
    """Report a refused request on stderr; the caller raises the returned exit (code 2)."""
    typer.echo(message, err=True)
    return typer.Exit(code=2)


@users_app.command("create")
def create_user(
    name: Annotated[str, typer.Argument(help="Username (lower case).")],
    role: Annotated[str, typer.Option("--role", help="One of the roles in DESIGN.md.")],
    unit: Annotated[str | None, typer.Option("--unit", help="Unit code.")] = None,
    officer: Annotated[
        str | None, typer.Option("--officer", help="Collar number of the linked officer.")
    ] = None,
    password: Annotated[
        str | None, typer.Option("--password", help="Initial password; generated if omitted.")
    ] = None,
    display_name: Annotated[str, typer.Option("--display-name")] = "",
) -> None:
    """Create a user; prints the generated password when none is given."""
    settings = Settings()
    clock = SystemClock()
    try:
        with cli_transaction(settings) as session:
            user, generated = service.create_user(
                session,
                clock=clock,
                actor=cli_actor(),
                passwords=service.Passwords.from_settings(settings),
                username=name,
                role=role,
                unit_code=unit,
                officer_collar=officer,
                display_name=display_name,
                password=password,
            )
            user_id = user.id
    except service.AccountsError as exc:
        raise fail(str(exc)) from None
    typer.echo(f"created user {name} (id {user_id}, role {role})")
    if generated is not None:
        typer.echo("initial password:")
        typer.echo(generated)


@users_app.command("deactivate")
def deactivate_user(name: Annotated[str, typer.Argument(help="Username.")]) -> None:
    """Deactivate a user (accounts are never deleted); ends their sessions and tokens."""
    settings = Settings()
    clock = SystemClock()
    try:
        with cli_transaction(settings) as session:
            user = service.user_by_username(session, name)
            if user is None:
                raise service.AccountsError(f"no user {name!r}")
            service.deactivate_user(session, clock=clock, actor=cli_actor(), user=user)
    except service.AccountsError as exc:
        raise fail(str(exc)) from None
    typer.echo(f"deactivated user {name}")


@users_app.command("unbind-idp")
def unbind_idp(name: Annotated[str, typer.Argument(help="Username.")]) -> None:
    """Forget the identity-provider account bound to a user at their first OpenID Connect
    sign-in, so that the next one binds afresh (after the IdP account was replaced)."""
    from evidence_locker.accounts.oidc import unbind_identities

    settings = Settings()
    try:
        with cli_transaction(settings) as session:
            user = service.user_by_username(session, name)
            if user is None:
                raise service.AccountsError(f"no user {name!r}")
            count = unbind_identities(session, clock=SystemClock(), actor=cli_actor(), user=user)
    except service.AccountsError as exc:
        raise fail(str(exc)) from None
    typer.echo(f"unbound {count} identity provider account(s) from {name}")


@tokens_app.command("create")
def create_token(
    user: Annotated[str, typer.Option("--user", help="Username the token acts as.")],
    scope: Annotated[
        list[str] | None, typer.Option("--scope", help="Scope (repeatable); default: api.")
    ] = None,
    expires_days: Annotated[
        int | None, typer.Option("--expires-days", help="Lifetime in days; default: none.")
    ] = None,
    name: Annotated[str, typer.Option("--name", help="A label for the token.")] = "",
) -> None:
    """Issue a bearer token for a user; the token is printed alone on the last line."""
    settings = Settings()
    clock = SystemClock()
    try:
        if expires_days is not None and expires_days <= 0:
            raise service.AccountsError("--expires-days must be positive")
        with cli_transaction(settings) as session:
            account = service.user_by_username(session, user)
            if account is None:
                raise service.AccountsError(f"no user {user!r}")
            token, secret = service.issue_api_token(
                session,
                clock=clock,
                actor=cli_actor(),
                user=account,
                scopes=set(scope or ["api"]),
                name=name,
                expires_in=None if expires_days is None else dt.timedelta(days=expires_days),
            )
            token_id, scopes, expires = token.id, token.scopes, token.expires_at
    except service.AccountsError as exc:
        raise fail(str(exc)) from None
    until = "never expires" if expires is None else f"expires {expires.isoformat()}"
    typer.echo(f"token {token_id} for {user}, scopes: {scopes}, {until}")
    typer.echo(secret)


@tokens_app.command("revoke")
def revoke_token(token_id: Annotated[int, typer.Argument(metavar="ID", help="Token id.")]) -> None:
    """Revoke a token by id."""
    settings = Settings()
    clock = SystemClock()
    try:
        with cli_transaction(settings) as session:
            service.revoke_token(session, clock=clock, actor=cli_actor(), token_id=token_id)
    except service.AccountsError as exc:
        raise fail(str(exc)) from None
    typer.echo(f"revoked token {token_id}")
