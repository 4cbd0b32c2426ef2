"""Signed checkpoints catch what the chain alone cannot: a wholesale consistent rewrite, a cut-off
tail, deleted checkpoints (from the file copy), forgeries without the key; keys can rotate; an
archived prefix is verified from a signed archive boundary."""

from __future__ import annotations

import os
import stat
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from audit_helpers import TABLE, AuditDb, Locker, _ring, _signer
from sqlalchemy import delete, update
from typer.testing import CliRunner

from evidence_locker import db
from evidence_locker.audit.chain import event_digest
from evidence_locker.audit.checkpoints import (
    ARCHIVE_BOUNDARY,
    AuditVerification,
    SignedCheckpoint,
    _append_line,
    make_checkpoint,
    read_file,
)
from evidence_locker.audit.cli import EXIT_UNCHECKED, app
from evidence_locker.audit.models import AuditCheckpoint
from evidence_locker.audit.signing import KeyRing, Signer, public_key_text

runner = CliRunner()
N = 10


def _content(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in ("seq", "prev_hash", "hash", "sequenced_at")}


def rewrite_consistently(adb: AuditDb, event_id: int, **values: Any) -> None:
    """The attacker with admin rights: edit one row, then recompute every hash after it."""
    adb.drop_triggers()
    adb.tamper(event_id, **values)
    prev = None
    rows = adb.rows()
    with adb.engine.begin() as conn:
        for row in rows:
            if row["seq"] is None:
                continue
            prev_hash = row["prev_hash"] if prev is None else prev
            digest = event_digest(**_content(row), seq=row["seq"], prev_hash=prev_hash)
            conn.execute(update(TABLE).where(TABLE.c.id == row["id"])
                         .values(prev_hash=prev_hash, hash=digest))
            prev = digest


def forge(locker: Locker, signer: Signer, seq: int) -> SignedCheckpoint:
    """A checkpoint over the current (rewritten) chain, written to the table and the file."""
    with locker.adb.factory() as session:
        [last] = session.query(AuditCheckpoint).order_by(AuditCheckpoint.id.desc()).limit(1)
        prev = SignedCheckpoint.from_row(last).digest()
    unsigned = SignedCheckpoint(seq=seq, hash=locker.adb.by_seq(seq)["hash"], count=seq,
                                signed_at=locker.adb.clock.now(), kind="head",
                                key_id=signer.key_id, prev=prev, signature="")
    forged = replace(unsigned, signature=signer.sign(unsigned.payload()))
    _append_line(locker.file, forged.to_line())
    with db.transaction(locker.adb.factory) as session:
        session.add(forged.to_row())
    return forged


def _assert_first_problem(result: AuditVerification, *words: str) -> None:
    assert not result.ok
    assert result.problems, result
    for word in words:
        assert word in result.problems[0], result.problems[0]


def test_checkpoints_are_signed_chained_and_written_to_both_places(locker: Locker) -> None:
    locker.events(4)
    first = locker.checkpoint()
    assert (first.seq, first.count, first.prev) == (4, 4, None)
    assert first.hash == locker.adb.by_seq(4)["hash"]
    skipped = make_checkpoint(locker.adb.factory, clock=locker.adb.clock, signer=locker.signer,
                              directory=locker.dir)
    assert skipped.made is None and skipped.skipped == "no new events since seq 4"
    locker.events(3)
    second = locker.checkpoint()
    assert second.seq == 7 and second.prev == first.digest()
    lines, bad = read_file(locker.file)
    assert bad is None and lines == [first, second]
    with locker.adb.factory() as session:
        assert session.query(AuditCheckpoint).count() == 2
    result = locker.verify()
    assert result.ok, result
    assert (result.signatures_checked, result.matched, result.warnings) == (2, 2, [])
    locker.events(1)
    assert "events after seq 7 (up to 8) are not yet covered" in locker.verify().warnings[0]


def test_checkpoint_table_is_append_only(locker: Locker) -> None:
    locker.events(2)
    locker.checkpoint()
    for statement in (update(AuditCheckpoint).values(seq=1), delete(AuditCheckpoint)):
        with pytest.raises(Exception, match="append-only"), locker.adb.engine.begin() as conn:
            conn.execute(statement)


def test_a_broken_chain_is_never_signed(locker: Locker) -> None:
    locker.events(5)
    locker.checkpoint()
    locker.events(3)
    locker.adb.drop_triggers()
    locker.adb.tamper(7, reason="afterwards")
    outcome = make_checkpoint(locker.adb.factory, clock=locker.adb.clock, signer=locker.signer,
                              directory=locker.dir)
    assert outcome.made is None
    assert outcome.problem is not None and "row id 7 seq 7" in outcome.problem


