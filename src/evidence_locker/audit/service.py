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
        action=action,
        actor_type=actor.type,
        actor_id=actor.id,
        actor_name=actor.name,
        object_type=object_type,
        object_id=object_id,
        ip=actor.ip,
        user_agent=(actor.user_agent or None) and actor.user_agent[:400],
        purpose=purpose,
        reason=reason,
        details=canonical_json(details or {}),
    )
    session.add(event)
    return event
