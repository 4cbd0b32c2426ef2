"""Access grants: the justification asked before someone else's footage is played or downloaded.

A browser's <video> sends many Range requests and cannot attach a reason to each, so the reason
is asked once: `issue_grant` records the purpose and reason in one audit event and returns a
short-lived token that the media and poster URLs carry. The token is bound to the user and the
recording, and only its SHA-256 is stored; the caller must still be signed in, so a token seen in
a URL or a log is no use to anyone else.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from evidence_locker.accounts.roles import Principal
from evidence_locker.audit.service import Actor, record
from evidence_locker.catalogue.models import AccessGrant, Recording
from evidence_locker.clock import Clock

OWN_FOOTAGE = "own footage"
REASON_MIN, REASON_MAX = 10, 2000


class GrantRefused(ValueError):
    """Bad input for a grant: the message is for the person asking."""


@dataclass(frozen=True)
class Grant:
    id: int
    token: str
    expires_at: dt.datetime


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_grant(
    session: Session, *, clock: Clock, principal: Principal, actor: Actor, recording: Recording,
    purpose: str, reason: str, purposes: list[str], minutes: int, own: bool,
) -> Grant:
    """One audit event per grant. Own footage needs no justification: the purpose is recorded
    as such and no reason is asked."""
    if principal.user_id is None:
        raise GrantRefused("only people can be granted access to footage")
    reason = " ".join(reason.split())
    if own and not purpose:
        purpose = OWN_FOOTAGE
    elif purpose not in purposes:
        raise GrantRefused(f"purpose must be one of: {', '.join(purposes)}")
    elif not own and not REASON_MIN <= len(reason) <= REASON_MAX:
        raise GrantRefused(f"give a reason of {REASON_MIN} to {REASON_MAX} characters")
    now = clock.now()
    token = secrets.token_urlsafe(24)
    grant = AccessGrant(token_hash=_digest(token), user_id=principal.user_id,
                        recording_id=recording.id, purpose=purpose, reason=reason,
                        created_at=now, expires_at=now + dt.timedelta(minutes=minutes))
    session.add(grant)
    session.flush()
    record(session, clock=clock, actor=actor, action="recording.access_granted",
           object_type="recording", object_id=str(recording.id),
           details={"grant_id": grant.id, "purpose": purpose, "reason": reason,
                    "expires_at": grant.expires_at.isoformat()})
    return Grant(grant.id, token, grant.expires_at)


def valid_grant(session: Session, *, clock: Clock, principal: Principal, recording_id: uuid.UUID,
                token: str | None) -> AccessGrant | None:
    """The live grant this token names, if it was given to this user for this recording."""
    if not token or principal.user_id is None or len(token) > 200:
        return None
    grant = session.scalars(select(AccessGrant).where(
        AccessGrant.token_hash == _digest(token))).one_or_none()
    if grant is None or grant.user_id != principal.user_id or \
            grant.recording_id != recording_id or grant.expires_at <= clock.now():
        return None
    return grant
