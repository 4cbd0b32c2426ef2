"""A small tus client for bench/ingest.py: POST, then PATCHes of a fixed size on one keep-alive
connection, each body sent straight from a memoryview of an mmap of the file (no copy in Python).

    python bench/patch_client.py --create URL --file in.bin --patch-size 8388608 \
        [--metadata 'key b64,...'] [--token-env BENCH_TOKEN]

Prints one JSON line: {"seconds", "cpu_seconds", "patches", "offset", "headers"} where seconds runs
from before the POST to after the last 204 and cpu_seconds is this process's own CPU time over the
same span (to tell whether the client is the bottleneck). Standard library only.
"""

from __future__ import annotations

import argparse
import http.client
import json
import mmap
import os
import resource
import sys
import time
from urllib.parse import urljoin, urlsplit

TUS = "1.0.0"
OFFSET_CT = "application/offset+octet-stream"


def _cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def _connect(url: str) -> http.client.HTTPConnection:
    parts = urlsplit(url)
    if parts.scheme != "http":
        raise SystemExit(f"only http:// is supported here: {url}")
    return http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=600,
                                      blocksize=1024 * 1024)


def _path(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def upload(create_url: str, file: str, patch_size: int, metadata: str, token: str | None) -> dict:
    auth = {"Authorization": f"Bearer {token}"} if token else {}
    with open(file, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) if size else None
    view = memoryview(mm) if mm is not None else memoryview(b"")
    conn = _connect(create_url)
    t0, c0 = time.perf_counter(), _cpu()
    conn.request("POST", _path(create_url), headers={
        "Tus-Resumable": TUS, "Upload-Length": str(size), "Upload-Metadata": metadata, **auth})
    resp = conn.getresponse()
    resp.read()
    if resp.status != 201:
        raise SystemExit(f"POST answered {resp.status}")
    location = urljoin(create_url, resp.getheader("Location") or "")
    if urlsplit(location).netloc != urlsplit(create_url).netloc:
        conn.close()
        conn = _connect(location)
    offset, patches, headers = 0, 0, {}
    while offset < size:
        n = min(patch_size, size - offset)
        conn.putrequest("PATCH", _path(location), skip_accept_encoding=True)
        for k, v in {"Tus-Resumable": TUS, "Content-Type": OFFSET_CT,
                     "Upload-Offset": str(offset), "Content-Length": str(n), **auth}.items():
            conn.putheader(k, v)
        conn.endheaders()
        conn.send(view[offset:offset + n])
        resp = conn.getresponse()
        resp.read()
        if resp.status != 204:
            raise SystemExit(f"PATCH at {offset} answered {resp.status}")
        new = int(resp.getheader("Upload-Offset") or -1)
        if new != offset + n:
            raise SystemExit(f"PATCH at {offset} acknowledged {new}, expected {offset + n}")
        offset, patches = new, patches + 1
        headers = {k.lower(): v for k, v in resp.getheaders()}
    t1, c1 = time.perf_counter(), _cpu()
    conn.close()
    view.release()
    if mm is not None:
        mm.close()
    return {"seconds": t1 - t0, "cpu_seconds": c1 - c0, "patches": patches, "offset": offset,
            "location": location, "headers": headers}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--create", required=True, help="creation URL (POST)")
    ap.add_argument("--file", required=True)
    ap.add_argument("--patch-size", type=int, default=8 * 1024 * 1024)
    ap.add_argument("--metadata", default="")
    ap.add_argument("--token-env", default="BENCH_TOKEN",
                    help="environment variable holding the bearer token (unset: no auth)")
    args = ap.parse_args(argv)
    result = upload(args.create, args.file, args.patch_size, args.metadata,
                    os.environ.get(args.token_env) or None)
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
