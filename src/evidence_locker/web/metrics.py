"""Prometheus metrics: counters kept by this process, gauges read from the database at scrape
time (so every node reports the same queue depth and fixity failures)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select

if TYPE_CHECKING:
    from evidence_locker.runtime import Runtime


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.uploads = Counter("locker_uploads_total", "Finished uploads by outcome",
                               ["outcome"], registry=self.registry)
        self.upload_bytes = Counter("locker_upload_bytes_total",
                                    "Bytes acknowledged (durably stored) by tus PATCHes",
                                    registry=self.registry)
        self.finish_seconds = Histogram(
            "locker_ingest_finish_seconds",
            "From the last byte received to the 204: fsync, verify SHA-256, catalogue",
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=self.registry)
        self.retention = Counter("locker_retention_recordings_total",
                                 "Recordings the retention sweep deleted, or failed to delete",
                                 ["outcome"], registry=self.registry)

    def watch(self, runtime: Runtime) -> None:
        self.registry.register(_StateCollector(runtime))


class _StateCollector(Collector):
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def collect(self) -> Iterator[Metric]:
        from evidence_locker.catalogue.models import Blob, Recording
        from evidence_locker.db import transaction
        from evidence_locker.ingest.models import Upload

        queue = GaugeMetricFamily("locker_queue_depth", "Jobs waiting in the queue")
        queue.add_metric([], self.runtime.jobs.pending())
        yield queue
        with transaction(self.runtime.sessions) as session:
            failures = session.scalar(select(func.count()).select_from(Blob).where(
                Blob.fixity_state.in_(["mismatch", "missing"]))) or 0
            receiving = session.scalar(select(func.count()).select_from(Upload).where(
                Upload.state == "receiving")) or 0
            incomplete = session.scalar(select(func.count()).select_from(Recording).where(
                Recording.state == "incomplete")) or 0
            # Overdue: past the retention deadline and not yet deleted. It should fall to zero
            # at every sweep; alert if it does not (lifecycle/sweep.py).
            overdue = session.scalar(select(func.count()).select_from(Recording).where(
                Recording.delete_after <= self.runtime.clock.now(),
                Recording.retention_state == "live")) or 0
            deleting = session.scalar(select(func.count()).select_from(Recording).where(
                Recording.retention_state == "deleting")) or 0
        fixity = GaugeMetricFamily("locker_fixity_failures",
                                   "Blobs whose last fixity check found them changed or missing")
        fixity.add_metric([], failures)
        yield fixity
        uploads = GaugeMetricFamily("locker_uploads_in_progress", "tus uploads not yet finished")
        uploads.add_metric([], receiving)
        yield uploads
        recs = GaugeMetricFamily("locker_recordings_incomplete",
                                 "Recordings still waiting for files their sidecar lists")
        recs.add_metric([], incomplete)
        yield recs
        due = GaugeMetricFamily("locker_retention_overdue",
                                "Recordings past their retention deadline, not yet deleted")
        due.add_metric([], overdue)
        yield due
        unfinished = GaugeMetricFamily("locker_retention_deleting",
                                       "Recordings the sweep decided to delete and has not "
                                       "finished (storage refused, or a crash)")
        unfinished.add_metric([], deleting)
        yield unfinished
        yield from self._fleet()

    def _fleet(self) -> Iterator[Metric]:
        from evidence_locker.db import transaction
        from evidence_locker.fleet.queries import DOCKED_WITHIN, fleet_gauges

        with transaction(self.runtime.sessions) as session:
            g = fleet_gauges(session, now=self.runtime.clock.now())
        docks = GaugeMetricFamily("locker_docks_active", "Docks registered and not revoked")
        docks.add_metric([], g.docks_active)
        yield docks
        seen = GaugeMetricFamily(
            "locker_dock_last_heartbeat_timestamp_seconds",
            "When each active dock last called in (0: never); alert on time() minus this",
            labels=["dock"])
        for name, at in sorted(g.dock_last_seen.items()):
            seen.add_metric([name], at)
        yield seen
        minutes = int(DOCKED_WITHIN.total_seconds() // 60)
        for name, help_text, value in (
                ("locker_cameras_docked", f"Cameras a dock reported in the last {minutes} min",
                 g.cameras_docked),
                ("locker_camera_files_waiting", "Files still on docked cameras, to upload",
                 g.files_waiting),
                ("locker_camera_bytes_waiting", "Bytes still on docked cameras, to upload",
                 g.bytes_waiting)):
            family = GaugeMetricFamily(name, help_text)
            family.add_metric([], value)
            yield family
