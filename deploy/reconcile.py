"""Reconcile the catalogue with the blob store, typically after a restore: report, never delete.

    LOCKER_DATABASE_URL=... LOCKER_STORAGE_URL=... AWS_...=... \
        /opt/evidence-locker/venv/bin/python deploy/reconcile.py --out reconcile.json

It compares the `blobs` table with the objects under `blobs/` in the store (a listing, not a
re-read: for a re-read of the bytes run `locker fixity`):

* MISSING: a blob the catalogue names that the store does not hold (or holds with another
  size) while a live recording file or poster refers to it. Evidence the restore could not
  bring back: investigate; never drop the catalogue rows.
* GONE-AS-EXPECTED: absent, and every file referring to it is marked deleted.
* ORPHAN: an object the catalogue does not name. After a point-in-time restore these are
  files acknowledged to docks after the recovery point (the camera may have erased its copy):
  keep them (Object Lock keeps them anyway) and re-catalogue them; there is no tool for that
  yet, so the report lists key, size and time stored for each.

Exit status: 0 when both lists are empty, 1 when anything is MISSING, 3 when there are only
orphans. Read-only: it needs a read credential for the store and SELECT on the database.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import create_engine, text

from evidence_locker.config import Settings
from evidence_locker.storage.base import open_store

SHA_RE = re.compile(r"^[0-9a-f]{64}$")


def store_objects(url: str) -> Iterator[tuple[str, int, str]]:
    """(sha256, size, stored at ISO) of every blob in the store."""
    store = open_store(url)
    if url.startswith("s3://"):
        client = store.client  # type: ignore[attr-defined]
        prefix = f"{store.prefix}blobs/"  # type: ignore[attr-defined]
        pages = client.get_paginator("list_objects_v2").paginate(
            Bucket=store.bucket, Prefix=prefix)  # type: ignore[attr-defined]
        for page in pages:
            for obj in page.get("Contents", []):
                name = obj["Key"].rsplit("/", 1)[-1]
                if SHA_RE.match(name):
                    yield name, int(obj["Size"]), obj["LastModified"].isoformat()
        return
    root = Path(store._blobs)  # type: ignore[attr-defined]  # file:// store: <root>/blobs/ab/cd/<sha>
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            if SHA_RE.match(name):
                st = (Path(dirpath) / name).stat()
                yield name, st.st_size, dt.datetime.fromtimestamp(st.st_mtime, dt.UTC).isoformat()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="write the full report here (JSON)")
    args = parser.parse_args()
    settings = Settings()
    engine = create_engine(settings.resolved_database_url)
    with engine.connect() as conn:
        catalogue = {sha: int(size) for sha, size in conn.execute(
            text("SELECT sha256, size FROM blobs"))}
        live = {row[0] for row in conn.execute(text(
            "SELECT sha256 FROM recording_files WHERE deleted_at IS NULL "
            "UNION SELECT poster_sha256 FROM recording_files "
            "WHERE deleted_at IS NULL AND poster_sha256 IS NOT NULL"))}
    engine.dispose()
    seen: dict[str, tuple[int, str]] = {}
    for sha, size, stored_at in store_objects(settings.resolved_storage_url):
        seen[sha] = (size, stored_at)
    missing: list[str] = []
    expected: list[str] = []
    wrong_size: list[dict[str, object]] = []
    for sha, size in sorted(catalogue.items()):
        if sha not in seen:
            (missing if sha in live else expected).append(sha)
        elif seen[sha][0] != size:
            wrong_size.append({"sha256": sha, "catalogue": size, "store": seen[sha][0]})
    orphans = [{"sha256": sha, "size": size, "stored_at": at}
               for sha, (size, at) in sorted(seen.items()) if sha not in catalogue]
    report = {
        "checked_at": dt.datetime.now(dt.UTC).isoformat(),
        "catalogue_blobs": len(catalogue), "store_blobs": len(seen),
        "missing": missing, "wrong_size": wrong_size, "gone_as_expected": expected,
        "orphans": orphans,
    }
    if args.out:
        args.out.write_text(json.dumps(report, indent=2))
    print(f"catalogue {len(catalogue)} blobs, store {len(seen)} blobs: "
          f"{len(missing)} MISSING, {len(wrong_size)} wrong size, "
          f"{len(expected)} gone as expected, {len(orphans)} ORPHAN")
    for sha in missing:
        print(f"  MISSING {sha}", file=sys.stderr)
    for item in wrong_size:
        print(f"  WRONG SIZE {item['sha256']}: {item['catalogue']} != {item['store']}",
              file=sys.stderr)
    for item in orphans[:50]:
        print(f"  ORPHAN {item['sha256']} {item['size']} bytes, stored {item['stored_at']}",
              file=sys.stderr)
    if len(orphans) > 50:
        print(f"  ... {len(orphans) - 50} more orphans in the report", file=sys.stderr)
    if missing or wrong_size:
        return 1
    return 3 if orphans else 0


if __name__ == "__main__":
    sys.exit(main())
