"""`locker docks` and `locker fleet`: thin commands over the fleet service.

A dock's upload token is printed alone on the last line of stdout, so it can be piped into the
dock agent's configuration. Refusals go to stderr with exit code 2.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer

from evidence_locker.accounts.cli import cli_actor, cli_transaction, fail
from evidence_locker.accounts.service import AccountsError
from evidence_locker.clock import SystemClock
from evidence_locker.config import Settings
from evidence_locker.fleet import imports, service

docks_app = typer.Typer(help="Manage docks.", no_args_is_help=True)
fleet_app = typer.Typer(help="The fleet register: import, assign cameras.", no_args_is_help=True)


@docks_app.callback()
def _docks() -> None:
    """Manage docks."""


@fleet_app.callback()
def _fleet() -> None:
    """The fleet register: import, assign cameras."""


@docks_app.command("register")
def register_dock(
    name: Annotated[str, typer.Argument(help="Dock name, unique.")],
    station: Annotated[str | None, typer.Option("--station", help="Where it stands.")] = None,
    bays: Annotated[int, typer.Option("--bays", help="Number of camera bays.")] = 8,
    unit: Annotated[str | None, typer.Option("--unit", help="Unit code of its station.")] = None,
) -> None:
    """Register a dock and print its upload token alone on the last line."""
    settings = Settings()
    clock = SystemClock()
    try:
        with cli_transaction(settings) as session:
            dock, secret = service.register_dock(
                session, clock=clock, actor=cli_actor(), name=name, station=station, bays=bays,
                unit_code=unit,
            )
            dock_id = dock.id
    except (service.FleetError, AccountsError) as exc:
        raise fail(str(exc)) from None
    typer.echo(f"registered dock {name} (id {dock_id}); upload token:")
    typer.echo(secret)


@docks_app.command("list")
def list_docks() -> None:
    """Docks, their live tokens and when each was last heard from."""
    with cli_transaction(Settings()) as session:
        docks = service.list_docks(session)
    typer.echo(f"{'name':<24} {'unit':<12} {'bays':>4} {'tokens':>6}  {'last heartbeat':<25} "
               "agent  station")
    for d in docks:
        seen = d.last_seen_at.isoformat(timespec="seconds") if d.last_seen_at else "never"
        typer.echo(f"{d.name:<24} {d.unit or '-':<12} {d.bays:>4} {d.live_tokens:>6}  "
                   f"{seen:<25} {d.agent_version or '-'}  {d.station or ''}")


@docks_app.command("revoke")
def revoke_dock(name: Annotated[str, typer.Argument(help="Dock name.")]) -> None:
    """Revoke a dock's upload token(s): its uploads and heartbeats are refused from now on."""
    try:
        with cli_transaction(Settings()) as session:
            n = service.revoke_dock(session, clock=SystemClock(), actor=cli_actor(), name=name)
    except (service.FleetError, AccountsError) as exc:
        raise fail(str(exc)) from None
    typer.echo(f"revoked {n} token(s) of dock {name}")


@docks_app.command("rotate")
def rotate_dock(name: Annotated[str, typer.Argument(help="Dock name.")]) -> None:
    """Issue a new upload token for a dock and revoke the old one(s); prints the new token
    alone on the last line."""
    try:
        with cli_transaction(Settings()) as session:
            secret = service.rotate_dock(session, clock=SystemClock(), actor=cli_actor(),
                                         name=name)
    except (service.FleetError, AccountsError) as exc:
        raise fail(str(exc)) from None
    typer.echo(f"new upload token for dock {name} (the old one is revoked):")
    typer.echo(secret)


def _when(value: str | None, option: str) -> dt.datetime | None:
    if value is None:
        return None
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        raise fail(f"{option}: not an ISO 8601 time: {value!r}") from None
    if when.tzinfo is None:
        raise fail(f"{option} needs a UTC offset, e.g. 2025-03-01T08:00+00:00")
    return when


