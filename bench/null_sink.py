"""A tus-shaped HTTP sink for bench/ingest.py: answers POST with 201 + Location and PATCH with 204
+ Upload-Offset, and throws the bytes away. Uploading to it measures what a client can push on
this machine when the server costs (almost) nothing: the client's own ceiling.

    python bench/null_sink.py --port 18000      # prints "listening <port>" once ready

Keep-alive, Content-Length bodies only (no chunked encoding, no Expect handling beyond 100).
"""

from __future__ import annotations

import argparse
import socket
import sys
import threading
import uuid

BUF = 1024 * 1024


def _serve_conn(conn: socket.socket, port: int, offsets: dict[str, int]) -> None:
    buf = bytearray(BUF)
    view = memoryview(buf)
    pending = b""
    with conn:
        while True:
            while b"\r\n\r\n" not in pending:
                data = conn.recv(65536)
                if not data:
                    return
                pending += data
            head, _, pending = pending.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            headers = {}
            for line in lines[1:]:
                k, _, v = line.partition(":")
                headers[k.strip().lower()] = v.strip()
            if headers.get("expect", "").lower() == "100-continue":
                conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
            length = int(headers.get("content-length", "0"))
            take = min(length, len(pending))
            pending_rest, pending = pending[take:], b""
            remaining = length - take
            while remaining > 0:
                n = conn.recv_into(view, min(BUF, remaining))
                if n == 0:
                    return
                remaining -= n
            pending = pending_rest
            if method == "POST":
                upload_id = uuid.uuid4().hex
                offsets[upload_id] = 0
                conn.sendall(
                    f"HTTP/1.1 201 Created\r\nTus-Resumable: 1.0.0\r\nUpload-Offset: 0\r\n"
                    f"Location: http://127.0.0.1:{port}/files/{upload_id}\r\n"
                    f"Content-Length: 0\r\n\r\n".encode())
            elif method == "PATCH":
                upload_id = path.rsplit("/", 1)[-1]
                offsets[upload_id] = offsets.get(upload_id, 0) + length
                conn.sendall(
                    f"HTTP/1.1 204 No Content\r\nTus-Resumable: 1.0.0\r\n"
                    f"Upload-Offset: {offsets[upload_id]}\r\n\r\n".encode())
            else:
                conn.sendall(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args(argv)
    srv = socket.create_server((args.host, args.port), backlog=64)
    port = srv.getsockname()[1]
    offsets: dict[str, int] = {}
    print(f"listening {port}", flush=True)
    try:
        while True:
            conn, _ = srv.accept()
            threading.Thread(target=_serve_conn, args=(conn, port, offsets), daemon=True).start()
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
