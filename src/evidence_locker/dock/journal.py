"""The dock's journal: what it has hashed, where each upload lives, what the server confirmed.

A dock reboot, a pulled camera or a server outage must resume where it stopped and never upload a
file twice: the journal keeps each file's tus URL (so the next attempt asks the server for its
offset instead of starting again) and its state, written before the action it enables (the URL
before the first byte, `confirmed` before the camera's copy is deleted). SQLite in WAL mode with
synchronous=FULL: a power cut loses nothing that was acknowledged.

States: hashed → uploading (URL known) → confirmed (server said durable and verified) → deleted.
`refused` marks a file the server will not take (kept on the camera, reported).
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

STATES = ("hashed", "uploading", "confirmed", "deleted", "refused")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    id INTEGER PRIMARY KEY,
    serial TEXT NOT NULL,
    recording TEXT NOT NULL,
    kind TEXT NOT NULL,
    idx INTEGER NOT NULL,
    path TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    upload_url TEXT,
    state TEXT NOT NULL,
    outcome TEXT,
    detail TEXT,
    updated_at TEXT NOT NULL,
    UNIQUE (serial, path, size, mtime_ns)
);
CREATE INDEX IF NOT EXISTS files_state ON files (state);
"""


@dataclass(frozen=True)
class JournalEntry:
    id: int
    serial: str
    recording: str
    kind: str
    index: int
    path: str
    size: int
    mtime_ns: int
    sha256: str
    upload_url: str | None
    state: str
    outcome: str | None
    detail: str | None


class Journal:
    """One SQLite file per dock, shared by its bays (one connection, one lock: a few writes per
    file, never the bottleneck)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA busy_timeout=10000")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _now(self) -> str:
        return dt.datetime.now(dt.UTC).isoformat()

    def find(self, *, serial: str, path: Path, size: int, mtime_ns: int) -> JournalEntry | None:
        """The entry for this very file (same path, size and modification time), if any."""
        with self._lock:
            row = self._db.execute(
                "SELECT * FROM files WHERE serial=? AND path=? AND size=? AND mtime_ns=?",
                (serial, str(path), size, mtime_ns)).fetchone()
        return _entry(row) if row else None

    def record_hashed(self, *, serial: str, recording: str, kind: str, index: int, path: Path,
                      size: int, mtime_ns: int, sha256: str) -> JournalEntry:
        with self._lock:
            self._db.execute(
                "INSERT INTO files (serial, recording, kind, idx, path, size, mtime_ns, sha256,"
                " state, updated_at) VALUES (?,?,?,?,?,?,?,?,'hashed',?)"
                " ON CONFLICT (serial, path, size, mtime_ns) DO NOTHING",
                (serial, recording, kind, index, str(path), size, mtime_ns, sha256, self._now()))
            row = self._db.execute(
                "SELECT * FROM files WHERE serial=? AND path=? AND size=? AND mtime_ns=?",
                (serial, str(path), size, mtime_ns)).fetchone()
        return _entry(row)

    def _set(self, entry_id: int, **values: object) -> None:
        cols = ", ".join(f"{k}=?" for k in values)
        with self._lock:
            self._db.execute(f"UPDATE files SET {cols}, updated_at=? WHERE id=?",  # noqa: S608
                             (*values.values(), self._now(), entry_id))

    def set_url(self, entry_id: int, url: str | None) -> None:
        """Written before the first byte is sent, so a restart resumes this upload."""
        self._set(entry_id, upload_url=url, state="uploading" if url else "hashed")

    def confirm(self, entry_id: int, outcome: str) -> None:
        """Written before the camera's copy is deleted."""
        self._set(entry_id, state="confirmed", outcome=outcome)

    def deleted(self, entry_id: int) -> None:
        self._set(entry_id, state="deleted")

    def refuse(self, entry_id: int, detail: str) -> None:
        self._set(entry_id, state="refused", detail=detail[:2000])

    def entries(self) -> list[JournalEntry]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM files ORDER BY id").fetchall()
        return [_entry(r) for r in rows]

    def counts(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute("SELECT state, count(*) FROM files GROUP BY state").fetchall()
        return {str(s): int(n) for s, n in rows}


def _entry(row: tuple[object, ...]) -> JournalEntry:
    (id_, serial, recording, kind, idx, path, size, mtime_ns, sha256, url, state, outcome,
     detail, _updated) = row
    return JournalEntry(int(id_), str(serial), str(recording), str(kind), int(idx),  # type: ignore[call-overload]
                        str(path), int(size), int(mtime_ns), str(sha256),  # type: ignore[call-overload]
                        None if url is None else str(url), str(state),
                        None if outcome is None else str(outcome),
                        None if detail is None else str(detail))
