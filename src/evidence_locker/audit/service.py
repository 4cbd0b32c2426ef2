"""Writing audit events: always into the caller's session, so the event commits with the change."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from evidence_locker.audit.models import AuditEvent
from evidence_locker.clock import Clock


@dataclass(frozen=True)
class Actor:
    """Who did it and from where: a user, a dock, a token or the system itself."""

    type: str
    id: str | None = None
    name: str | None = None
    ip: str | None = None
    user_agent: str | None = None


SYSTEM = Actor(type="system", name="system")


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def _text(value: str | None, limit: int | None = None) -> str | None:
    """Audit text comes from users and devices. PostgreSQL text cannot hold NUL, so NUL becomes
    U+FFFD on every backend (the same bytes are hashed everywhere); long values are cut."""
    if value is None:
        return None
    value = value.replace("\x00", "\ufffd")
    return value[:limit] if limit else value


def record(
    session: Session,
    *,
    clock: Clock,
    actor: Actor,
    action: str,
    object_type: str | None = None,
    object_id: str | None = None,
    details: dict[str, Any] | None = None,
    purpose: str | None = None,
    reason: str | None = None,
) -> AuditEvent:
    event = AuditEvent(
        occurred_at=clock.now(),
        action=_text(action, 64),
        actor_type=_text(actor.type, 16),
        actor_id=_text(actor.id, 64),
        actor_name=_text(actor.name, 200),
        object_type=_text(object_type, 32),
        object_id=_text(object_id, 64),
        ip=_text(actor.ip, 64),
        user_agent=_text(actor.user_agent or None, 400),
        purpose=_text(purpose, 64),
        reason=_text(reason),
        details=canonical_json(details or {}),
    )
    session.add(event)
    return event