def test_wholesale_consistent_rewrite_is_caught_by_the_checkpoints(locker: Locker) -> None:
    locker.events(4)
    locker.checkpoint()
    locker.events(4)
    locker.checkpoint()
    rewrite_consistently(locker.adb, 3, action="recording.downloaded", reason="nothing to see")
    result = locker.verify()
    assert result.chain.ok  # every hash and link is consistent again: the chain alone is fooled
    _assert_first_problem(result, "checkpoint #1 (seq 4, signed ", "does not match the chain",
                          "the log was rewritten")
    assert "checkpoint #2 (seq 8" in result.problems[1]


def test_rewrite_after_the_last_checkpoint_is_not_covered_but_a_cut_tail_is(locker: Locker) -> None:
    locker.events(6)
    locker.checkpoint()
    locker.adb.drop_triggers()
    locker.adb.remove(6)
    locker.adb.remove(5)
    result = locker.verify()
    assert result.chain.ok and result.chain.head_seq == 4
    _assert_first_problem(result, "checkpoint #1 (seq 6", "no longer has", "ends at seq 4")


def test_forged_checkpoint_with_another_key_fails(locker: Locker, tmp_path: Path) -> None:
    """The attacker rewrites the chain and signs a fresh head with a key of their own."""
    locker.events(5)
    locker.checkpoint()
    rewrite_consistently(locker.adb, 2, actor_name="someone else")
    locker.adb.record(1)
    locker.adb.sequence()
    mallory = _signer(tmp_path / "mallory.pem")
    forge(locker, mallory, 6)
    result = locker.verify()
    _assert_first_problem(result, "checkpoint #2 (seq 6", f"signed by unknown key {mallory.key_id}")
    assert any("checkpoint #1 (seq 5" in p and "rewritten" in p for p in result.problems)


def test_altered_checkpoint_fails_its_signature(locker: Locker) -> None:
    """Table and file edited alike (hash of the rewritten chain): the signature no longer fits."""
    locker.events(4)
    locker.checkpoint()
    rewrite_consistently(locker.adb, 2, reason="edited")
    new_hash = locker.adb.by_seq(4)["hash"]
    locker.drop_checkpoint_triggers()
    with locker.adb.engine.begin() as conn:
        conn.execute(update(AuditCheckpoint).values(hash=new_hash))
    [line] = read_file(locker.file)[0]
    edited = replace(line, hash=new_hash)
    locker.file.write_text(edited.to_line() + "\n")
    result = locker.verify()
    assert result.chain.ok
    _assert_first_problem(result, "checkpoint #1 (seq 4", "signature does not verify",
                          locker.signer.key_id)


def test_deleted_checkpoint_rows_are_caught_from_the_file(locker: Locker) -> None:
    for _ in range(3):
        locker.events(2)
        locker.checkpoint()
    locker.drop_checkpoint_triggers()
    with locker.adb.engine.begin() as conn:
        conn.execute(delete(AuditCheckpoint).where(AuditCheckpoint.seq > 2))
    _assert_first_problem(locker.verify(), "checkpoint #2 (seq 4", "is in ",
                          "not in the table", "2 checkpoint row(s) were deleted")


def test_deleted_middle_checkpoint_row_breaks_the_checkpoint_chain(locker: Locker) -> None:
    for _ in range(3):
        locker.events(2)
        locker.checkpoint()
    locker.drop_checkpoint_triggers()
    with locker.adb.engine.begin() as conn:
        conn.execute(delete(AuditCheckpoint).where(AuditCheckpoint.seq == 4))
    locker.file.unlink()  # and the local copy too: the checkpoints' own chain still shows it
    result = locker.verify()
    assert not result.ok
    assert any("is missing but the table holds 2" in p for p in result.problems)
    assert any("checkpoint #2 (seq 6" in p and "does not follow checkpoint #1" in p
               for p in result.problems)


def test_truncated_file_line_is_caught(locker: Locker) -> None:
    for _ in range(2):
        locker.events(2)
        locker.checkpoint()
    data = locker.file.read_bytes()
    locker.file.write_bytes(data[:-20])
    result = locker.verify()
    _assert_first_problem(result, "line 2 of", "cut short (truncated)")


