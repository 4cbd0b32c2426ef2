"""Settings, parsed once and typed: `LOCKER_*` environment variables over an optional TOML file."""

from __future__ import annotations

import ipaddress
import os
import secrets
from functools import cached_property
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

GIB = 1024**3


def is_loopback_url(url: str) -> bool:
    """True if the URL's host is this machine (localhost, 127.0.0.0/8, ::1)."""
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_idp_url(url: str) -> str:
    """An identity provider's URL must be https; plain http only on loopback (the tests' own
    provider), since a token endpoint over http hands the client secret and the user's tokens
    to anyone on the path."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return url
    if parts.scheme == "http" and is_loopback_url(url):
        return url
    raise ValueError(f"{url!r} must be an https URL (plain http only on loopback)")


class RetentionCategory(BaseModel):
    """One configured evidence category and its retention rule (lifecycle/rules.py)."""

    name: str = Field(min_length=1, max_length=100)
    kind: Literal["fixed", "review", "case-closed"]
    days: int = Field(ge=0, le=100 * 366)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LOCKER_", extra="ignore")

    data_dir: Path = Path("var")
    database_url: str | None = None
    storage_url: str | None = None
    queue_url: str | None = None

    # PostgreSQL connections per process; behind PgBouncer (transaction mode, before 1.21) set
    # database_server_side_prepare = false.
    database_pool_size: int = 10
    database_max_overflow: int = 20
    database_server_side_prepare: bool = True

    force_name: str = "Demo Constabulary"
    # The force's zone: times are stored in UTC and displayed in this zone.
    timezone: str = "Europe/London"

    tus_max_size: int = 64 * GIB
    # Below this much free space the ingest answers 507 and accepts nothing new.
    min_free_bytes: int = 1 * GIB
    upload_expiry_hours: int = 72

    # A camera clock before this year, or ahead of the server by more than this, is suspect.
    clock_floor_year: int = 2015
    clock_future_tolerance_seconds: int = 24 * 3600

    # Background work: in-process job workers and the audit sequencer (off for ingest-only nodes).
    run_workers: bool = True
    job_workers: int = 2
    sequencer_interval_seconds: float = 1.0

    # Fixity: every blob is re-read and hashed at least this often; the sweep runs hourly.
    fixity_max_age_days: int = 90
    fixity_batch: int = 200
    # A probe job that has not run this long after its file arrived is sent again.
    stalled_job_minutes: int = 10

    # Argon2id cost; lower only in tests.
    argon2_time_cost: int = 3
    argon2_memory_cost: int = 65536

    session_hours: int = 12
    secure_cookies: bool = False

    # Playing or downloading someone else's footage asks for one of these purposes and a reason
    # (DPA 2018 s.62); the grant it yields lasts this long (catalogue/access.py).
    access_purposes: list[str] = Field(default_factory=lambda: [
        "investigation", "complaint or conduct matter", "disclosure / prosecution",
        "supervision and quality review", "subject access request", "legal advice", "training"])
    access_grant_minutes: int = Field(default=60, ge=1, le=24 * 60)

    secret_key: str | None = Field(default=None, repr=False)

    # Optional OpenID Connect sign-in with the force's identity provider (accounts/oidc.py). On
    # when issuer, client id and secret are all set. The IdP only authenticates: the identity is
    # matched by `oidc_claim` to an existing, active local user (its username, or the collar
    # number of the officer the user is linked to), whose role and unit stay managed here.
    # Nobody is created on first sign-in, because roles must be granted deliberately. The
    # redirect URI defaults to this server's /login/oidc/callback as the request saw it; set it
    # behind a proxy. Scale-out nodes need one shared LOCKER_SECRET_KEY (it signs the state).
    oidc_issuer: str | None = None
    oidc_client_id: str | None = None
    oidc_client_secret: str | None = Field(default=None, repr=False)
    oidc_display_name: str = "single sign-on"
    oidc_claim: str = "preferred_username"
    oidc_claim_matches: Literal["username", "collar"] = "username"
    oidc_scopes: str = "openid profile"
    oidc_redirect_uri: str | None = None

    # Signed audit checkpoints (see deploy/AUDIT-CHECKPOINTS.md). The worker signs the chain head
    # with the private key file (made by `locker audit keygen`, mode 0600, never in the repo);
    # verifiers need only public keys: a list here and/or a file of them, one per line, so that
    # old checkpoints stay verifiable after a key rotation. Checkpoints go to the database and,
    # as the copy outside it, to `checkpoints.jsonl` in the checkpoint directory (ship it off-host).
    audit_signing_key_file: Path | None = None
    audit_public_keys: list[str] = []
    audit_public_keys_file: Path | None = None
    audit_checkpoint_dir: Path | None = None  # default: data_dir / "audit-checkpoints"
    # Cron minute field of the periodic checkpoint job; "" turns the job off.
    audit_checkpoint_minute: str = "*/15"
    # Access-pattern alerts (`locker audit alerts`, /api/v1/audit/alerts): a user is reported
    # who, within the window, looked at this many distinct recordings of other officers, this
    # many outside their own unit, or this many restricted ones.
    audit_alert_many_recordings: int = Field(default=25, ge=1)
    audit_alert_outside_unit: int = Field(default=5, ge=1)
    audit_alert_restricted: int = Field(default=1, ge=1)
    # A PDF audit export holds at most this many events (narrow the window, or take the CSV).
    audit_pdf_max_events: int = Field(default=5000, ge=1)

    # Evidence lifecycle (lifecycle/): unflagged footage goes at the later of *recorded + N
    # days* and *received + review window* (so footage docked late can still be looked at); a
    # withdrawn flag keeps at least the review window from the withdrawal. Categories are
    # `[[retention_categories]]` tables: name, kind (fixed | review | case-closed), days;
    # `locker retention categories apply` records them as versions. Flag references must match
    # the pattern. The sweep runs on this cron minute ("" turns the job off: only a process whose
    # object-store credential is the LIFECYCLE one can delete on scale-out).
    retention_unflagged_days: int = Field(default=31, ge=1)
    retention_review_window_days: int = Field(default=7, ge=0)
    retention_categories: list[RetentionCategory] = []
    retention_reference_pattern: str = r"^[A-Za-z0-9][A-Za-z0-9/._-]{2,63}$"
    retention_sweep_minute: str = "*/15"
    retention_batch: int = Field(default=200, ge=1)
    # The weekly digest per unit (lifecycle/digest.py): written as files here (default:
    # data_dir / "digests") on this cron day of week and hour; "" turns the job off.
    retention_digest_dir: Path | None = None
    retention_digest_weekday: str = "1"  # cron: 0 Sunday, 1 Monday, …
    retention_digest_hour: str = "6"

    @field_validator("retention_reference_pattern")
    @classmethod
    def _reference_pattern(cls, value: str) -> str:
        import re

        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a regular expression: {exc}") from exc
        return value

    @field_validator("retention_categories")
    @classmethod
    def _unique_categories(cls, value: list[RetentionCategory]) -> list[RetentionCategory]:
        names = [c.name for c in value]
        if len(set(names)) != len(names):
            raise ValueError("retention category names must be unique")
        return value

    @field_validator("oidc_issuer")
    @classmethod
    def _idp_url(cls, value: str | None) -> str | None:
        return check_idp_url(value) if value else None

    @property
    def oidc_enabled(self) -> bool:
        return bool(self.oidc_issuer and self.oidc_client_id and self.oidc_client_secret)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        toml_path = os.environ.get("LOCKER_CONFIG")
        if toml_path:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(toml_path)))
        return tuple(sources)

    @cached_property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'locker.db').resolve()}"

    @cached_property
    def resolved_storage_url(self) -> str:
        if self.storage_url:
            return self.storage_url
        return (self.data_dir / "media").resolve().as_uri()

    @cached_property
    def resolved_queue_url(self) -> str:
        if self.queue_url:
            return self.queue_url
        return f"sqlite:///{(self.data_dir / 'queue.db').resolve()}"

    @cached_property
    def resolved_retention_digest_dir(self) -> Path:
        return self.retention_digest_dir or self.data_dir / "digests"

    @property
    def resolved_audit_checkpoint_dir(self) -> Path:
        return self.audit_checkpoint_dir or self.data_dir / "audit-checkpoints"

    @cached_property
    def resolved_secret_key(self) -> str:
        """The key that signs sessions: from the environment, else a file made once in the data dir.

        Never in the repository.
        """
        if self.secret_key:
            return self.secret_key
        path = self.data_dir / "secret-key"
        if path.exists():
            return path.read_text().strip()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(48)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(key)
        return key


def load_settings(**overrides: Any) -> Settings:
    return Settings(**overrides)
