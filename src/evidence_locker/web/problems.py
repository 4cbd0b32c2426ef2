"""Errors as RFC 9457 problem documents: a status and a JSON body that says what went wrong."""

from __future__ import annotations

import datetime as dt
from typing import Any

from starlette.responses import JSONResponse


class ApiError(Exception):
    def __init__(self, status: int, title: str, detail: str = "",
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{status} {title}")
        self.status = status
        self.title = title
        self.detail = detail
        self.headers = headers or {}


def problem(status: int, title: str, detail: str = "", headers: dict[str, str] | None = None,
            **extra: Any) -> JSONResponse:
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    body.update(extra)
    return JSONResponse(body, status_code=status, headers=headers,
                        media_type="application/problem+json")


def aware(value: dt.datetime | None, name: str) -> dt.datetime | None:
    """A query's time as given, refused (400) without a UTC offset: a naive time would be read
    in some server's zone, and a trail or export for court must say exactly which instant."""
    if value is not None and value.tzinfo is None:
        raise ApiError(400, "Bad request", f"{name} needs a UTC offset, e.g. 2026-11-22T08:00Z")
    return value
