"""Clips over 4 GiB: offsets, hashing and ranges past 32 bits, without sending 4 GiB in a test.

The first 4 GiB are a sparse file put in place as if earlier PATCHes had written them; the last
bytes go over HTTP, so the server rebuilds its hash from disk (as after a restart) and verifies."""

from __future__ import annotations

import hashlib
import os

import pytest
from sqlalchemy import update

from cat_helpers import grant_for
from evidence_locker.db import transaction
from evidence_locker.ingest.models import Upload
from tus_helpers import auth, meta_header, patch

# The sparse file is a local-filesystem trick; S3 multipart over 4 GiB is the storage suite's.
pytestmark = [pytest.mark.slow, pytest.mark.embedded_only]

FOUR_GIB = 4 * 1024**3
TAIL = b"the end of a very long recording" * 32


def test_upload_and_ranged_read_beyond_four_gib(client, runtime, force, tmp_path) -> None:
    hasher = hashlib.sha256()
    zeros = bytes(64 * 1024 * 1024)
    for _ in range(FOUR_GIB // len(zeros)):
        hasher.update(zeros)
    hasher.update(TAIL)
    sha = hasher.hexdigest()
    length = FOUR_GIB + len(TAIL)

    r = client.post("/api/v1/uploads/", headers={
        **auth(force.dock_token), "Upload-Length": str(length),
        "Upload-Metadata": meta_header(None, sha256=sha)})
    assert r.status_code == 201, r.text
    url = r.headers["location"]
    upload_id = url.rsplit("/", 1)[-1]
    partial = runtime.settings.data_dir / "media" / "partial" / upload_id
    os.truncate(partial, FOUR_GIB)  # sparse: costs no disk
    with transaction(runtime.sessions) as s:
        s.execute(update(Upload).where(Upload.id == upload_id).values(offset=FOUR_GIB))

    head = client.head(url, headers=auth(force.dock_token))
    assert head.headers["upload-offset"] == str(FOUR_GIB)
    assert head.headers["upload-length"] == str(length)
    done = patch(client, force.dock_token, url, FOUR_GIB, TAIL)
    assert done.status_code == 204, done.text
    assert done.headers["upload-offset"] == str(length)
    assert runtime.store.size(sha) == length

    rid = done.headers["locker-recording"]
    r = client.get(f"/api/v1/recordings/{rid}/media",
                   params={"grant": grant_for(client, force.tokens["standards"], rid)},
                   headers={"Authorization": f"Bearer {force.tokens['standards']}",
                            "Range": f"bytes={FOUR_GIB}-"})
    assert r.status_code == 206
    assert r.content == TAIL
    assert r.headers["content-range"] == f"bytes {FOUR_GIB}-{length - 1}/{length}"


