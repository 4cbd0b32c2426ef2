"""Shared fixtures: a real database and blob store per test, the real app, real servers.

`LOCKER_TEST_PROFILE` picks the deployment every storage/database/ingest test runs on:
`embedded` (SQLite + local files + a SQLite job queue, the default) or `scale-out` (PostgreSQL +
SeaweedFS S3 + Redis, started once per test session by tests/services.py, or reused from
`python tests/services.py up`).
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from evidence_locker.db import upgrade
from evidence_locker.runtime import Runtime, build_runtime
from evidence_locker.storage.base import BlobStore
from evidence_locker.web.app import create_app
from support import CHEAP, TEST_ACTOR, Deployment, Force, MovingClock, make_force, make_settings  # noqa: F401


@pytest.fixture
def clock() -> MovingClock:
    return MovingClock()


PROFILE = os.environ.get("LOCKER_TEST_PROFILE", "embedded")
if PROFILE not in ("embedded", "scale-out"):
    raise RuntimeError(f"LOCKER_TEST_PROFILE must be embedded or scale-out, not {PROFILE!r}")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "embedded_only: needs the local filesystem store")
    config.addinivalue_line("markers", "scale_out_only: needs PostgreSQL and the S3 servers")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests that only make sense on one deployment are deselected on the other, not skipped."""
    other = "embedded_only" if PROFILE == "scale-out" else "scale_out_only"
    dropped = [i for i in items if i.get_closest_marker(other) is not None]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [i for i in items if i.get_closest_marker(other) is None]


@dataclass
class ScaleOut:
    services: Any
    bucket: str
    template_db: str


@pytest.fixture(scope="session")
def scale_out(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScaleOut | None]:
    """PostgreSQL + SeaweedFS for the scale-out profile; None on the embedded one."""
    if PROFILE != "scale-out":
        yield None
        return
    import services as svc

    started = None
    found = svc.services_from_env()
    if found is None or not found.database_url or not found.queue_url:
        try:
            started = found = svc.start_services()
        except svc.ServiceUnavailable as exc:
            pytest.fail(f"the scale-out profile needs PostgreSQL and SeaweedFS: {exc}")
    assert found is not None
    # Other fixtures (the storage contract suite) find the same servers through the environment.
    os.environ.update(found.env())
    # The web and ingest processes use the ingest credential: no delete, no lifting holds.
    os.environ["AWS_ACCESS_KEY_ID"] = found.s3_ingest.access_key
    os.environ["AWS_SECRET_ACCESS_KEY"] = found.s3_ingest.secret_key
    os.environ["AWS_REGION"] = found.s3_region
    bucket = f"locker-{secrets.token_hex(4)}"
    found.create_bucket(bucket)
    template = f"tpl_{secrets.token_hex(4)}"
    _admin_sql(found.database_url, f"CREATE DATABASE {template}")
    upgrade(_with_database(found.database_url, template))
    try:
        yield ScaleOut(found, bucket, template)
    finally:
        _admin_sql(found.database_url, f"DROP DATABASE IF EXISTS {template} WITH (FORCE)")
        if started is not None:
            started.stop()


def _with_database(url: str, name: str) -> str:
    return url.rsplit("/", 1)[0] + "/" + name


def _admin_sql(url: str, sql: str) -> None:
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(sql))
    finally:
        engine.dispose()


@pytest.fixture
def deployment(tmp_path: Path, scale_out: ScaleOut | None) -> Iterator[Deployment]:
    if scale_out is None:
        yield Deployment({}, {})
        return
    name = f"t_{secrets.token_hex(6)}"
    _admin_sql(scale_out.services.database_url,
               f"CREATE DATABASE {name} TEMPLATE {scale_out.template_db}")
    db_url = _with_database(scale_out.services.database_url, name)
    storage_url = scale_out.services.storage_url(scale_out.bucket, prefix=name)
    queue_url = f"{scale_out.services.queue_url}?name={name}"
    env = {"LOCKER_DATABASE_URL": db_url, "LOCKER_STORAGE_URL": storage_url,
           "LOCKER_QUEUE_URL": queue_url,
           "AWS_ACCESS_KEY_ID": os.environ["AWS_ACCESS_KEY_ID"],
           "AWS_SECRET_ACCESS_KEY": os.environ["AWS_SECRET_ACCESS_KEY"],
           "AWS_REGION": os.environ["AWS_REGION"]}
    try:
        yield Deployment({"database_url": db_url, "storage_url": storage_url,
                          "queue_url": queue_url}, env)
    finally:
        _admin_sql(scale_out.services.database_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def empty_deployment(tmp_path: Path, scale_out: ScaleOut | None) -> Iterator[Deployment]:
    """Somewhere to restore into: an empty data directory, or an empty PostgreSQL database and a
    new Object Lock bucket (site B), reached with the bucket administrator's credential, as the
    platform team runs a restore."""
    if scale_out is None:
        data_dir = tmp_path / "restored"
        yield Deployment({"data_dir": data_dir}, {"LOCKER_DATA_DIR": str(data_dir)})
        return
    svc = scale_out.services
    name = f"r_{secrets.token_hex(6)}"
    _admin_sql(svc.database_url, f"CREATE DATABASE {name}")
    svc.create_bucket(name.replace("_", "-"))
    db_url = _with_database(svc.database_url, name)
    storage_url = svc.storage_url(name.replace("_", "-"))
    env = {"LOCKER_DATA_DIR": str(tmp_path / "restored"), "LOCKER_DATABASE_URL": db_url,
           "LOCKER_STORAGE_URL": storage_url,
           "LOCKER_QUEUE_URL": f"{svc.queue_url}?name={name}",
           "AWS_ACCESS_KEY_ID": svc.s3_admin.access_key,
           "AWS_SECRET_ACCESS_KEY": svc.s3_admin.secret_key, "AWS_REGION": svc.s3_region}
    try:
        yield Deployment({"database_url": db_url, "storage_url": storage_url}, env)
    finally:
        _admin_sql(svc.database_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def lifecycle_store(runtime: Runtime, scale_out: ScaleOut | None) -> BlobStore:
    """The runtime's store through the lifecycle credential (may lift holds, bypass governance);
    the embedded store has no credentials."""
    if scale_out is None:
        return runtime.store
    from evidence_locker.storage.s3 import S3BlobStore

    cred = scale_out.services.s3_lifecycle
    return S3BlobStore.from_url(runtime.settings.resolved_storage_url,
                                access_key=cred.access_key, secret_key=cred.secret_key)


@pytest.fixture
def runtime(tmp_path: Path, clock: MovingClock, deployment: Deployment) -> Iterator[Runtime]:
    settings = make_settings(tmp_path / "var", **deployment.overrides)
    upgrade(settings.resolved_database_url)
    rt = build_runtime(settings, clock=clock)
    yield rt
    rt.close()


@pytest.fixture
def client(runtime: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(runtime, background=False)) as c:
        yield c


@pytest.fixture
def force(runtime: Runtime) -> Force:
    return make_force(runtime)


def b64(value: str | bytes) -> str:
    raw = value.encode() if isinstance(value, str) else value
    return base64.b64encode(raw).decode()


def metadata(**values: str) -> str:
    return ",".join(f"{k} {b64(v)}" for k, v in values.items())


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
