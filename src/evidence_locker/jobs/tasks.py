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
        from evidence_locker.catalogue.service import probe_job

        probe_job(runtime.sessions, clock=runtime.clock, store=runtime.store, file_id=file_id)

    def fixity() -> None:
        import datetime as dt

        from evidence_locker.catalogue.fixity import fixity_sweep

        settings = runtime.settings
        fixity_sweep(runtime, batch=settings.fixity_batch,
                     max_age=dt.timedelta(days=settings.fixity_max_age_days), max_batches=10)

    def requeue_stalled() -> None:
        requeue_stalled_jobs(runtime)

    def upload_housekeeping() -> None:
        from evidence_locker.ingest.service import expire_uploads, recover_uploads

        recover_uploads(runtime)
        expire_uploads(runtime)

    jobs.register("probe_file", probe_file)
    jobs.huey.periodic_task(crontab(minute="*/5"), name="upload_housekeeping")(upload_housekeeping)
    jobs.huey.periodic_task(crontab(minute="*/10"), name="requeue_stalled")(requeue_stalled)
    jobs.huey.periodic_task(crontab(minute="17"), name="fixity")(fixity)


def requeue_stalled_jobs(runtime: Runtime) -> int:
    """Send again the probe jobs a dead worker took with it (huey pops a job before running it,
    so a worker killed mid-job loses it; the jobs are idempotent, so at-least-once is safe)."""
    import datetime as dt

    from evidence_locker.catalogue.service import requeue_stalled

    with transaction(runtime.sessions) as session:
        ids = requeue_stalled(session, clock=runtime.clock,
                              older_than=dt.timedelta(minutes=runtime.settings.stalled_job_minutes))
    for file_id in ids:
        runtime.jobs.enqueue("probe_file", file_id)
    return len(ids)
