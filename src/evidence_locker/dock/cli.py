"""`locker dock`: run the dock agent in the foreground (systemd keeps it running)."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer


def dock(
    watch: Annotated[Path, typer.Option(help="directory where each docked camera is a folder",
                                        exists=True, file_okay=False)],
    server: Annotated[str, typer.Option(help="server base URL (https; http only to loopback)")],
    token_file: Annotated[Path, typer.Option(help="file holding this dock's upload token",
                                             exists=True, dir_okay=False)],
    bays: Annotated[int, typer.Option(min=1, max=64, help="cameras uploaded at once")] = 8,
    max_mbps: Annotated[float | None, typer.Option(
        min=0.001, help="cap on the dock's total upload, megabits per second")] = None,
    journal: Annotated[Path | None, typer.Option(
        help="the dock's journal (SQLite); default under the dock's state directory")] = None,
    ca_file: Annotated[Path | None, typer.Option(
        help="CA certificate(s) to verify the server with (a force's own CA)",
        exists=True, dir_okay=False)] = None,
    once: Annotated[bool, typer.Option(
        "--once", help="upload what is docked now and exit when every camera is empty")] = False,
    heartbeat_seconds: Annotated[float, typer.Option(min=0.05, help="heartbeat interval")] = 60.0,
    poll_seconds: Annotated[float, typer.Option(min=0.01, help="how often bays are looked at")
                            ] = 1.0,
    chunk_mib: Annotated[float, typer.Option(min=0.0625, help="PATCH size, MiB")] = 4.0,
    retry_base: Annotated[float, typer.Option(min=0.0, help="first back-off bound, s")] = 0.5,
    retry_cap: Annotated[float, typer.Option(min=0.0, help="largest back-off bound, s")] = 30.0,
    retry_budget: Annotated[int, typer.Option(min=0, help="quick retries before an outage "
                                              "wait")] = 8,
    outage_wait: Annotated[float, typer.Option(min=0.0, help="wait once the budget is spent, "
                                               "s")] = 60.0,
    auth_wait: Annotated[float, typer.Option(min=0.0, help="wait after a refused token, s")
                         ] = 300.0,
    progress: Annotated[bool | None, typer.Option(
        "--progress/--no-progress", help="progress bars (default: when stdout is a terminal)")
    ] = None,
) -> None:
    """Upload every camera docked under WATCH over tus; delete each file from the camera only
    once the server has confirmed a durable, verified copy."""
    from evidence_locker.dock.agent import (
        DockAgent,
        DockConfig,
        InsecureServer,
        default_journal,
        make_http,
    )
    from evidence_locker.dock.journal import Journal
    from evidence_locker.dock.pacing import RetryPolicy
    from evidence_locker.dock.progress import PlainReporter, Reporter, RichReporter

    try:
        token = token_file.read_text().strip()
    except OSError as exc:
        typer.echo(f"cannot read the token file: {exc}", err=True)
        raise typer.Exit(2) from exc
    if not token:
        typer.echo("the token file is empty", err=True)
        raise typer.Exit(2)
    try:
        http = make_http(server, token, bays=bays, ca_file=ca_file)
    except InsecureServer as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    rich = sys.stdout.isatty() if progress is None else progress
    reporter: Reporter
    if rich:
        from rich.logging import RichHandler

        logging.basicConfig(level=logging.INFO, format="%(message)s",
                            handlers=[RichHandler(show_path=False)])
        reporter = RichReporter(bays)
    else:
        logging.basicConfig(level=logging.INFO, stream=sys.stdout,
                            format="%(asctime)s %(levelname)s %(message)s")
        reporter = PlainReporter()
    logging.getLogger("httpx").setLevel(logging.WARNING)
    config = DockConfig(
        watch=watch, server=server, bays=bays, max_mbps=max_mbps, once=once,
        poll_interval=poll_seconds, heartbeat_interval=heartbeat_seconds,
        chunk_size=int(chunk_mib * 1024 * 1024),
        policy=RetryPolicy(base=retry_base, cap=retry_cap, budget=retry_budget,
                           outage_wait=outage_wait, auth_wait=auth_wait))
    store = Journal(journal or default_journal())
    agent = DockAgent(config, http=http, journal=store, reporter=reporter)

    def _stop(signum: int, _frame: FrameType | None) -> None:
        logging.getLogger("evidence_locker.dock").info("signal %d: stopping", signum)
        agent.stop()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
    logging.getLogger("evidence_locker.dock").info(
        "dock agent: watching %s, %d bay(s), server %s, journal %s", watch, bays, server,
        store.path)
    try:
        summary = agent.run()
    finally:
        reporter.close()
        store.close()
        http.close()
    typer.echo(f"dock: {summary.confirmed} file(s) confirmed ({summary.duplicates} duplicate), "
               f"{summary.bytes_confirmed} bytes, {summary.refused} refused, "
               f"{summary.left_behind} left on cameras, {summary.pulled} camera(s) pulled")
    if once and (summary.refused or summary.left_behind):
        raise typer.Exit(1)