@fleet_app.command("assign")
def assign(
    serial: Annotated[str, typer.Argument(help="Camera serial.")],
    collar: Annotated[str, typer.Argument(help="Officer's collar number.")],
    since: Annotated[str | None, typer.Option("--from", help="ISO time; default now.")] = None,
    until: Annotated[str | None, typer.Option("--until", help="ISO time; default open.")] = None,
    note: Annotated[str, typer.Option("--note")] = "",
) -> None:
    """Assign a camera to an officer (ends its current open assignment)."""
    try:
        with cli_transaction(Settings()) as session:
            done = service.assign_device(session, clock=SystemClock(), actor=cli_actor(),
                                         serial=serial, collar=collar,
                                         starts_at=_when(since, "--from"),
                                         ends_at=_when(until, "--until"), note=note)
            moved = done.reattributed
    except service.FleetError as exc:
        raise fail(str(exc)) from None
    typer.echo(f"assigned {serial} to {collar}; {moved} recording(s) attributed again")


@fleet_app.command("unassign")
def unassign(
    serial: Annotated[str, typer.Argument(help="Camera serial.")],
    at: Annotated[str | None, typer.Option("--at", help="ISO time; default now.")] = None,
    note: Annotated[str, typer.Option("--note", help="Why (returned, lost...).")] = "",
) -> None:
    """End a camera's open assignment (back to stores, lost, broken)."""
    try:
        with cli_transaction(Settings()) as session:
            service.end_assignment(session, clock=SystemClock(), actor=cli_actor(),
                                   serial=serial, at=_when(at, "--at"), note=note)
    except service.FleetError as exc:
        raise fail(str(exc)) from None
    typer.echo(f"{serial} is no longer assigned")



@fleet_app.command("import")
def import_csv(
    units: Annotated[Path | None, typer.Option("--units", help="units CSV")] = None,
    officers: Annotated[Path | None, typer.Option("--officers", help="officers CSV")] = None,
    devices: Annotated[Path | None, typer.Option("--devices", help="devices CSV")] = None,
    assignments: Annotated[Path | None,
                           typer.Option("--assignments", help="assignments CSV")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Report, change nothing.")] = False,
) -> None:
    """Import the register from CSV (any subset of the four files). Idempotent. Exit 0: every
    row applied or unchanged; 1: some rows rejected (the others were applied); 2: a file could
    not be read, nothing was applied."""
    given = {"units": units, "officers": officers, "devices": devices,
             "assignments": assignments}
    files: dict[str, tuple[str, bytes]] = {}
    for kind, path in given.items():
        if path is None:
            continue
        try:
            if path.stat().st_size > imports.MAX_FILE_BYTES:
                raise fail(f"{path}: larger than {imports.MAX_FILE_BYTES} bytes")
            files[kind] = (str(path), path.read_bytes())
        except OSError as exc:
            raise fail(f"{path}: {exc.strerror or exc}") from None
    if not files:
        raise fail("give at least one of --units, --officers, --devices, --assignments")
    settings = Settings()

    class _DryRun(Exception):
        pass

    report: imports.ImportReport | None = None
    try:
        with cli_transaction(settings) as session:
            report = imports.run_import(session, clock=SystemClock(), actor=cli_actor(),
                                        files=files, zone=settings.timezone)
            if dry_run:
                raise _DryRun
    except _DryRun:
        pass
    except service.FleetError as exc:
        raise fail(str(exc)) from None
    assert report is not None
    for k in report.kinds:
        typer.echo(f"{k.kind} ({k.source}): {k.created} created, {k.updated} updated, "
                   f"{k.unchanged} unchanged, {len(k.rejected)} rejected")
        if k.ignored_columns:
            typer.echo(f"  ignored column(s): {', '.join(k.ignored_columns)}")
        for r in k.rejected:
            typer.echo(f"  line {r.line}: {r.reason}" + (f" [{r.key}]" if r.key else ""))
    if dry_run:
        typer.echo(f"dry run: {report.changed} change(s) would be made; nothing was written")
    elif report.changed:
        typer.echo(f"{report.changed} change(s) applied")
    else:
        typer.echo("nothing changed: the register already says this")
    if report.rejected:
        typer.echo(f"{report.rejected} row(s) rejected", err=True)
        raise typer.Exit(code=1)


@fleet_app.command("prune-health")
def prune_health(
    keep_days: Annotated[int, typer.Option("--keep-days", min=1,
                                           help="History to keep.")] = 400,
) -> None:
    """Drop camera health history older than --keep-days (latest status per camera stays)."""
    from evidence_locker.fleet.health import prune_observations

    with cli_transaction(Settings()) as session:
        n = prune_observations(session, clock=SystemClock(), actor=cli_actor(),
                               keep=dt.timedelta(days=keep_days))
    typer.echo(f"removed {n} health observation(s) older than {keep_days} days")
