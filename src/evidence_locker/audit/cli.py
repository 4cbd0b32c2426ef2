"""`locker audit ...`: check the hash chain and link pending events, from the command line.

Thin on purpose: it opens the configured database, calls one function from `audit.chain` and
prints the outcome. Mounted by the main CLI with `app.add_typer(audit_app, name="audit")`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from evidence_locker import db
from evidence_locker.audit.chain import sequence_pending, verify_chain
from evidence_locker.clock import SystemClock
from evidence_locker.config import Settings

app = typer.Typer(help="The audit log: verify its hash chain, link pending events.")


@contextmanager
def _session_factory() -> Iterator[sessionmaker[Session]]:
    """The configured database, disposed of afterwards (a CLI run should leave no pool behind)."""
    engine = db.make_engine(Settings().resolved_database_url)
    try:
        yield db.make_session_factory(engine)
    finally:
        engine.dispose()


def _fail(message: str, code: int) -> typer.Exit:
    typer.echo(message, err=True)
    return typer.Exit(code)


@app.command()
def verify(
    batch: int = typer.Option(5000, min=1, help="Rows read per page (memory stays constant)."),
) -> None:
    """Walk the chain and recompute every hash; exit 1 naming the first row that fails."""
    try:
        with _session_factory() as factory, factory() as session:
            report = verify_chain(session, batch=batch)
    except SQLAlchemyError as exc:
        raise _fail(f"cannot read the audit log: {exc}", 2) from exc
    if not report.ok:
        raise _fail(f"audit chain BROKEN after {report.checked} good events: {report.problem}", 1)
    head_seq = "none" if report.head_seq is None else str(report.head_seq)
    head_hash = report.head_hash or "none"
    typer.echo(
        f"audit chain OK: {report.checked} events, head seq {head_seq} hash {head_hash}, "
        f"{report.pending} pending"
    )


@app.command()
def sequence(
    batch: int = typer.Option(1000, min=1, help="Events linked per transaction."),
) -> None:
    """Link every pending event into the chain now (the background sequencer does this too)."""
    try:
        with _session_factory() as factory:
            linked = sequence_pending(factory, clock=SystemClock(), batch=batch)
    except SQLAlchemyError as exc:
        raise _fail(f"cannot sequence the audit log: {exc}", 2) from exc
    typer.echo(f"linked {linked} events into the audit chain")