@pytest.mark.parametrize(
    ("old", "new", "words"),
    [
        ('"seq":4', '"seq":3', ("differs from line 2",)),
        ('"count":4', '"count": 4', ("line 2 of", "not in canonical form")),
        ('"kind":"head"', '"kind":"hea', ("line 2 of", "not a checkpoint")),
    ],
)
def test_edited_file_line_is_caught(locker: Locker, old: str, new: str,
                                    words: tuple[str, ...]) -> None:
    for _ in range(2):
        locker.events(2)
        locker.checkpoint()
    lines = locker.file.read_text().splitlines()
    assert old in lines[1]
    lines[1] = lines[1].replace(old, new)
    locker.file.write_text("\n".join(lines) + "\n")
    _assert_first_problem(locker.verify(), *words)


def test_key_rotation(locker: Locker, tmp_path: Path) -> None:
    old = locker.signer
    locker.events(3)
    locker.checkpoint()
    new = _signer(tmp_path / "keys" / "audit-signing-2026.pem")
    locker.events(3)
    locker.checkpoint(signer=new)
    assert read_file(locker.file)[0][1].key_id == new.key_id != old.key_id
    result = locker.verify(ring=_ring(old, new))
    assert result.ok and result.signatures_checked == 2
    only_new = locker.verify(ring=_ring(new))
    _assert_first_problem(only_new, "checkpoint #1 (seq 3", f"unknown key {old.key_id}")


def test_no_public_key_means_checkpoints_unchecked_but_chain_verified(locker: Locker) -> None:
    locker.events(3)
    locker.checkpoint()
    result = locker.verify(ring=KeyRing({}))
    assert result.ok and result.unchecked and result.signatures_checked == 0
    assert result.chain.checked == 3
    assert "1 checkpoint(s) NOT checked: no audit public key configured" in result.warnings[0]


def test_a_row_lost_after_the_file_write_is_restored(locker: Locker) -> None:
    locker.events(3)
    first = locker.checkpoint()
    locker.events(2)
    lost = SignedCheckpoint(seq=5, hash=locker.adb.by_seq(5)["hash"], count=5,
                            signed_at=locker.adb.clock.now(), kind="head",
                            key_id=locker.signer.key_id, prev=first.digest(), signature="")
    lost = replace(lost, signature=locker.signer.sign(lost.payload()))
    _append_line(locker.file, lost.to_line())  # the commit of its row never happened
    assert "is in " in locker.verify().problems[0]
    locker.events(1)
    outcome = make_checkpoint(locker.adb.factory, clock=locker.adb.clock, signer=locker.signer,
                              directory=locker.dir)
    assert outcome.restored == lost and outcome.made is not None
    assert outcome.made.prev == lost.digest()
    assert locker.verify().ok


def _archive(adb: AuditDb, through_seq: int) -> None:
    """Stand-in for detaching the partitions that hold seq 1..through_seq (same effect on the
    live table; the PostgreSQL procedure itself is tested in test_audit_partitioning)."""
    adb.drop_triggers()
    with adb.engine.begin() as conn:
        conn.execute(delete(TABLE).where(TABLE.c.seq <= through_seq))


def test_archived_prefix_verifies_from_a_signed_archive_boundary(locker: Locker) -> None:
    locker.events(6)
    locker.checkpoint()
    boundary = locker.checkpoint(kind=ARCHIVE_BOUNDARY, at_seq=4)
    assert (boundary.seq, boundary.hash) == (4, locker.adb.by_seq(4)["hash"])
    locker.events(2)
    locker.checkpoint()
    _archive(locker.adb, 4)
    result = locker.verify()
    assert result.ok, result.problems
    assert result.start is not None and result.start.seq == 4
    assert result.chain.checked == 4 and result.chain.head_seq == 8
    assert result.matched == 2  # seq 6 and 8; the first head (seq 6) is past the boundary too
    # Without a key the boundary cannot be trusted: the missing prefix is reported as removed.
    unchecked = locker.verify(ring=KeyRing({}))
    assert not unchecked.chain.ok and unchecked.chain.problem_kind == "removed"
    # A prefix cut anywhere but at a signed boundary is a removal.
    locker.adb.remove(5)
    cut = locker.verify()
    assert not cut.chain.ok and cut.chain.problem_kind == "removed"


def test_archive_boundary_must_be_in_the_chain(locker: Locker) -> None:
    locker.events(3)
    outcome = make_checkpoint(locker.adb.factory, clock=locker.adb.clock, signer=locker.signer,
                              directory=locker.dir, kind=ARCHIVE_BOUNDARY, at_seq=9)
    assert outcome.made is None and outcome.problem == "seq 9 is not in the chain"


