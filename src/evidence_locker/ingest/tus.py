"""The tus 1.0 protocol as plain functions: header parsing and validation, no I/O.

Spec: https://tus.io/protocols/resumable-upload (core, creation, creation-with-upload, checksum,
termination, expiration).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import re
from dataclasses import dataclass
from email.utils import format_datetime

TUS_VERSION = "1.0.0"
EXTENSIONS = "creation,creation-with-upload,checksum,termination,expiration"
CHECKSUM_ALGORITHMS = ("sha1", "sha256")
OFFSET_CONTENT_TYPE = "application/offset+octet-stream"

DEVICE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
RECORDING_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
KINDS = ("clip", "sidecar", "track")
MAX_METADATA_HEADER = 8192


class TusError(Exception):
    """An expected protocol refusal: becomes an HTTP status with a JSON problem body."""

    def __init__(self, status: int, title: str, detail: str = "") -> None:
        super().__init__(f"{status} {title}: {detail}")
        self.status = status
        self.title = title
        self.detail = detail


@dataclass(frozen=True)
class FileMetadata:
    """What an uploaded file says about itself, validated."""

    device: str
    recording: str
    kind: str
    index: int
    filename: str
    sha256: str
    officer: str | None = None
    clock_drift_seconds: float | None = None


def parse_metadata_header(header: str) -> dict[str, bytes]:
    """`key base64value, key2 base64value2` → raw values. Keys are ASCII, unique, no spaces."""
    if len(header) > MAX_METADATA_HEADER:
        raise TusError(400, "Upload-Metadata too long")
    out: dict[str, bytes] = {}
    if not header.strip():
        return out
    for pair in header.split(","):
        parts = pair.strip().split(" ")
        if len(parts) not in (1, 2) or not parts[0]:
            raise TusError(400, "Malformed Upload-Metadata", f"cannot parse pair {pair.strip()!r}")
        key = parts[0]
        if not key.isascii() or not key.isprintable():
            raise TusError(400, "Malformed Upload-Metadata", "keys must be printable ASCII")
        if key in out:
            raise TusError(400, "Malformed Upload-Metadata", f"duplicate key {key!r}")
        try:
            value = base64.b64decode(parts[1], validate=True) if len(parts) == 2 else b""
        except (binascii.Error, ValueError) as exc:
            raise TusError(400, "Malformed Upload-Metadata", f"{key}: not base64") from exc
        out[key] = value
    return out


def _text(raw: dict[str, bytes], key: str, *, required: bool = True) -> str | None:
    if key not in raw:
        if required:
            raise TusError(400, "Missing metadata", f"Upload-Metadata must include {key!r}")
        return None
    try:
        return raw[key].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TusError(400, "Invalid metadata", f"{key} is not valid UTF-8") from exc


def check_filename(name: str) -> str:
    """A display name only (storage is by hash), but device input: no paths, no control chars."""
    if not name or len(name) > 255:
        raise TusError(400, "Invalid filename", "filename must be 1–255 characters")
    if "/" in name or "\\" in name or name in (".", "..") or name.startswith("."):
        raise TusError(400, "Invalid filename", "filename must not be a path")
    if any(not ch.isprintable() for ch in name):
        raise TusError(400, "Invalid filename", "filename must not contain control characters")
    return name


def parse_file_metadata(header: str | None) -> FileMetadata:
    raw = parse_metadata_header(header or "")
    device = _text(raw, "device") or ""
    recording = _text(raw, "recording") or ""
    kind = _text(raw, "kind") or ""
    if not DEVICE_RE.match(device):
        raise TusError(400, "Invalid metadata", "device must be a camera serial [A-Za-z0-9._-]")
    if not RECORDING_RE.match(recording):
        raise TusError(400, "Invalid metadata", "recording must be [A-Za-z0-9._:-], ≤128 chars")
    if kind not in KINDS:
        raise TusError(400, "Invalid metadata", f"kind must be one of {', '.join(KINDS)}")
    index_text = _text(raw, "index", required=False) or "1"
    if not index_text.isdigit() or not 1 <= int(index_text) <= 10_000:
        raise TusError(400, "Invalid metadata", "index must be an integer from 1")
    filename = check_filename(_text(raw, "filename") or "")
    sha256 = (_text(raw, "sha256") or "").lower()
    if not re.fullmatch(r"[0-9a-f]{64}", sha256):
        raise TusError(400, "Invalid metadata", "sha256 must be the file's SHA-256 in hex")
    officer = _text(raw, "officer", required=False)
    drift_text = _text(raw, "clock_drift", required=False)
    drift: float | None = None
    if drift_text is not None:
        try:
            drift = float(drift_text)
        except ValueError as exc:
            raise TusError(400, "Invalid metadata", "clock_drift must be seconds") from exc
        if not -10 * 365 * 86400 < drift < 10 * 365 * 86400:
            raise TusError(400, "Invalid metadata", "clock_drift out of range")
    return FileMetadata(
        device=device,
        recording=recording,
        kind=kind,
        index=int(index_text),
        filename=filename,
        sha256=sha256,
        officer=officer,
        clock_drift_seconds=drift,
    )


def parse_length(value: str | None, name: str) -> int:
    if value is None:
        raise TusError(400, f"Missing {name}")
    if not value.isdigit() or len(value) > 19:
        raise TusError(400, f"Invalid {name}", f"{name} must be a non-negative integer")
    return int(value)


@dataclass(frozen=True)
class Checksum:
    algorithm: str
    digest: bytes

    def new_hasher(self) -> hashlib._Hash:
        return hashlib.new(self.algorithm)


def parse_checksum(value: str | None) -> Checksum | None:
    if value is None:
        return None
    parts = value.strip().split(" ")
    if len(parts) != 2:
        raise TusError(400, "Malformed Upload-Checksum", "expected '<algorithm> <base64>'")
    algorithm, encoded = parts
    if algorithm not in CHECKSUM_ALGORITHMS:
        raise TusError(400, "Unsupported checksum algorithm", f"supported: {CHECKSUM_ALGORITHMS}")
    try:
        digest = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise TusError(400, "Malformed Upload-Checksum", "digest is not base64") from exc
    if len(digest) != hashlib.new(algorithm).digest_size:
        raise TusError(400, "Malformed Upload-Checksum", "digest has the wrong length")
    return Checksum(algorithm, digest)


def http_date(when: dt.datetime) -> str:
    return format_datetime(when.astimezone(dt.UTC), usegmt=True)
