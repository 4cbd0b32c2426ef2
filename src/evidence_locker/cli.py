"""`locker`: the command line. Thin: parse, call one service, print."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Annotated

import typer

from evidence_locker.accounts.cli import tokens_app, users_app
from evidence_locker.audit.cli import app as audit_app
from evidence_locker.config import Settings
from evidence_locker.fleet.cli import docks_app, fleet_app
from evidence_locker.lifecycle.cli import app as retention_app

app = typer.Typer(help="Evidence Locker: body-worn video evidence management.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(users_app, name="users")
app.add_typer(tokens_app, name="tokens")
app.add_typer(docks_app, name="docks")
app.add_typer(fleet_app, name="fleet")
app.add_typer(audit_app, name="audit")
app.add_typer(retention_app, name="retention")


def _simulate_app() -> typer.Typer:
    from evidence_locker.simulate.cli import app as simulate_app

    return simulate_app


app.add_typer(_simulate_app(), name="simulate", help="Simulated cameras for tests and demos.")


def _dock_command() -> None:
    from evidence_locker.dock.cli import dock

    app.command("dock")(dock)


_dock_command()


def _logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request is noise here


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply every migration to the configured database."""
    from evidence_locker.db import upgrade

    settings = Settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.resolved_database_url)
    typer.echo("database is up to date")


def _serve(settings: Settings, host: str, port: int, workers: bool,
           after_start: threading.Thread | None = None) -> None:
    import uvicorn

    from evidence_locker.db import upgrade
    from evidence_locker.runtime import build_runtime
    from evidence_locker.web.app import create_app

    upgrade(settings.resolved_database_url)
    runtime = build_runtime(settings)
    app_ = create_app(runtime, background=workers)
    config = uvicorn.Config(app_, host=host, port=port, log_level="info", proxy_headers=True,
                            timeout_keep_alive=30, h11_max_incomplete_event_size=64 * 1024)
    server = uvicorn.Server(config)
    if after_start is not None:
        after_start.start()
    server.run()
    runtime.close()


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port")] = 8000,
    no_workers: Annotated[bool, typer.Option("--no-workers",
                                             help="ingest/web only; jobs run elsewhere")] = False,
) -> None:
    """Serve the web interface, the API and the tus ingest."""
    _logging()
    settings = Settings()
    _serve(settings, host, port, workers=settings.run_workers and not no_workers)


@app.command()
def worker() -> None:
    """Run background jobs and the audit sequencer in the foreground (scale-out nodes)."""
    from evidence_locker.audit.chain import Sequencer
    from evidence_locker.runtime import build_runtime

    _logging()
    settings = Settings()
    runtime = build_runtime(settings)
    runtime.jobs.start_workers(settings.job_workers)
    sequencer = Sequencer(runtime.sessions, clock=runtime.clock,
                          interval=settings.sequencer_interval_seconds)
    sequencer.start()
    typer.echo("worker running; Ctrl-C to stop")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        sequencer.stop()
        runtime.close()


@app.command()
def fixity(
    batch: Annotated[int, typer.Option(min=1, help="blobs per batch")] = 200,
    batches: Annotated[int, typer.Option(min=1, help="batches at most")] = 1,
    max_age_days: Annotated[float, typer.Option(help="re-check blobs older than this")] = 90,
) -> None:
    """Re-read stored media and compare SHA-256 with the catalogue; exit 1 on any failure."""
    import datetime as dt

    from evidence_locker.catalogue.fixity import fixity_sweep
    from evidence_locker.runtime import build_runtime

    runtime = build_runtime(Settings())
    try:
        report = fixity_sweep(runtime, batch=batch, max_batches=batches,
                              max_age=dt.timedelta(days=max_age_days))
    finally:
        runtime.close()
    typer.echo(f"fixity: {report.checked} checked, {report.ok} ok, "
               f"{len(report.failures)} failed, {report.bytes_read} bytes read")
    for sha, state in report.failures:
        typer.echo(f"  {state}: {sha}", err=True)
    if report.failures:
        raise typer.Exit(1)


