"""Signed checkpoints: the chain head, signed with the force's Ed25519 key, kept in two places.

The chain alone cannot show a wholesale rewrite (every hash recomputed) or a cut-off tail.
A checkpoint can: it is a signed statement "at time T the event with seq S had hash H", made by
a key the database administrator does not hold. Each one goes into `audit_checkpoints` and is
appended (fsync'd) to `checkpoints.jsonl` in the checkpoint directory, which is meant to be
shipped off the host (deploy/AUDIT-CHECKPOINTS.md). Checkpoints form a chain of their own
(`prev` is the SHA-256 of the previous one's signed payload), so a removed one shows as well.

`verify_audit` checks the chain from genesis, or from a signed archive-boundary checkpoint when
a prefix of the log has been archived (partitions detached), and then every checkpoint: its
signature, its place in the checkpoint chain, the same line in the external file, and the hash
the chain has at its seq.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from evidence_locker.audit.chain import (
    ChainReport,
    Checkpoint,
    _take_sequencer_lock,
    first_linked,
    verify_chain,
)
from evidence_locker.audit.models import AuditCheckpoint
from evidence_locker.audit.service import canonical_json
from evidence_locker.audit.signing import KeyRing, Signer
from evidence_locker.clock import Clock
from evidence_locker.db import transaction

#: The file in the checkpoint directory that receives one JSON line per checkpoint.
FILE_NAME = "checkpoints.jsonl"
#: Version of the signed payload.
FORMAT = 1
HEAD = "head"
ARCHIVE_BOUNDARY = "archive-boundary"


@dataclass(frozen=True)
class SignedCheckpoint:
    """One signed chain head, as stored in the table and written to the file."""

    seq: int
    hash: str
    count: int
    signed_at: dt.datetime
    kind: str
    key_id: str
    prev: str | None
    signature: str

    def payload(self) -> bytes:
        """The exact bytes signed: canonical JSON of every field but the signature."""
        return canonical_json(self._fields()).encode("utf-8")

    def digest(self) -> str:
        """What the next checkpoint names as `prev`."""
        return hashlib.sha256(self.payload()).hexdigest()

    def to_line(self) -> str:
        return canonical_json({**self._fields(), "signature": self.signature})

    def describe(self) -> str:
        when = self.signed_at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        return f"seq {self.seq}, signed {when} by key {self.key_id}"

    def _fields(self) -> dict[str, Any]:
        return {
            "v": FORMAT,
            "seq": self.seq,
            "hash": self.hash,
            "count": self.count,
            "signed_at": self.signed_at.astimezone(dt.UTC).isoformat(timespec="microseconds"),
            "kind": self.kind,
            "key_id": self.key_id,
            "prev": self.prev,
        }

    @classmethod
    def from_line(cls, line: str) -> SignedCheckpoint:
        """Parse one file line; ValueError if it is not exactly a checkpoint."""
        try:
            data = json.loads(line)
            if not isinstance(data, dict) or data.get("v") != FORMAT:
                raise ValueError("not a version 1 checkpoint")
            made = cls(
                seq=int(data["seq"]),
                hash=str(data["hash"]),
                count=int(data["count"]),
                signed_at=dt.datetime.fromisoformat(data["signed_at"]),
                kind=str(data["kind"]),
                key_id=str(data["key_id"]),
                prev=None if data["prev"] is None else str(data["prev"]),
                signature=str(data["signature"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a checkpoint: {exc}") from exc
        if made.to_line() != line:
            raise ValueError("not in canonical form (edited)")
        return made

    @classmethod
    def from_row(cls, row: AuditCheckpoint) -> SignedCheckpoint:
        return cls(
            seq=row.seq,
            hash=row.hash,
            count=row.event_count,
            signed_at=row.signed_at,
            kind=row.kind,
            key_id=row.key_id,
            prev=row.prev_digest,
            signature=row.signature,
        )

    def to_row(self) -> AuditCheckpoint:
        return AuditCheckpoint(
            seq=self.seq,
            hash=self.hash,
            event_count=self.count,
            signed_at=self.signed_at,
            kind=self.kind,
            key_id=self.key_id,
            prev_digest=self.prev,
            signature=self.signature,
        )


def checkpoint_file(directory: Path) -> Path:
    return directory / FILE_NAME


def read_file(path: Path) -> tuple[list[SignedCheckpoint], str | None]:
    """The checkpoints in the external file, and what is wrong with the first bad line."""
    if not path.exists():
        return [], None
    found: list[SignedCheckpoint] = []
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            if not raw.endswith(b"\n"):
                return found, f"line {number} of {path} is cut short (truncated)"
            try:
                found.append(SignedCheckpoint.from_line(raw[:-1].decode("utf-8")))
            except (UnicodeDecodeError, ValueError) as exc:
                return found, f"line {number} of {path} is {exc}"
    return found, None


def _append_line(path: Path, line: str) -> None:
    """Append and fsync (and fsync the directory when the file is new): durable before commit."""
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    try:
        os.write(fd, (line + "\n").encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    if new:
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def table_checkpoints(session: Session) -> list[SignedCheckpoint]:
    rows = session.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.id)).all()
    return [SignedCheckpoint.from_row(r) for r in rows]


# --- making checkpoints --------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckpointOutcome:
    """What `make_checkpoint` did: made one, skipped (nothing new), or refused (chain broken)."""

    made: SignedCheckpoint | None
    skipped: str | None = None
    problem: str | None = None
    #: A checkpoint that was in the file but not in the table (a commit lost after the file
    #: write) and was restored to the table.
    restored: SignedCheckpoint | None = None


def make_checkpoint(
    session_factory: sessionmaker[Session],
    *,
    clock: Clock,
    signer: Signer,
    directory: Path,
    kind: str = HEAD,
    at_seq: int | None = None,
    force: bool = False,
    batch: int = 5000,
) -> CheckpointOutcome:
    """Sign the current chain head (or, for an archive boundary, the event at `at_seq`).

    The events since the previous checkpoint are verified first, so a key never signs a chain
    that is already broken. The line goes to the file (fsync'd) before the row commits: if the
    commit is lost, the next run finds the line, checks its signature and restores the row.
    """
    if kind not in (HEAD, ARCHIVE_BOUNDARY):
        raise ValueError(f"unknown checkpoint kind {kind!r}")
    if kind == ARCHIVE_BOUNDARY and at_seq is None:
        raise ValueError("an archive-boundary checkpoint needs at_seq")
    path = checkpoint_file(directory)
    keys = KeyRing({signer.key_id: signer.key.public_key()})
    restored = _restore_lost_row(session_factory, path=path, keys=keys)

    with session_factory() as session:
        existing = table_checkpoints(session)
        session.rollback()
        start = _walk_start(existing, at_seq)
        watch = () if at_seq is None else (at_seq,)
        report = verify_chain(session, batch=batch, start=start, watch=watch)
    if not report.ok:
        return CheckpointOutcome(None, problem=f"chain broken, not signed: {report.problem}",
                                 restored=restored)
    if at_seq is not None:
        if at_seq not in report.seen and not (start is not None and start.seq == at_seq):
            return CheckpointOutcome(None, problem=f"seq {at_seq} is not in the chain",
                                     restored=restored)
        target = Checkpoint(at_seq, report.seen.get(at_seq) or (start.hash if start else ""))
    else:
        head = report.checkpoint
        if head is None:
            return CheckpointOutcome(None, skipped="the chain is empty", restored=restored)
        target = head

    with transaction(session_factory) as session:
        _take_sequencer_lock(session)  # one checkpointer at a time, in the sequencer's turn
        last_row = session.scalars(
            select(AuditCheckpoint).order_by(AuditCheckpoint.id.desc()).limit(1)
        ).first()
        last = None if last_row is None else SignedCheckpoint.from_row(last_row)
        if kind == HEAD and not force and last is not None and last.kind == HEAD \
                and last.seq == target.seq and last.hash == target.hash:
            return CheckpointOutcome(None, skipped=f"no new events since seq {last.seq}",
                                     restored=restored)
        unsigned = SignedCheckpoint(
            seq=target.seq,
            hash=target.hash,
            count=target.seq,
            signed_at=clock.now(),
            kind=kind,
            key_id=signer.key_id,
            prev=None if last is None else last.digest(),
            signature="",
        )
        made = replace(unsigned, signature=signer.sign(unsigned.payload()))
        _append_line(path, made.to_line())
        session.add(made.to_row())
    return CheckpointOutcome(made, restored=restored)


def _walk_start(existing: Sequence[SignedCheckpoint], at_seq: int | None) -> Checkpoint | None:
    """Where the pre-signing walk begins: the newest checkpoint at or before the target.

    Checkpoints are only ever made over a verified walk, so the chain up to the newest one was
    good when it was signed; `verify_audit` re-checks all of it.
    """
    candidates = [c for c in existing if at_seq is None or c.seq <= at_seq]
    if not candidates:
        return None
    best = max(candidates, key=lambda c: c.seq)
    return Checkpoint(best.seq, best.hash)


def _restore_lost_row(
    session_factory: sessionmaker[Session], *, path: Path, keys: KeyRing
) -> SignedCheckpoint | None:
    lines, _bad = read_file(path)
    with transaction(session_factory) as session:
        _take_sequencer_lock(session)
        rows = table_checkpoints(session)
        if len(lines) != len(rows) + 1 or lines[: len(rows)] != rows:
            return None
        lost = lines[-1]
        expected_prev = rows[-1].digest() if rows else None
        if lost.prev != expected_prev or keys.verify(lost.key_id, lost.payload(), lost.signature):
            return None
        session.add(lost.to_row())
        return lost


# --- verifying -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditVerification:
    """The chain report plus what the checkpoints say; `problems[0]` is the first bad one."""

    chain: ChainReport
    checkpoints: int
    signatures_checked: int
    matched: int
    file: Path | None
    start: Checkpoint | None = None
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    #: True when checkpoints exist (or should) but no public key was available to check them.
    unchecked: bool = False

    @property
    def ok(self) -> bool:
        return self.chain.ok and not self.problems


def verify_audit(
    session: Session,
    *,
    keys: KeyRing,
    file: Path | None,
    batch: int = 5000,
) -> AuditVerification:
    """Check the chain and every signed checkpoint against it, the key ring and the file copy."""
    problems: list[str] = []
    warnings: list[str] = []
    table = table_checkpoints(session)
    session.rollback()

    # 1. The table against the copy outside the database.
    reference = table
    if file is not None:
        lines, bad_line = read_file(file)
        if bad_line is not None:
            problems.append(f"external checkpoint file: {bad_line}")
        if not file.exists() and table:
            problems.append(
                f"external checkpoint file {file} is missing but the table holds {len(table)} "
                "checkpoint(s)"
            )
        elif file.exists():
            problems.extend(_compare_copies(table, lines, file))
            if len(lines) > len(table):
                reference = lines  # judge the chain by the fuller (outside) copy
    else:
        warnings.append("no external checkpoint file given: table not compared with its copy")

    # 2. Signatures and the checkpoints' own chain.
    signed: list[tuple[int, SignedCheckpoint]] = []
    checked = 0
    if not keys and reference:
        warnings.append(
            f"{len(reference)} checkpoint(s) NOT checked: no audit public key configured "
            "(audit_public_keys / audit_public_keys_file)"
        )
    prev_digest: str | None = None
    for number, cp in enumerate(reference, start=1):
        if cp.prev != prev_digest:
            problems.append(
                f"checkpoint #{number} ({cp.describe()}) does not follow checkpoint "
                f"#{number - 1}: a checkpoint before it was removed or altered"
            )
        prev_digest = cp.digest()
        if keys:
            why = keys.verify(cp.key_id, cp.payload(), cp.signature)
            checked += 1
            if why is not None:
                problems.append(f"checkpoint #{number} ({cp.describe()}): {why}")
                continue
        signed.append((number, cp))

    # 3. The chain, from genesis or from an archive boundary whose signature was checked.
    start = _archive_start(session, signed) if keys else None
    later = [(n, cp) for n, cp in signed if start is None or cp.seq > start.seq]
    chain = verify_chain(session, batch=batch, start=start, watch={cp.seq for _, cp in later})
    limit = chain.problem_seq if not chain.ok else None
    matched = 0
    for number, cp in later:
        if limit is not None and cp.seq >= limit:
            continue  # past the first broken row: the chain problem is reported instead
        found = chain.seen.get(cp.seq)
        if found is None:
            end = "is empty" if chain.head_seq is None else f"ends at seq {chain.head_seq}"
            problems.append(
                f"checkpoint #{number} ({cp.describe()}) signed an event the chain no longer "
                f"has: the chain {end} (events removed from the end)"
            )
        elif found != cp.hash:
            problems.append(
                f"checkpoint #{number} ({cp.describe()}) does not match the chain: the event at "
                f"seq {cp.seq} has hash {found[:16]}..., the checkpoint signed {cp.hash[:16]}...: "
                "the log was rewritten"
            )
        else:
            matched += 1
    if chain.ok and reference and chain.head_seq is not None:
        covered = max(cp.seq for cp in reference)
        if chain.head_seq > covered:
            warnings.append(
                f"events after seq {covered} (up to {chain.head_seq}) are not yet covered by a "
                "signed checkpoint"
            )
    if not reference and chain.head_seq is not None:
        warnings.append("no signed checkpoints yet: a wholesale rewrite would not be detected")
    return AuditVerification(
        chain=chain,
        checkpoints=len(table),
        signatures_checked=checked,
        matched=matched,
        file=file,
        start=start,
        problems=problems,
        warnings=warnings,
        unchecked=bool(reference) and not keys,
    )


def _compare_copies(
    table: list[SignedCheckpoint], lines: list[SignedCheckpoint], file: Path
) -> list[str]:
    for number, (row, line) in enumerate(zip(table, lines, strict=False), start=1):
        if row != line:
            return [
                f"checkpoint #{number} ({row.describe()}) differs from line {number} of {file} "
                f"({line.describe()}): the table or the file was altered"
            ]
    if len(lines) > len(table):
        cp = lines[len(table)]
        return [
            f"checkpoint #{len(table) + 1} ({cp.describe()}) is in {file} but not in the table: "
            f"{len(lines) - len(table)} checkpoint row(s) were deleted"
        ]
    if len(table) > len(lines):
        cp = table[len(lines)]
        return [
            f"checkpoint #{len(lines) + 1} ({cp.describe()}) is in the table but not in {file}: "
            "the file was cut short or the row was forged"
        ]
    return []


def _archive_start(
    session: Session, signed: list[tuple[int, SignedCheckpoint]]
) -> Checkpoint | None:
    """The newest signed archive-boundary checkpoint, once events from seq 1 are gone.

    Only such a checkpoint lets the walk begin after seq 1; a missing prefix without one is
    reported by the walk as removed events, and a gap between the boundary and the oldest
    event still walked is reported as removed too. Events at or below the boundary that are
    still in the table (linked late across a partition boundary) belong to the archived
    segment and are verified with it (deploy/AUDIT-PARTITIONING.md).
    """
    first = first_linked(session)
    if first is None or first[0] <= 1:
        return None
    boundaries = [cp for _n, cp in signed if cp.kind == ARCHIVE_BOUNDARY]
    if not boundaries:
        return None
    best = max(boundaries, key=lambda cp: cp.seq)
    return Checkpoint(best.seq, best.hash)
