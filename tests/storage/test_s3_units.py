"""Unit tests of our own S3 code that need no server: URL parsing, key layout, part planning."""

from __future__ import annotations

import datetime as dt

import pytest

from evidence_locker.storage.base import open_store
from evidence_locker.storage.local import LocalBlobStore
from evidence_locker.storage.s3 import (
    DEFAULT_RETENTION_DAYS,
    MIN_PART_BYTES,
    S3BlobStore,
    _ceil_second,
    _Part,
    normalise_prefix,
    parse_s3_url,
)

MiB = 1024 * 1024
SHA = "ab" * 32


def test_parse_minimal_url() -> None:
    s = parse_s3_url("s3://evidence-media")
    assert s.bucket == "evidence-media"
    assert s.endpoint_url is None and s.region is None and s.prefix == ""
    assert s.object_lock is True and s.retention_days == DEFAULT_RETENTION_DAYS


def test_parse_full_url() -> None:
    s = parse_s3_url("s3://media.force-1?endpoint_url=http://127.0.0.1:8333/&region=eu-west-2"
                     "&prefix=/prod//media/&object_lock=false&retention_days=45.5"
                     "&addressing_style=path")
    assert s.bucket == "media.force-1"
    assert s.endpoint_url == "http://127.0.0.1:8333"
    assert s.region == "eu-west-2"
    assert s.prefix == "prod/media/"
    assert s.object_lock is False
    assert s.retention_days == 45.5
    assert s.addressing_style == "path"
    assert parse_s3_url(s.url()) == s


def test_prefix_in_the_path() -> None:
    assert parse_s3_url("s3://bucket/a/b").prefix == "a/b/"


@pytest.mark.parametrize("url", [
    "file:///tmp/x",
    "s3://",
    "s3://Upper",
    "s3://ab",
    "s3://a..b",
    "s3://key:secret@bucket",
    "s3://bucket?endpoint=http://x",
    "s3://bucket?endpoint_url=ftp://x",
    "s3://bucket?endpoint_url=localhost:9000",
    "s3://bucket?object_lock=maybe",
    "s3://bucket?retention_days=0",
    "s3://bucket?retention_days=nan",
    "s3://bucket?region=a&region=b",
    "s3://bucket/p?prefix=q",
    "s3://bucket?prefix=../up",
    "s3://bucket?addressing_style=sideways",
])
def test_bad_urls(url: str) -> None:
    with pytest.raises(ValueError):
        parse_s3_url(url)


def test_normalise_prefix() -> None:
    assert normalise_prefix("") == ""
    assert normalise_prefix("/") == ""
    assert normalise_prefix("a") == "a/"
    assert normalise_prefix("/a//b/") == "a/b/"
    with pytest.raises(ValueError):
        normalise_prefix("a/./b")


def test_open_store_picks_the_backend(tmp_path: object) -> None:
    store = open_store("s3://media?endpoint_url=http://127.0.0.1:9&prefix=p")
    assert isinstance(store, S3BlobStore)
    assert store.bucket == "media" and store.prefix == "p/"
    assert store.url == "s3://media?endpoint_url=http://127.0.0.1:9&prefix=p/"
    assert "secret" not in store.url
    with pytest.raises(ValueError):
        open_store("ftp://example/x")


def test_local_url_retention_days(tmp_path: object) -> None:
    from pathlib import Path

    assert isinstance(tmp_path, Path)
    store = LocalBlobStore.from_url(f"{tmp_path.as_uri()}?retention_days=38")
    assert store.retention_days == 38
    assert LocalBlobStore.from_url(tmp_path.as_uri()).retention_days is None


def test_key_layout() -> None:
    store = S3BlobStore("media", endpoint_url="http://127.0.0.1:9", prefix="force",
                        access_key="a", secret_key="b")
    assert store._blob_key(SHA) == f"force/blobs/ab/ab/{SHA}"
    upload = "0123456789abcdef0123456789abcdef"
    assert store._marker_key(upload) == f"force/partial/{upload}/.created"
    assert store._part_key(upload, 8 * MiB) == f"force/partial/{upload}/{8 * MiB:020d}"
    with pytest.raises(ValueError):
        store._blob_key("AB" * 32)
    with pytest.raises(ValueError):
        store._part_key("../x", 0)
    with pytest.raises(ValueError):
        S3BlobStore("media", endpoint_url="http://127.0.0.1:9", part_bytes=MiB)


def _sizes(groups: list[list[_Part]]) -> list[list[int]]:
    return [[p.size for p in g] for g in groups]


def parts_of(*sizes: int) -> list[_Part]:
    out: list[_Part] = []
    at = 0
    for size in sizes:
        out.append(_Part(at, size))
        at += size
    return out


def test_plan_merges_small_parts_and_copies_big_ones() -> None:
    plan = S3BlobStore._plan
    t = MIN_PART_BYTES
    assert _sizes(plan(parts_of(MiB, 6 * MiB, 6 * MiB), t)) == [[MiB, 6 * MiB], [6 * MiB]]
    assert _sizes(plan(parts_of(8 * MiB, 8 * MiB, MiB), t)) == [[8 * MiB], [8 * MiB], [MiB]]
    assert _sizes(plan(parts_of(*[MiB] * 12), t)) == [[MiB] * 5, [MiB] * 5, [MiB] * 2]
    assert _sizes(plan(parts_of(2 * MiB, 8 * MiB, 3 * MiB), t)) == [[2 * MiB, 8 * MiB],
                                                                    [3 * MiB]]
    assert plan([], t) == []
    for groups in (plan(parts_of(*[MiB] * 37), t), plan(parts_of(3 * MiB, 8 * MiB, 1), t)):
        assert all(sum(p.size for p in g) >= t for g in groups[:-1])


def test_ceil_second() -> None:
    at = dt.datetime(2030, 1, 1, 12, 0, 0, tzinfo=dt.UTC)
    assert _ceil_second(at) == at
    assert _ceil_second(at.replace(microsecond=1)) == at + dt.timedelta(seconds=1)
