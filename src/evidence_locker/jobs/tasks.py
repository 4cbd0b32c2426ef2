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

    def audit_checkpoint() -> None:
        audit_checkpoint_job(runtime)

    def retention_sweep() -> None:
        retention_sweep_job(runtime)

    def retention_digest() -> None:
        from evidence_locker.lifecycle.digest import write_digests

        with transaction(runtime.sessions) as session:
            write_digests(session, clock=runtime.clock, settings=runtime.settings)

    jobs.register("probe_file", probe_file)
    jobs.huey.periodic_task(crontab(minute="*/5"), name="upload_housekeeping")(upload_housekeeping)
    jobs.huey.periodic_task(crontab(minute="*/10"), name="requeue_stalled")(requeue_stalled)
    jobs.huey.periodic_task(crontab(minute="17"), name="fixity")(fixity)
    if runtime.settings.retention_sweep_minute:
        jobs.huey.periodic_task(crontab(minute=runtime.settings.retention_sweep_minute),
                                name="retention_sweep")(retention_sweep)
    if runtime.settings.retention_digest_weekday:
        jobs.huey.periodic_task(crontab(minute="0", hour=runtime.settings.retention_digest_hour,
                                        day_of_week=runtime.settings.retention_digest_weekday),
                                name="retention_digest")(retention_digest)
    if runtime.settings.audit_signing_key_file and runtime.settings.audit_checkpoint_minute:
        jobs.huey.periodic_task(crontab(minute=runtime.settings.audit_checkpoint_minute),
                                name="audit_checkpoint")(audit_checkpoint)


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


def audit_checkpoint_job(runtime: Runtime) -> None:
    """Sign the audit chain head (only nodes given the signing key schedule this). A broken
    chain is logged as an error and left unsigned for `locker audit verify` to name."""
    import logging

    from evidence_locker.audit.checkpoints import make_checkpoint
    from evidence_locker.audit.signing import Signer

    settings = runtime.settings
    assert settings.audit_signing_key_file is not None
    outcome = make_checkpoint(runtime.sessions, clock=runtime.clock,
                              signer=Signer.from_file(settings.audit_signing_key_file),
                              directory=settings.resolved_audit_checkpoint_dir)
    log = logging.getLogger(__name__)
    if outcome.problem is not None:
        log.error("audit checkpoint refused: %s", outcome.problem)
    elif outcome.made is not None:
        log.info("audit checkpoint signed: %s", outcome.made.describe())


def retention_sweep_job(runtime: Runtime) -> None:
    """Delete what the rule of deletion allows (lifecycle/sweep.py). On scale-out only the
    process holding the LIFECYCLE credential can delete: set LOCKER_RETENTION_SWEEP_MINUTE=""
    on the others, whose deletions would be refused (and retried by the next run)."""
    import logging

    from evidence_locker.lifecycle.sweep import run_sweep

    result = run_sweep(runtime.sessions, clock=runtime.clock, settings=runtime.settings,
                       store=runtime.store)
    runtime.metrics.retention.labels("deleted").inc(result.deleted)
    runtime.metrics.retention.labels("failed").inc(len(result.failed))
    logging.getLogger(__name__).info(
        "retention sweep: %d deleted, %d kept, %d failed", result.deleted, result.kept,
        len(result.failed))
