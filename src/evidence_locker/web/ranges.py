"""HTTP Range (RFC 9110 §14) for one byte range: enough for a browser's <video>."""

from __future__ import annotations


class RangeNotSatisfiable(ValueError):
    pass


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """`bytes=a-b`, `bytes=a-`, `bytes=-n` → inclusive (start, end); None means the whole body.

    Several ranges are answered with the first (allowed: a server may ignore Range).
    A malformed header is ignored, as the RFC says; a range past the end is unsatisfiable.
    """
    if not header:
        return None
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or not spec:
        return None
    first = spec.split(",")[0].strip()
    start_s, dash, end_s = first.partition("-")
    if not dash:
        return None
    try:
        if start_s == "":
            if not end_s.isdigit():
                return None
            n = int(end_s)
            if n == 0 or size == 0:
                raise RangeNotSatisfiable(first)
            return max(0, size - n), size - 1
        if not start_s.isdigit() or (end_s and not end_s.isdigit()):
            return None
        start = int(start_s)
        end = int(end_s) if end_s else size - 1
    except ValueError:
        return None
    if start >= size:
        raise RangeNotSatisfiable(first)
    if end < start:
        return None
    return start, min(end, size - 1)
