"""A lease on an upload row: the one writer of its bytes, whichever process or node it is on.

A lease ends when its holder releases it, when it expires (a node died), or at once when the
holder was a process on this host that no longer exists (a restart after a crash need not wait).
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import or_, select, update

from evidence_locker.db import transaction
from evidence_locker.ingest.models import Upload
from evidence_locker.ingest.tus import TusError
from evidence_locker.runtime import Runtime

LEASE_SECONDS = 30
HOST = socket.gethostname()[:100]


def _owner() -> str:
    return f"{HOST}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


def holder_is_dead(owner: str) -> bool:
    """True only when the holder was another process on this host that no longer exists."""
    parts = owner.rsplit(":", 2)
    if len(parts) != 3:
        return False
    host, pid_text, _nonce = parts
    if host != HOST or not pid_text.isdigit() or int(pid_text) == os.getpid():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


class Lease:
    def __init__(self, runtime: Runtime, upload_id: str) -> None:
        self.runtime = runtime
        self.upload_id = upload_id
        self.owner = _owner()
        self.until: dt.datetime | None = None
        self.upload: Upload | None = None  # the row as it stood when the lease was taken

    def acquire(self) -> Upload:
        """Take the lease and return the upload row as it stands under it (one transaction)."""
        now = self.runtime.clock.now()
        until = now + dt.timedelta(seconds=LEASE_SECONDS)
        with transaction(self.runtime.sessions) as session:
            holder = session.scalars(
                select(Upload.lease_owner).where(Upload.id == self.upload_id)).one_or_none()
            free = or_(Upload.lease_owner.is_(None), Upload.lease_until <= now)
            if holder is not None and holder_is_dead(holder):
                free = or_(free, Upload.lease_owner == holder)
            got = session.execute(
                update(Upload).where(Upload.id == self.upload_id).where(free)
                .values(lease_owner=self.owner, lease_until=until))
            if got.rowcount != 1:  # type: ignore[attr-defined]
                raise TusError(423, "Upload locked",
                               "another request is writing this upload; retry shortly")
            upload = session.get(Upload, self.upload_id)
            assert upload is not None
        self.until = until
        self.upload = upload
        return upload

    def renew_if_due(self) -> None:
        """Called as bytes arrive: a long PATCH keeps its lease."""
        now = self.runtime.clock.now()
        if self.until is None or self.until - now > dt.timedelta(seconds=LEASE_SECONDS * 2 / 3):
            return
        until = now + dt.timedelta(seconds=LEASE_SECONDS)
        with transaction(self.runtime.sessions) as session:
            got = session.execute(
                update(Upload).where(Upload.id == self.upload_id)
                .where(Upload.lease_owner == self.owner).values(lease_until=until))
            if got.rowcount != 1:  # type: ignore[attr-defined]
                raise TusError(409, "Lease lost", "this upload was taken over; HEAD and resume")
        self.until = until

    def release(self) -> None:
        if self.until is None:
            return
        with transaction(self.runtime.sessions) as session:
            session.execute(
                update(Upload).where(Upload.id == self.upload_id)
                .where(Upload.lease_owner == self.owner)
                .values(lease_owner=None, lease_until=None))
        self.until = None


@contextmanager
def leased(runtime: Runtime, upload_id: str) -> Iterator[Lease]:
    lease = Lease(runtime, upload_id)
    lease.acquire()
    try:
        yield lease
    finally:
        lease.release()