@app.command("backup")
def backup_command(
    destination: Annotated[Path, typer.Argument(help="an empty directory for the backup")],
) -> None:
    """A consistent database snapshot (SQLite backup API or pg_dump of an exported snapshot),
    then every blob it names, SHA-256 checked, with its retention and legal hold."""
    from evidence_locker.backup import BackupError, backup

    try:
        report = backup(Settings(), destination)
    except BackupError as exc:
        typer.echo(f"backup failed: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(f"backed up the database and {report.blobs} blobs ({report.bytes} bytes, "
               f"{report.holds} with retention or legal hold)")
    for sha in report.missing:
        typer.echo(f"  MISSING from the store: {sha}", err=True)
    if report.missing:
        raise typer.Exit(1)


@app.command("restore")
def restore_command(
    source: Annotated[Path, typer.Argument(help="a directory made by `locker backup`",
                                           exists=True, file_okay=False)],
) -> None:
    """Restore a backup into an empty deployment (empty data directory or empty PostgreSQL
    database); then run `locker audit verify` and `locker fixity`."""
    from evidence_locker.backup import BackupError, restore

    try:
        report = restore(Settings(), source)
    except (BackupError, FileNotFoundError) as exc:
        typer.echo(f"restore failed: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(f"restored the database and {report.blobs} blobs ({report.bytes} bytes, "
               f"{report.holds} holds re-applied)")
    for sha in report.missing:
        typer.echo(f"  MISSING from the backup: {sha}", err=True)
    if report.missing:
        raise typer.Exit(1)


@app.command()
def upload(
    folder: Annotated[Path, typer.Argument(help="a camera folder, as the simulator writes it",
                                           exists=True, file_okay=False)],
    server: Annotated[str, typer.Option(help="server base URL")] = "http://127.0.0.1:8000",
    token_file: Annotated[Path | None, typer.Option(help="file holding the upload token")] = None,
    token: Annotated[str | None, typer.Option(envvar="LOCKER_UPLOAD_TOKEN",
                                              help="upload token")] = None,
) -> None:
    """Upload every recording in a camera folder over tus (deletes nothing; see `locker dock`)."""
    from evidence_locker.dock.agent import InsecureServer, check_server_url
    from evidence_locker.dock.client import TusClient, UploadFailed, upload_camera_folder

    secret = token_file.read_text().strip() if token_file else token
    if not secret:
        raise typer.BadParameter("give --token-file or --token (or LOCKER_UPLOAD_TOKEN)")
    try:
        server = check_server_url(server)
    except InsecureServer as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from exc
    with TusClient(server, secret) as client:
        try:
            upload_camera_folder(client, folder, log_line=typer.echo)
        except UploadFailed as exc:
            typer.echo(f"upload failed: {exc}", err=True)
            raise typer.Exit(1) from exc


@app.command()
def demo(
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8000,
    cameras: Annotated[int, typer.Option(help="demo cameras to simulate", min=1, max=3)] = 3,
    recordings: Annotated[int, typer.Option(help="recordings per camera", min=1, max=20)] = 2,
) -> None:
    """Set up a demo force, simulate a shift's footage, serve, and dock it through the real
    ingest."""
    from evidence_locker.accounts.service import Passwords
    from evidence_locker.clock import SystemClock
    from evidence_locker.db import make_engine, make_session_factory, transaction, upgrade
    from evidence_locker.demo import OFFICERS, demo_start, seed
    from evidence_locker.dock.client import TusClient, upload_camera_folder
    from evidence_locker.simulate.camera import simulate_camera

    _logging()
    settings = Settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.resolved_database_url)
    engine = make_engine(settings.resolved_database_url)
    with transaction(make_session_factory(engine)) as session:
        accounts, token = seed(session, clock=SystemClock(),
                               passwords=Passwords.from_settings(settings), settings=settings)
    engine.dispose()
    start = demo_start(SystemClock().now())
    folders = []
    for collar, _name, _unit, serial, _mount in OFFICERS[:cameras]:
        folder = settings.data_dir / "demo-cameras" / serial
        if not any(folder.glob("*.mp4")):
            simulate_camera(serial=serial, officer=collar, out=folder, recordings=recordings,
                            seconds=8, start=start, resolution=(640, 360), clip_seconds=5)
        folders.append(folder)
    base = f"http://{host}:{port}"

    def dock_demo_footage() -> None:
        import httpx

        for _ in range(300):
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        with TusClient(base, token) as client:
            for folder in folders:
                upload_camera_folder(client, folder, log_line=lambda s: typer.echo(f"dock: {s}"))
        typer.echo(f"\nDemo footage docked. Open {base}/ and sign in:")
        for a in accounts:
            typer.echo(f"  {a.username:10} {a.password}   {a.role}: {a.note}")

    typer.echo("Demo users (passwords are new each run):")
    for a in accounts:
        typer.echo(f"  {a.username:10} {a.password}   {a.role}: {a.note}")
    _serve(settings, host, port, workers=True,
           after_start=threading.Thread(target=dock_demo_footage, daemon=True))


def main() -> None:
    app()
