"""`locker docks`: register docks. The dock's upload token is printed alone on the last line of
stdout, so it can be piped into the dock agent's configuration."""

from __future__ import annotations

from typing import Annotated

import typer

from evidence_locker.accounts.cli import cli_actor, cli_transaction, fail
from evidence_locker.accounts.service import AccountsError
from evidence_locker.clock import SystemClock
from evidence_locker.config import Settings
from evidence_locker.fleet import service

docks_app = typer.Typer(help="Manage docks.", no_args_is_help=True)


@docks_app.callback()
def _docks() -> None:
    """Manage docks."""


@docks_app.command("register")
def register_dock(
    name: Annotated[str, typer.Argument(help="Dock name, unique.")],
    station: Annotated[str | None, typer.Option("--station", help="Where it stands.")] = None,
    bays: Annotated[int, typer.Option("--bays", help="Number of camera bays.")] = 8,
) -> None:
    """Register a dock and print its upload token alone on the last line."""
    settings = Settings()
    clock = SystemClock()
    try:
        with cli_transaction(settings) as session:
            dock, secret = service.register_dock(
                session, clock=clock, actor=cli_actor(), name=name, station=station, bays=bays
            )
            dock_id = dock.id
    except (service.FleetError, AccountsError) as exc:
        raise fail(str(exc)) from None
    typer.echo(f"registered dock {name} (id {dock_id}); upload token:")
    typer.echo(secret)
