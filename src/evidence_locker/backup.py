"""Backup and restore of the embedded default (SQLite + local files), consistent by construction.

The database is snapshotted first (SQLite's online backup API: a consistent copy while the
system runs), then every blob it names is copied and its SHA-256 checked on the way. Blobs are
immutable and content-addressed, so media copied after the snapshot is a superset of what the
snapshot refers to. A restore goes into an empty data directory; then `locker audit verify` and
`locker fixity` prove the result. Scale-out deployments use PostgreSQL base backups with WAL
archiving and object-store replication instead (deploy/BACKUP.md).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import uuid
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from evidence_locker.catalogue.models import Blob
from evidence_locker.config import Settings
from evidence_locker.db import make_engine, make_session_factory, transaction
from evidence_locker.storage.base import BlobNotFound, BlobStore, open_store
from evidence_locker.storage.local import LocalBlobStore

MANIFEST = "backup-manifest.json"


class BackupError(Exception):
    pass


@dataclass(frozen=True)
class BackupReport:
    blobs: int
    bytes: int
    missing: list[str]


def _sqlite_path(url: str) -> Path:
    if not url.startswith("sqlite:///"):
        raise BackupError("locker backup covers the embedded default (SQLite); for PostgreSQL "
                          "use base backups with WAL archiving (see deploy/BACKUP.md)")
    return Path(url.removeprefix("sqlite:///"))


def _copy_blob(source: BlobStore, target: LocalBlobStore, sha256: str) -> int:
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


def backup(settings: Settings, destination: Path) -> BackupReport:
    db_path = _sqlite_path(settings.resolved_database_url)
    destination.mkdir(parents=True, exist_ok=True)
    if (destination / "locker.db").exists():
        raise BackupError(f"{destination} already holds a backup")
    # 1. The database, consistent at one instant, while the system keeps running.
    src = sqlite3.connect(db_path)
    dst = sqlite3.connect(destination / "locker.db")
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()
    # 2. Every blob the snapshot names (a superset may exist: blobs are never changed).
    engine = make_engine(f"sqlite:///{destination / 'locker.db'}")
    with transaction(make_session_factory(engine)) as session:
        names = list(session.scalars(select(Blob.sha256).order_by(Blob.sha256)))
    engine.dispose()
    source = open_store(settings.resolved_storage_url)
    target = LocalBlobStore(destination / "media")
    total, missing = 0, []
    for sha256 in names:
        try:
            total += _copy_blob(source, target, sha256)
        except BlobNotFound:
            missing.append(sha256)
    _copy_holds(source, target)
    manifest = {"format": 1, "database": "locker.db", "blobs": len(names) - len(missing),
                "bytes": total, "missing": missing,
                "database_sha256": hashlib.sha256(
                    (destination / "locker.db").read_bytes()).hexdigest()}
    (destination / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return BackupReport(len(names) - len(missing), total, missing)


def _copy_holds(source: BlobStore, target: LocalBlobStore) -> None:
    """The local store keeps retention and legal holds beside the blobs: they travel too."""
    if isinstance(source, LocalBlobStore):
        shutil.copytree(source.root / "holds", target.root / "holds", dirs_exist_ok=True)


def restore(settings: Settings, source: Path) -> BackupReport:
    """Into an empty data directory only: a restore never overwrites a live deployment."""
    db_path = _sqlite_path(settings.resolved_database_url)
    manifest = json.loads((source / MANIFEST).read_text())
    if db_path.exists():
        raise BackupError(f"{db_path} exists: restore only into an empty data directory")
    if hashlib.sha256((source / "locker.db").read_bytes()).hexdigest() != \
            manifest["database_sha256"]:
        raise BackupError("the backup's database does not match its manifest")
    db_path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source / "locker.db", db_path)
    backup_store = LocalBlobStore(source / "media")
    target = open_store(settings.resolved_storage_url)
    if not isinstance(target, LocalBlobStore):
        raise BackupError("restore covers the embedded default's local media store")
    engine = make_engine(settings.resolved_database_url)
    with transaction(make_session_factory(engine)) as session:
        names = list(session.scalars(select(Blob.sha256).order_by(Blob.sha256)))
    engine.dispose()
    total, missing = 0, []
    for sha256 in names:
        try:
            total += _copy_blob(backup_store, target, sha256)
        except BlobNotFound:
            missing.append(sha256)  # reported, never silently dropped
    _copy_holds(backup_store, target)
    return BackupReport(len(names) - len(missing), total, missing)
