"""`locker audit ...`: verify the chain and its signed checkpoints, link events, sign heads.

Thin on purpose: it opens the configured database, calls one function from `audit.chain` and
prints the outcome. Mounted by the main CLI with `app.add_typer(audit_app, name="audit")`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from evidence_locker import db
from evidence_locker.audit.chain import sequence_pending
from evidence_locker.audit.checkpoints import (
    ARCHIVE_BOUNDARY,
    HEAD,
    checkpoint_file,
    make_checkpoint,
    verify_audit,
)
from evidence_locker.audit.signing import (
    KeyRing,
    Signer,
    SigningKeyError,
    key_id,
    public_key_text,
    write_private_key,
)
from evidence_locker.clock import SystemClock
from evidence_locker.config import Settings

app = typer.Typer(
    help="The audit log: verify its chain and signed checkpoints, link, sign; access alerts.")

#: Exit status of `verify --require-signatures` when checkpoints could not be checked.
EXIT_UNCHECKED = 3


@contextmanager
def _session_factory(settings: Settings | None = None) -> Iterator[sessionmaker[Session]]:
    """The configured database, disposed of afterwards (a CLI run should leave no pool behind)."""
    engine = db.make_engine((settings or Settings()).resolved_database_url)
    try:
        yield db.make_session_factory(engine)
    finally:
        engine.dispose()


def _fail(message: str, code: int) -> typer.Exit:
    typer.echo(message, err=True)
    return typer.Exit(code)


def key_ring(settings: Settings) -> KeyRing:
    """The public keys a verifier trusts: the configured list, the keys file, and the public half
    of the signing key when this host has it."""
    texts = list(settings.audit_public_keys)
    if settings.audit_public_keys_file is not None:
        texts += KeyRing.read_file(settings.audit_public_keys_file)
    ring = KeyRing.from_texts(texts)
    if settings.audit_signing_key_file is not None and settings.audit_signing_key_file.exists():
        signer = Signer.from_file(settings.audit_signing_key_file)
        ring.keys.setdefault(signer.key_id, signer.key.public_key())
    return ring


@app.command()
def verify(
    batch: int = typer.Option(5000, min=1, help="Rows read per page (memory stays constant)."),
    checkpoint_file_: Path | None = typer.Option(
        None, "--checkpoint-file",
        help="The external copy to compare with the table (default: checkpoints.jsonl in the "
        "configured checkpoint directory), e.g. the copy fetched back from the log host."),
    require_signatures: bool = typer.Option(
        False, "--require-signatures",
        help=f"Exit {EXIT_UNCHECKED} unless signed checkpoints exist and were checked."),
) -> None:
    """Walk the chain, recompute every hash, check every signed checkpoint against it.

    Exit 0: chain and checkpoints good (warnings, e.g. no public key configured, are printed on
    stderr); 1: something fails, the first bad row or checkpoint is named; 2: the database
    cannot be read or a key cannot be loaded; 3: with --require-signatures, nothing signed
    was checked.
    """
    settings = Settings()
    try:
        keys = key_ring(settings)
    except SigningKeyError as exc:
        raise _fail(f"cannot load audit keys: {exc}", 2) from exc
    file = checkpoint_file_ or checkpoint_file(settings.resolved_audit_checkpoint_dir)
    try:
        with _session_factory(settings) as factory, factory() as session:
            result = verify_audit(session, keys=keys, file=file, batch=batch)
    except SQLAlchemyError as exc:
        raise _fail(f"cannot read the audit log: {exc}", 2) from exc
    report = result.chain
    for warning in result.warnings:
        typer.echo(f"WARNING: {warning}", err=True)
    if not report.ok:
        raise _fail(f"audit chain BROKEN after {report.checked} good events: {report.problem}", 1)
    if result.problems:
        for problem in result.problems[1:]:
            typer.echo(f"  also: {problem}", err=True)
        raise _fail(
            f"audit CHECKPOINTS FAIL (chain of {report.checked} events is internally consistent "
            f"but does not match what was signed): {result.problems[0]}", 1)
    head_seq = "none" if report.head_seq is None else str(report.head_seq)
    head_hash = report.head_hash or "none"
    since = "" if result.start is None else f" after signed archive boundary seq {result.start.seq}"
    typer.echo(
        f"audit chain OK: {report.checked} events{since}, head seq {head_seq} hash {head_hash}, "
        f"{report.pending} pending"
    )
    if result.checkpoints and not result.unchecked:
        typer.echo(
            f"checkpoints OK: {result.signatures_checked} signature(s) good, {result.matched} "
            f"matched the chain, {file} agrees with the table"
        )
    if require_signatures and (result.unchecked or result.signatures_checked == 0):
        raise _fail("no signed checkpoint was checked (--require-signatures)", EXIT_UNCHECKED)


@app.command()
def keygen(
    out: Path = typer.Option(..., "--out", help="Where to write the private key (mode 0600)."),
) -> None:
    """Make the force's Ed25519 checkpoint key; print the public key for the verifiers."""
    try:
        key = write_private_key(out)
    except FileExistsError as exc:
        raise _fail(f"{out} exists: refusing to overwrite a key", 2) from exc
    public = key.public_key()
    typer.echo(f"private key written to {out} (keep it off the database host's backups)")
    typer.echo(f"key id {key_id(public)}")
    typer.echo(public_key_text(public))


