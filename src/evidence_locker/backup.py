"""Backup and restore that keep catalogue, audit chain and media consistent, by construction.

The database (catalogue and audit chain together) is snapshotted first: SQLite's online backup
API, or `pg_dump` of a PostgreSQL snapshot exported from a transaction that also lists the blobs,
so the list is exactly what the dump names. Then every named blob is copied and its SHA-256
checked on the way, and its retention date and legal hold written into the manifest. Blobs are
immutable and content-addressed, so a copy made after the snapshot holds everything it names.
A restore goes into an empty deployment only (empty database, any store), re-applies the holds,
and is proven by `locker audit verify` and `locker fixity`.

For a large force this is the drill and the small-deployment tool: production PostgreSQL uses
base backups with WAL archiving and the bucket is replicated (deploy/BACKUP.md).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url

from evidence_locker.catalogue.models import Blob
from evidence_locker.config import Settings
from evidence_locker.db import make_engine, make_session_factory, transaction
from evidence_locker.storage.base import BlobNotFound, BlobStore, open_store
from evidence_locker.storage.local import LocalBlobStore

MANIFEST = "backup-manifest.json"
FORMAT = 2
SQLITE_FILE = "locker.db"
PG_FILE = "locker.dump"


class BackupError(Exception):
    pass


@dataclass(frozen=True)
class BackupReport:
    blobs: int
    bytes: int
    missing: list[str]
    holds: int = 0


def _kind(url: str) -> str:
    if url.startswith("sqlite:///"):
        return "sqlite"
    if url.startswith("postgresql"):
        return "postgresql"
    raise BackupError(f"cannot back up a {url.split(':', 1)[0]} database")


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _copy_blob(source: BlobStore, target: BlobStore, sha256: str) -> int:
    """Copy one blob, checking its SHA-256 on the way; returns its size."""
    if target.exists(sha256):
        return target.size(sha256)
    upload_id = uuid.uuid4().hex
    target.create_partial(upload_id)
    hasher = hashlib.sha256()
    with target.open_partial(upload_id) as partial:
        for chunk in source.read_range(sha256):
            hasher.update(chunk)
            partial.append(chunk)
        partial.sync()
        size = partial.size
    if hasher.hexdigest() != sha256:
        target.discard_partial(upload_id)
        raise BackupError(f"blob {sha256} does not match its name: run `locker fixity`")
    target.commit_partial(upload_id, sha256)
    return size


def _pg_command(tool: str, url: str) -> tuple[list[str], dict[str, str]]:
    """libpq arguments for `url`, the password in the environment (never on a command line)."""
    binary = shutil.which(tool)
    if binary is None:
        raise BackupError(f"`{tool}` is not installed (Debian: apt-get install postgresql-client)")
    u = make_url(url)
    conninfo = {"host": u.host, "port": u.port, "user": u.username, "dbname": u.database,
                **{k: v for k, v in u.query.items() if isinstance(v, str)}}
    dsn = " ".join(f"{k}='{str(v).replace(chr(39), chr(92) + chr(39))}'"
                   for k, v in conninfo.items() if v is not None)
    env = {**os.environ}
    if u.password:
        env["PGPASSWORD"] = u.password
    return [binary, f"--dbname={dsn}"], env


@contextmanager
def _pg_snapshot(url: str) -> Iterator[tuple[str, list[str]]]:
    """A read-only snapshot exported for pg_dump, and the blobs it names, read in it."""
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1),
                           isolation_level="REPEATABLE READ")
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SET TRANSACTION READ ONLY")
            snapshot = conn.execute(text("SELECT pg_export_snapshot()")).scalar_one()
            names = list(conn.scalars(select(Blob.sha256).order_by(Blob.sha256)))
            yield snapshot, names
            conn.rollback()
    finally:
        engine.dispose()


def _snapshot_database(url: str, destination: Path) -> tuple[str, list[str]]:
    """The database, consistent at one instant while the system runs; returns the file name and
    the blobs that snapshot names."""
    if _kind(url) == "sqlite":
        src = sqlite3.connect(url.removeprefix("sqlite:///"))
        dst = sqlite3.connect(destination / SQLITE_FILE)
        try:
            src.backup(dst)
        finally:
            dst.close()
            src.close()
        engine = make_engine(f"sqlite:///{destination / SQLITE_FILE}")
        try:
            with transaction(make_session_factory(engine)) as session:
                return SQLITE_FILE, list(session.scalars(select(Blob.sha256).order_by(Blob.sha256)))
        finally:
            engine.dispose()
    with _pg_snapshot(url) as (snapshot, names):
        argv, env = _pg_command("pg_dump", url)
        done = subprocess.run(
            [*argv, "--format=custom", "--no-owner", "--no-privileges",
             f"--snapshot={snapshot}", f"--file={destination / PG_FILE}"],
            env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise BackupError(f"pg_dump failed: {done.stderr.strip()[-2000:]}")
    return PG_FILE, names


def _holds_of(store: BlobStore, sha256: str) -> dict[str, Any] | None:
    until = store.get_retention(sha256)
    held = store.legal_hold(sha256)
    if until is None and not held:
        return None
    return {"retain_until": until.isoformat() if until else None, "legal_hold": held}


def backup(settings: Settings, destination: Path) -> BackupReport:
    url = settings.resolved_database_url
    _kind(url)
    destination.mkdir(parents=True, exist_ok=True)
    if any(destination.iterdir()):
        raise BackupError(f"{destination} is not empty")
    database, names = _snapshot_database(url, destination)
    source = open_store(settings.resolved_storage_url)
    target = LocalBlobStore(destination / "media")
    total, missing, holds = 0, [], {}
    for sha256 in names:
        try:
            total += _copy_blob(source, target, sha256)
        except BlobNotFound:
            missing.append(sha256)
            continue
        if (h := _holds_of(source, sha256)) is not None:
            holds[sha256] = h
    manifest = {"format": FORMAT, "database": database, "kind": _kind(url),
                "database_sha256": _sha256_file(destination / database),
                "blobs": len(names) - len(missing), "bytes": total, "missing": missing,
                "holds": holds, "made_at": dt.datetime.now(dt.UTC).isoformat()}
    (destination / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return BackupReport(len(names) - len(missing), total, missing, len(holds))


def _restore_database(url: str, source: Path, manifest: dict[str, Any]) -> None:
    """Into an empty database only: a restore never overwrites a live deployment."""
    if manifest.get("kind", "sqlite") != _kind(url):
        raise BackupError(f"the backup holds a {manifest.get('kind')} database; "
                          f"the target is {_kind(url)}")
    dump = source / manifest["database"]
    if _sha256_file(dump) != manifest["database_sha256"]:
        raise BackupError("the backup's database does not match its manifest")
    if _kind(url) == "sqlite":
        db_path = Path(url.removeprefix("sqlite:///"))
        if db_path.exists():
            raise BackupError(f"{db_path} exists: restore only into an empty data directory")
        db_path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(dump, db_path)
        return
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            tables = conn.execute(text(
                "SELECT count(*) FROM information_schema.tables "
                "WHERE table_schema = current_schema()")).scalar_one()
    finally:
        engine.dispose()
    if tables:
        raise BackupError("the target database is not empty: restore only into an empty one")
    argv, env = _pg_command("pg_restore", url)
    done = subprocess.run([*argv, "--no-owner", "--no-privileges", "--exit-on-error",
                           "--single-transaction", str(dump)],
                          env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BackupError(f"pg_restore failed: {done.stderr.strip()[-2000:]}")


def _apply_holds(target: BlobStore, holds: dict[str, dict[str, Any]]) -> int:
    """Retention only ever extended, legal holds placed: a restore never weakens protection."""
    for sha256, h in holds.items():
        if h.get("retain_until"):
            until = dt.datetime.fromisoformat(h["retain_until"])
            current = target.get_retention(sha256)
            if current is None or current < until:
                target.set_retention(sha256, until)
        if h.get("legal_hold") and not target.legal_hold(sha256):
            target.set_legal_hold(sha256, True)
    return len(holds)


def restore(settings: Settings, source: Path) -> BackupReport:
    manifest = json.loads((source / MANIFEST).read_text())
    if manifest.get("format") != FORMAT:
        raise BackupError(f"backup format {manifest.get('format')} is not {FORMAT}")
    url = settings.resolved_database_url
    _restore_database(url, source, manifest)
    backup_store = LocalBlobStore(source / "media")
    target = open_store(settings.resolved_storage_url)
    engine = make_engine(url)
    try:
        with transaction(make_session_factory(engine)) as session:
            names = list(session.scalars(select(Blob.sha256).order_by(Blob.sha256)))
    finally:
        engine.dispose()
    total, missing = 0, []
    for sha256 in names:
        try:
            total += _copy_blob(backup_store, target, sha256)
        except BlobNotFound:
            missing.append(sha256)  # reported, never silently dropped
    lost = set(missing)
    holds = {k: v for k, v in manifest.get("holds", {}).items() if k not in lost}
    return BackupReport(len(names) - len(missing), total, missing, _apply_holds(target, holds))
