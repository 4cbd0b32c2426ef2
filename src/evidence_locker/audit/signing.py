"""The force's Ed25519 keys for audit checkpoints: made once, private half only on the signer.

A key is named by its key id, the first 16 hex digits of SHA-256 over the raw 32-byte public
key, so a verifier needs no configuration beyond the public keys themselves, and a rotated key
(a new private key on the worker, its public key added to the verifiers' list) leaves every old
checkpoint verifiable under the key id it names.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

#: Prefix of a public key in its text form: `ed25519:` + base64 of the raw 32 bytes.
PUBLIC_PREFIX = "ed25519:"


class SigningKeyError(ValueError):
    """A key file or public key text that cannot be used; the message says why."""


def key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def public_key_text(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return PUBLIC_PREFIX + base64.b64encode(raw).decode("ascii")


def parse_public_key(text: str) -> Ed25519PublicKey:
    """`ed25519:BASE64` (what keygen prints), bare base64 of 32 bytes, or a PEM public key."""
    value = text.strip()
    try:
        if value.startswith("-----BEGIN"):
            key = serialization.load_pem_public_key(value.encode("ascii"))
            if not isinstance(key, Ed25519PublicKey):
                raise SigningKeyError("not an Ed25519 public key")
            return key
        value = value.removeprefix(PUBLIC_PREFIX)
        raw = base64.b64decode(value, validate=True)
        return Ed25519PublicKey.from_public_bytes(raw)
    except (ValueError, binascii.Error) as exc:
        if isinstance(exc, SigningKeyError):
            raise
        raise SigningKeyError(f"cannot read public key {text[:20]!r}...: {exc}") from exc


def write_private_key(path: Path) -> Ed25519PrivateKey:
    """Make a new key into `path` (PKCS#8 PEM, mode 0600); refuses to overwrite a file."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
        fh.flush()
        os.fsync(fh.fileno())
    return key


@dataclass(frozen=True)
class Signer:
    """The private key that signs checkpoints, with its key id."""

    key: Ed25519PrivateKey
    key_id: str

    @classmethod
    def from_file(cls, path: Path) -> Signer:
        try:
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except (OSError, ValueError, TypeError) as exc:
            raise SigningKeyError(f"cannot read the audit signing key {path}: {exc}") from exc
        if not isinstance(key, Ed25519PrivateKey):
            raise SigningKeyError(f"{path} is not an Ed25519 private key")
        return cls(key, key_id(key.public_key()))

    def sign(self, payload: bytes) -> str:
        return base64.b64encode(self.key.sign(payload)).decode("ascii")


@dataclass(frozen=True)
class KeyRing:
    """The public keys a verifier trusts, by key id (old ones stay after a rotation)."""

    keys: dict[str, Ed25519PublicKey]

    @classmethod
    def from_texts(cls, texts: list[str]) -> KeyRing:
        keys: dict[str, Ed25519PublicKey] = {}
        for text in texts:
            public = parse_public_key(text)
            keys[key_id(public)] = public
        return cls(keys)

    @staticmethod
    def read_file(path: Path) -> list[str]:
        """One public key per line; blank lines and `#` comments are ignored."""
        try:
            lines = path.read_text().splitlines()
        except OSError as exc:
            raise SigningKeyError(f"cannot read the audit public keys file {path}: {exc}") from exc
        return [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]

    def __bool__(self) -> bool:
        return bool(self.keys)

    def verify(self, key_id_: str, payload: bytes, signature: str) -> str | None:
        """None if the signature is good, else why not."""
        public = self.keys.get(key_id_)
        if public is None:
            return f"signed by unknown key {key_id_}"
        try:
            public.verify(base64.b64decode(signature, validate=True), payload)
        except (InvalidSignature, ValueError, binascii.Error):
            return f"signature does not verify under key {key_id_} (forged or altered)"
        return None
