"""The tus 1.0 protocol at /api/v1/uploads/, spoken by hand through the real app."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from evidence_locker.audit.models import AuditEvent
from evidence_locker.catalogue.models import Blob, Recording, RecordingFile
from evidence_locker.db import transaction
from evidence_locker.ingest.models import Upload
from evidence_locker.ingest.service import expire_uploads
from evidence_locker.runtime import Runtime
from tus_helpers import OCTETS, TUS, auth, b64, checksum, create, meta_header, patch, upload

DATA = b"not really an mp4 but bytes from a camera " * 100


def count(runtime: Runtime, model: type) -> int:
    with transaction(runtime.sessions) as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def actions(runtime: Runtime) -> list[str]:
    with transaction(runtime.sessions) as s:
        return list(s.scalars(select(AuditEvent.action).order_by(AuditEvent.id)))


def test_discovery_advertises_version_extensions_and_limits(client: TestClient,
                                                            runtime: Runtime) -> None:
    r = client.options("/api/v1/uploads/")
    assert r.status_code == 204
    assert r.headers["tus-version"] == "1.0.0"
    assert set(r.headers["tus-extension"].split(",")) == {
        "creation", "creation-with-upload", "checksum", "termination", "expiration"}
    assert r.headers["tus-max-size"] == str(runtime.settings.tus_max_size)
    assert set(r.headers["tus-checksum-algorithm"].split(",")) == {"sha1", "sha256"}


def test_upload_in_chunks_stores_verified_blob_and_catalogues_it(client, runtime, force) -> None:
    url = create(client, force.dock_token, DATA)
    head = client.head(url, headers=auth(force.dock_token))
    assert head.status_code == 200
    assert head.headers["upload-offset"] == "0"
    assert head.headers["upload-length"] == str(len(DATA))
    assert head.headers["cache-control"] == "no-store"
    assert "upload-expires" in head.headers
    r1 = patch(client, force.dock_token, url, 0, DATA[:1000])
    assert r1.status_code == 204
    assert r1.headers["upload-offset"] == "1000"
    assert "locker-outcome" not in r1.headers
    r2 = patch(client, force.dock_token, url, 1000, DATA[1000:])
    assert r2.status_code == 204
    assert r2.headers["upload-offset"] == str(len(DATA))
    assert r2.headers["locker-outcome"] == "stored"
    sha = hashlib.sha256(DATA).hexdigest()
    assert runtime.store.exists(sha)
    assert b"".join(runtime.store.read_range(sha)) == DATA
    with transaction(runtime.sessions) as s:
        rec = s.scalars(select(Recording)).one()
        assert str(rec.id) == r2.headers["locker-recording"]
        assert (rec.device_serial, rec.camera_recording_id) == ("CAM-1", "R1")
        assert rec.state == "incomplete"  # no sidecar yet
        f = s.scalars(select(RecordingFile)).one()
        assert (f.kind, f.index, f.sha256, f.size) == ("clip", 1, sha, len(DATA))
        # attributed from the register: CAM-1 is issued to officer 1001 in unit U1
        assert rec.officer_id is not None and rec.unit_id is not None
    assert {"upload.created", "recording.created", "upload.completed"} <= set(actions(runtime))
    # After completion HEAD reports every byte: durable and verified.
    head = client.head(url, headers=auth(force.dock_token))
    assert head.headers["upload-offset"] == str(len(DATA))


def test_requests_without_a_valid_token_are_refused(client, force) -> None:
    body = {"Upload-Length": "10", "Upload-Metadata": meta_header(b"0123456789")}
    assert client.post("/api/v1/uploads/", headers={**TUS, **body}).status_code == 401
    forged = client.post("/api/v1/uploads/", headers={**auth("elk_forged"), **body})
    assert forged.status_code == 401
    assert forged.headers["content-type"] == "application/problem+json"
    # A user's API token is not a dock token: it may not upload.
    r = client.post("/api/v1/uploads/", headers={**auth(force.tokens["evidence1"]), **body})
    assert r.status_code == 403
    url = create(client, force.dock_token, b"0123456789")
    assert client.head(url, headers=TUS).status_code == 401
    assert patch(client, "elk_nope", url, 0, b"0123456789").status_code == 401


def test_another_dock_cannot_see_or_touch_an_upload(client, force) -> None:
    url = create(client, force.dock_token, DATA)
    assert client.head(url, headers=auth(force.other_dock_token)).status_code == 404
    assert patch(client, force.other_dock_token, url, 0, DATA).status_code == 404
    assert client.delete(url, headers=auth(force.other_dock_token)).status_code == 404


def test_wrong_tus_version_is_412(client, force) -> None:
    url = create(client, force.dock_token, DATA)
    r = client.head(url, headers={"Authorization": f"Bearer {force.dock_token}",
                                  "Tus-Resumable": "0.2.2"})
    assert r.status_code == 412
    assert r.headers["tus-version"] == "1.0.0"


def test_offset_mismatch_is_409_and_changes_nothing(client, runtime, force) -> None:
    url = create(client, force.dock_token, DATA)
    assert patch(client, force.dock_token, url, 0, DATA[:100]).status_code == 204
    r = patch(client, force.dock_token, url, 50, DATA[50:200])
    assert r.status_code == 409
    assert r.json()["title"] == "Offset mismatch"
    assert client.head(url, headers=auth(force.dock_token)).headers["upload-offset"] == "100"
    assert patch(client, force.dock_token, url, 100, DATA[100:]).status_code == 204


def test_patch_needs_the_offset_content_type(client, force) -> None:
    url = create(client, force.dock_token, DATA)
    r = client.patch(url, content=DATA, headers={**auth(force.dock_token),
                                                 "Content-Type": "application/json",
                                                 "Upload-Offset": "0"})
    assert r.status_code == 415


def test_per_patch_checksums_sha1_and_sha256(client, runtime, force) -> None:
    url = create(client, force.dock_token, DATA)
    part1, part2 = DATA[:2000], DATA[2000:]
    r = patch(client, force.dock_token, url, 0, part1, checksum("sha1", part1))
    assert r.status_code == 204
    bad = patch(client, force.dock_token, url, 2000, part2, checksum("sha256", b"other bytes"))
    assert bad.status_code == 460
    assert bad.json()["title"] == "Checksum Mismatch"
    # Nothing of the damaged PATCH was acknowledged or kept.
    assert client.head(url, headers=auth(force.dock_token)).headers["upload-offset"] == "2000"
    good = patch(client, force.dock_token, url, 2000, part2, checksum("sha256", part2))
    assert good.status_code == 204
    assert runtime.store.exists(hashlib.sha256(DATA).hexdigest())


def test_unsupported_or_malformed_checksum_is_400(client, force) -> None:
    url = create(client, force.dock_token, DATA)
    for value in ("md5 " + b64(hashlib.md5(DATA).digest()), "sha256", "sha256 !!!notbase64",
                  "sha256 " + b64(b"short")):
        r = patch(client, force.dock_token, url, 0, DATA, value)
        assert r.status_code == 400, value
    assert client.head(url, headers=auth(force.dock_token)).headers["upload-offset"] == "0"


def test_whole_file_sha256_mismatch_is_460_and_leaves_nothing(client, runtime, force) -> None:
    wrong = "0" * 64
    url = create(client, force.dock_token, DATA, sha256=wrong)
    r = patch(client, force.dock_token, url, 0, DATA)
    assert r.status_code == 460
    assert "declared" in r.json()["detail"]
    assert not runtime.store.exists(hashlib.sha256(DATA).hexdigest())
    assert count(runtime, Recording) == 0
    assert count(runtime, RecordingFile) == 0
    assert count(runtime, Blob) == 0
    assert client.head(url, headers=auth(force.dock_token)).status_code == 410
    assert "upload.rejected" in actions(runtime)
    assert list(runtime.store.partial_ids()) == []


def test_upload_too_large_for_max_size_is_413(client, runtime, force) -> None:
    r = client.post("/api/v1/uploads/", headers={
        **auth(force.dock_token), "Upload-Length": str(runtime.settings.tus_max_size + 1),
        "Upload-Metadata": meta_header(DATA)})
    assert r.status_code == 413


def test_body_longer_than_upload_length_is_refused_and_nothing_kept(client, runtime,
                                                                   force) -> None:
    url = create(client, force.dock_token, DATA)
    r = patch(client, force.dock_token, url, 0, DATA + b"extra")
    assert r.status_code == 413
    assert client.head(url, headers=auth(force.dock_token)).headers["upload-offset"] == "0"
    assert patch(client, force.dock_token, url, 0, DATA).status_code == 204


def test_truncated_upload_stays_unfinished_and_invisible(client, runtime, force) -> None:
    url = create(client, force.dock_token, DATA)
    assert patch(client, force.dock_token, url, 0, DATA[:-10]).status_code == 204
    assert client.head(url, headers=auth(force.dock_token)).headers["upload-offset"] == str(
        len(DATA) - 10)
    assert count(runtime, Recording) == 0
    assert not runtime.store.exists(hashlib.sha256(DATA).hexdigest())


def test_malformed_metadata_gets_a_clear_400(client, force) -> None:
    cases = {
        "not base64": "device !!!,recording " + b64("R1"),
        "missing sha256": meta_header(None),
        "path-like filename": meta_header(DATA, filename="../../etc/passwd"),
        "backslash path": meta_header(DATA, filename="..\\boot.ini"),
        "control character": meta_header(DATA, filename="a\x00b.mp4"),
        "bad kind": meta_header(DATA, kind="video"),
        "bad index": meta_header(DATA, index="0"),
        "bad device": meta_header(DATA, device="../CAM"),
        "duplicate key": meta_header(DATA) + ",kind " + b64("clip"),
    }
    for name, header in cases.items():
        r = client.post("/api/v1/uploads/", headers={
            **auth(force.dock_token), "Upload-Length": str(len(DATA)),
            "Upload-Metadata": header})
        assert r.status_code == 400, name
        assert r.headers["content-type"] == "application/problem+json", name
        assert r.json()["title"], name
    non_utf8 = meta_header(DATA).replace(f"filename {b64('R1_001.mp4')}",
                                         "filename " + b64(b"\xff\xfe.mp4"))
    r = client.post("/api/v1/uploads/", headers={
        **auth(force.dock_token), "Upload-Length": str(len(DATA)), "Upload-Metadata": non_utf8})
    assert r.status_code == 400
    assert "UTF-8" in r.json()["detail"]


def test_creation_with_upload(client, runtime, force) -> None:
    r = client.post("/api/v1/uploads/", content=DATA, headers={
        **auth(force.dock_token), "Upload-Length": str(len(DATA)),
        "Upload-Metadata": meta_header(DATA), "Content-Type": OCTETS})
    assert r.status_code == 201
    assert r.headers["upload-offset"] == str(len(DATA))
    assert r.headers["locker-outcome"] == "stored"
    assert runtime.store.exists(hashlib.sha256(DATA).hexdigest())


def test_termination_frees_the_bytes(client, runtime, force) -> None:
    url = create(client, force.dock_token, DATA)
    assert patch(client, force.dock_token, url, 0, DATA[:500]).status_code == 204
    assert client.delete(url, headers=auth(force.dock_token)).status_code == 204
    assert client.head(url, headers=auth(force.dock_token)).status_code == 410
    assert list(runtime.store.partial_ids()) == []
    assert "upload.terminated" in actions(runtime)


def test_a_finished_upload_cannot_be_terminated(client, runtime, force) -> None:
    url, r = upload(client, force.dock_token, DATA)
    assert r.status_code == 204
    assert client.delete(url, headers=auth(force.dock_token)).status_code == 409
    assert runtime.store.exists(hashlib.sha256(DATA).hexdigest())


def test_expired_upload_is_gone_and_swept(client, runtime, force, clock) -> None:
    url = create(client, force.dock_token, DATA)
    assert patch(client, force.dock_token, url, 0, DATA[:10]).status_code == 204
    clock.advance(dt.timedelta(hours=runtime.settings.upload_expiry_hours + 1))
    assert patch(client, force.dock_token, url, 10, DATA[10:]).status_code == 410
    assert expire_uploads(runtime) == 1
    with transaction(runtime.sessions) as s:
        assert s.scalars(select(Upload.state)).one() == "expired"
    assert list(runtime.store.partial_ids()) == []


@pytest.mark.embedded_only  # an S3 store has no free-space figure; its capacity is watched there
def test_below_free_space_floor_answers_507_and_accepts_nothing(client, runtime,
                                                                force) -> None:
    url = create(client, force.dock_token, DATA)
    runtime.settings.min_free_bytes = 10**18  # more than any disk: the floor is crossed
    r = client.post("/api/v1/uploads/", headers={
        **auth(force.dock_token), "Upload-Length": str(len(DATA)),
        "Upload-Metadata": meta_header(DATA)})
    assert r.status_code == 507
    assert patch(client, force.dock_token, url, 0, DATA).status_code == 507
    assert client.head(url, headers=auth(force.dock_token)).headers["upload-offset"] == "0"
    assert client.get("/readyz").status_code == 503
    runtime.settings.min_free_bytes = 0
    assert patch(client, force.dock_token, url, 0, DATA).status_code == 204


def test_same_bytes_same_slot_is_a_duplicate_not_stored_twice(client, runtime, force) -> None:
    _, first = upload(client, force.dock_token, DATA)
    _, again = upload(client, force.dock_token, DATA)
    assert first.status_code == again.status_code == 204
    assert first.headers["locker-outcome"] == "stored"
    assert again.headers["locker-outcome"] == "duplicate"
    assert again.headers["locker-recording"] == first.headers["locker-recording"]
    assert count(runtime, RecordingFile) == 1
    assert count(runtime, Blob) == 1
    assert "upload.duplicate" in actions(runtime)


def test_same_bytes_for_another_recording_is_linked_to_both(client, runtime, force) -> None:
    _, a = upload(client, force.dock_token, DATA, recording="R1")
    _, b = upload(client, force.dock_token, DATA, device="CAM-2", recording="R9")
    assert a.headers["locker-outcome"] == b.headers["locker-outcome"] == "stored"
    assert a.headers["locker-recording"] != b.headers["locker-recording"]
    assert count(runtime, RecordingFile) == 2
    assert count(runtime, Blob) == 1


def test_different_bytes_for_a_filled_slot_are_kept_and_flagged(client, runtime, force) -> None:
    upload(client, force.dock_token, DATA)
    _, r = upload(client, force.dock_token, DATA + b"!")
    assert r.headers["locker-outcome"] == "stored"
    with transaction(runtime.sessions) as s:
        files = s.scalars(select(RecordingFile).order_by(RecordingFile.id)).all()
        assert [f.conflict for f in files] == [False, True]
        rec = s.scalars(select(Recording)).one()
        assert "different bytes" in rec.attribution_issues


def test_unknown_device_is_accepted_and_marked(client, runtime, force) -> None:
    _, r = upload(client, force.dock_token, DATA, device="NEW-CAM-9")
    assert r.status_code == 204
    with transaction(runtime.sessions) as s:
        rec = s.scalars(select(Recording)).one()
        assert rec.officer_id is None
        assert "not in the fleet register" in rec.attribution_issues
    assert "device.discovered" in actions(runtime)


def test_empty_file_is_complete_on_creation(client, runtime, force) -> None:
    r = client.post("/api/v1/uploads/", headers={
        **auth(force.dock_token), "Upload-Length": "0", "Upload-Metadata": meta_header(b"")})
    assert r.status_code == 201
    assert r.headers["upload-offset"] == "0"
    assert r.headers["locker-outcome"] == "stored"
    head = client.head(r.headers["location"], headers=auth(force.dock_token))
    assert head.status_code == 200 and head.headers["upload-offset"] == "0"
