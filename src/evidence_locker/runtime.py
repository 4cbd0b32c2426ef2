"""The collaborators one process needs, built once from settings and passed to services."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from evidence_locker.clock import Clock, SystemClock
from evidence_locker.config import Settings
from evidence_locker.db import make_engine, make_session_factory
from evidence_locker.jobs.queue import Jobs, make_huey
from evidence_locker.storage.base import BlobStore, open_store
from evidence_locker.web.metrics import Metrics


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    store: BlobStore
    jobs: Jobs
    clock: Clock = field(default_factory=SystemClock)
    metrics: Metrics = field(default_factory=Metrics)

    def close(self) -> None:
        self.jobs.stop_workers()
        self.engine.dispose()


def build_runtime(settings: Settings, *, clock: Clock | None = None) -> Runtime:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.resolved_database_url,
                         pool_size=settings.database_pool_size,
                         max_overflow=settings.database_max_overflow,
                         server_side_prepare=settings.database_server_side_prepare)
    runtime = Runtime(
        settings=settings,
        engine=engine,
        sessions=make_session_factory(engine),
        store=open_store(settings.resolved_storage_url),
        jobs=Jobs(make_huey(settings.resolved_queue_url)),
        clock=clock or SystemClock(),
    )
    from evidence_locker.jobs.tasks import register_tasks

    register_tasks(runtime)
    runtime.metrics.watch(runtime)
    return runtime
