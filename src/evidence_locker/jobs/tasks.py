"""The background jobs, bound to one process's runtime. Each takes ids only and is idempotent."""

from __future__ import annotations

from typing import TYPE_CHECKING

from huey import crontab

from evidence_locker.db import transaction

if TYPE_CHECKING:
    from evidence_locker.runtime import Runtime


def register_tasks(runtime: Runtime) -> None:
    jobs = runtime.jobs

    def probe_file(file_id: int) -> None:
        from evidence_locker.catalogue.service import probe_file as probe

        with transaction(runtime.sessions) as session:
            probe(session, clock=runtime.clock, store=runtime.store, file_id=file_id)

    def upload_housekeeping() -> None:
        from evidence_locker.ingest.service import expire_uploads, recover_uploads

        recover_uploads(runtime)
        expire_uploads(runtime)

    jobs.register("probe_file", probe_file)
    jobs.huey.periodic_task(crontab(minute="*/5"), name="upload_housekeeping")(upload_housekeeping)