@app.command()
def checkpoint(
    archive_boundary: int | None = typer.Option(
        None, "--archive-boundary", min=1, metavar="SEQ",
        help="Sign the event at SEQ as the end of an archived prefix (before detaching "
        "partitions that hold seq 1..SEQ)."),
    force: bool = typer.Option(False, help="Sign even when the head has not moved."),
    batch: int = typer.Option(5000, min=1, help="Rows read per page while verifying."),
) -> None:
    """Verify the events since the last checkpoint, then sign the chain head and write it out."""
    settings = Settings()
    if settings.audit_signing_key_file is None:
        raise _fail("no signing key: set LOCKER_AUDIT_SIGNING_KEY_FILE (see locker audit keygen)",
                    2)
    try:
        signer = Signer.from_file(settings.audit_signing_key_file)
    except SigningKeyError as exc:
        raise _fail(str(exc), 2) from exc
    try:
        with _session_factory(settings) as factory:
            outcome = make_checkpoint(
                factory, clock=SystemClock(), signer=signer,
                directory=settings.resolved_audit_checkpoint_dir,
                kind=HEAD if archive_boundary is None else ARCHIVE_BOUNDARY,
                at_seq=archive_boundary, force=force, batch=batch)
    except SQLAlchemyError as exc:
        raise _fail(f"cannot checkpoint the audit log: {exc}", 2) from exc
    if outcome.restored is not None:
        typer.echo(f"restored lost checkpoint row ({outcome.restored.describe()}) from the file")
    if outcome.problem is not None:
        raise _fail(f"no checkpoint: {outcome.problem}", 1)
    if outcome.made is None:
        typer.echo(f"no checkpoint: {outcome.skipped}")
        return
    typer.echo(f"checkpoint signed: {outcome.made.kind} {outcome.made.describe()}, "
               f"hash {outcome.made.hash}")


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


def _when(value: str, name: str) -> dt.datetime:
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError as exc:
        raise _fail(f"{name}: not an ISO 8601 time: {value!r}", 2) from exc
    if when.tzinfo is None:
        raise _fail(f"{name} needs a UTC offset, e.g. 2026-11-22T08:00Z", 2)
    return when


@app.command()
def alerts(
    since: str = typer.Option(..., "--since", help="Start of the window (ISO 8601, with offset)."),
    until: str | None = typer.Option(None, "--until", help="End of the window (default: now)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of lines."),
) -> None:
    """Unusual access in a window, for professional standards: someone looking at many
    recordings of others, outside their unit, or at restricted footage (thresholds:
    LOCKER_AUDIT_ALERT_*). Exit 0 with none, 1 with some, 2 when the database cannot be read.
    The run is recorded in the audit log."""
    from evidence_locker.audit.reports import Thresholds, access_alerts, alerts_as_json
    from evidence_locker.audit.service import SYSTEM, record

    settings = Settings()
    clock = SystemClock()
    start = _when(since, "--since")
    end = _when(until, "--until") if until else clock.now()
    if end <= start:
        raise _fail("--until must be after --since", 2)
    thresholds = Thresholds.from_settings(settings)
    try:
        with _session_factory(settings) as factory, db.transaction(factory) as session:
            found = access_alerts(session, since=start, until=end, thresholds=thresholds)
            record(session, clock=clock, actor=SYSTEM, action="audit.alerts_read",
                   object_type="audit",
                   details={"since": start.isoformat(), "until": end.isoformat(),
                            "alerts": len(found), "via": "cli"})
    except SQLAlchemyError as exc:
        raise _fail(f"cannot read the audit log: {exc}", 2) from exc
    if as_json:
        typer.echo(alerts_as_json(found))
    else:
        for a in found:
            typer.echo(f"{a.rule}: {a.username} ({a.role}) {a.count} recording(s) "
                       f"(threshold {a.threshold}) {a.first_at.isoformat()} .. "
                       f"{a.last_at.isoformat()}: {', '.join(a.recordings[:5])}"
                       f"{' ...' if len(a.recordings) > 5 else ''}")
        typer.echo(f"{len(found)} alert(s) between {start.isoformat()} and {end.isoformat()}")
    if found:
        raise typer.Exit(1)
