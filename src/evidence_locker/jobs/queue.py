"""Background jobs on huey: SQLite-backed in the embedded default, Redis at scale.

Jobs carry ids only and are idempotent; they are enqueued only after the transaction that caused
them commits. The same job code runs in-process (`locker serve`) and in `locker worker`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from huey import Huey, RedisHuey, SqliteHuey
from huey.consumer import Consumer
from sqlalchemy.orm import Session

from evidence_locker.db import after_commit

log = logging.getLogger(__name__)


def make_huey(queue_url: str, *, name: str = "evidence-locker") -> Huey:
    parsed = urlparse(queue_url)
    if parsed.scheme == "sqlite":
        path = Path(unquote(parsed.path))
        path.parent.mkdir(parents=True, exist_ok=True)
        return SqliteHuey(name=name, filename=str(path), fsync=True, timeout=30)
    if parsed.scheme in ("redis", "rediss"):
        # `?name=` separates several deployments (or test runs) sharing one Redis.
        query = dict(pair.split("=", 1) for pair in parsed.query.split("&") if "=" in pair)
        url = queue_url.split("?", 1)[0]
        return RedisHuey(name=query.get("name", name), url=url)
    raise ValueError(f"unsupported queue URL scheme: {parsed.scheme}")


class Jobs:
    """Names jobs, enqueues them after commit, and runs them in-process when asked."""

    def __init__(self, huey: Huey) -> None:
        self.huey = huey
        self._tasks: dict[str, Any] = {}
        self._consumer: Consumer | None = None

    def register(self, name: str, fn: Callable[..., Any], *, retries: int = 3) -> None:
        self._tasks[name] = self.huey.task(retries=retries, retry_delay=5, name=name)(fn)

    def enqueue(self, name: str, *args: Any) -> None:
        self._tasks[name](*args)

    def enqueue_after_commit(self, session: Session, name: str, *args: Any) -> None:
        """The change has committed by the time this runs, so a queue that is down must not undo
        the answer: the job is logged as lost and the stalled-job sweep sends it again."""

        def send() -> None:
            try:
                self.enqueue(name, *args)
            except Exception:  # noqa: BLE001 - any queue failure; the sweep recovers it
                log.exception("queue unavailable: job %s%r not sent; the sweep will resend it",
                              name, args)

        after_commit(session, send)

    def pending(self) -> int:
        return int(self.huey.pending_count())

    def run_pending(self, limit: int = 10_000) -> int:
        """Execute queued jobs in this thread until the queue is empty (tests and `make run`)."""
        done = 0
        while done < limit:
            task = self.huey.dequeue()
            if task is None:
                break
            self.huey.execute(task)
            done += 1
        return done

    def start_workers(self, workers: int) -> None:
        """Worker threads inside this process (the embedded default)."""
        consumer = _ThreadConsumer(self.huey, workers=workers, worker_type="thread", periodic=True)
        consumer.start()
        self._consumer = consumer

    def stop_workers(self) -> None:
        if self._consumer is not None:
            self._consumer.stop(graceful=True)
            self._consumer = None


class _ThreadConsumer(Consumer):
    """huey's consumer without its signal handlers: the web server owns the signals."""

    def _set_signal_handlers(self) -> None:
        return None