# --- the command line ----------------------------------------------------------------------------


@pytest.fixture
def cli_env(locker: Locker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Locker:
    monkeypatch.setenv("LOCKER_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("LOCKER_DATABASE_URL", locker.adb.url)
    monkeypatch.setenv("LOCKER_AUDIT_CHECKPOINT_DIR", str(locker.dir))
    monkeypatch.delenv("LOCKER_AUDIT_SIGNING_KEY_FILE", raising=False)
    monkeypatch.delenv("LOCKER_AUDIT_PUBLIC_KEYS", raising=False)
    return locker


def test_cli_keygen_checkpoint_verify(cli_env: Locker, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    key = tmp_path / "secret" / "force.pem"
    result = runner.invoke(app, ["keygen", "--out", str(key)])
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    public = result.output.strip().splitlines()[-1]
    assert public.startswith("ed25519:")
    assert runner.invoke(app, ["keygen", "--out", str(key)]).exit_code == 2  # never overwrites

    cli_env.events(3)
    result = runner.invoke(app, ["checkpoint"])
    assert result.exit_code == 2 and "no signing key" in result.output

    monkeypatch.setenv("LOCKER_AUDIT_SIGNING_KEY_FILE", str(key))
    result = runner.invoke(app, ["checkpoint"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("checkpoint signed: head seq 3, signed ")

    # A verifier with only the public key (no private key on its host).
    monkeypatch.delenv("LOCKER_AUDIT_SIGNING_KEY_FILE")
    monkeypatch.setenv("LOCKER_AUDIT_PUBLIC_KEYS", f'["{public}"]')
    result = runner.invoke(app, ["verify", "--require-signatures"])
    assert result.exit_code == 0, result.output
    assert "audit chain OK: 3 events" in result.output
    assert "checkpoints OK: 1 signature(s) good, 1 matched the chain" in result.output

    rewrite_consistently(cli_env.adb, 2, reason="edited")
    result = runner.invoke(app, ["verify"])
    assert result.exit_code == 1
    assert "audit CHECKPOINTS FAIL" in result.output
    assert "checkpoint #1 (seq 3, signed " in result.output and "rewritten" in result.output


def test_cli_public_keys_file_and_unchecked_exit(cli_env: Locker, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    cli_env.events(2)
    cli_env.checkpoint()
    result = runner.invoke(app, ["verify"])
    assert result.exit_code == 0, result.output
    assert "WARNING: 1 checkpoint(s) NOT checked" in result.output
    result = runner.invoke(app, ["verify", "--require-signatures"])
    assert result.exit_code == EXIT_UNCHECKED
    keys = tmp_path / "audit-public-keys.txt"
    keys.write_text(f"# force key 2025\n{public_key_text(cli_env.signer.key.public_key())}\n")
    monkeypatch.setenv("LOCKER_AUDIT_PUBLIC_KEYS_FILE", str(keys))
    result = runner.invoke(app, ["verify", "--require-signatures"])
    assert result.exit_code == 0, result.output
    # The off-host copy can be named explicitly; a missing one with checkpoints in the table fails.
    result = runner.invoke(app, ["verify", "--checkpoint-file", str(tmp_path / "nope.jsonl")])
    assert result.exit_code == 1 and "nope.jsonl is missing" in result.output


def test_periodic_job_signs_when_a_key_is_configured(tmp_path: Path, locker: Locker) -> None:
    from evidence_locker.jobs.tasks import audit_checkpoint_job
    from evidence_locker.runtime import build_runtime
    from support import make_settings

    locker.events(2)
    settings = make_settings(tmp_path / "var", database_url=locker.adb.url,
                             audit_signing_key_file=tmp_path / "keys" / "audit-signing.pem",
                             audit_checkpoint_dir=locker.dir)
    runtime = build_runtime(settings, clock=locker.adb.clock)
    try:
        names = [t.__name__ for t in runtime.jobs.huey._registry._periodic_tasks]
        assert "audit_checkpoint" in names
        audit_checkpoint_job(runtime)
    finally:
        runtime.close()
    assert [c.seq for c in read_file(locker.file)[0]] == [2]
    plain = build_runtime(make_settings(tmp_path / "var2", database_url=locker.adb.url))
    try:
        assert "audit_checkpoint" not in [
            t.__name__ for t in plain.jobs.huey._registry._periodic_tasks]
    finally:
        plain.close()
