"""Restricted footage: hide a recording from everyone but its access list.

A `restricted` recording (covert or sensitive operations) is seen by the people on its access
list and by professional standards; a `post-incident` one (after a death or serious injury) by
its access list only. Everyone else gets the same 404 as for a recording that does not exist:
search, detail, media and poster all go through `queries.get_visible`/`queries.search`, which
apply `roles.may_view_recording` (per recording) and its SQL form.

Only professional standards place, change and release restrictions and edit the lists
(`roles.may_manage_restrictions`); every change gives a reason and writes one audit event in the
same transaction. Releasing deletes the restriction and its list: the audit trail keeps the
history.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from evidence_locker.accounts.models import User
from evidence_locker.accounts.roles import (
    POST_INCIDENT,
    RESTRICTION_KINDS,
    Principal,
    Role,
    may_be_listed,
)
from evidence_locker.audit.service import Actor, record
from evidence_locker.catalogue.models import Recording, RecordingRestriction, RestrictionAccess
from evidence_locker.clock import Clock

REASON_MIN, REASON_MAX = 10, 2000


class RestrictionRefused(ValueError):
    """Bad input: the message is for the person asking (422)."""


class RestrictionConflict(ValueError):
    """The change contradicts the current state (409)."""


@dataclass(frozen=True)
class Restriction:
    kind: str
    access_list: frozenset[int]


def _listed_ids(session: Session, recording_id: uuid.UUID) -> frozenset[int]:
    return frozenset(session.scalars(select(RestrictionAccess.user_id).where(
        RestrictionAccess.recording_id == recording_id)))


def restriction_of(session: Session, recording_id: uuid.UUID) -> Restriction | None:
    """The restriction on a recording and the user ids on its list (None: unrestricted)."""
    return restrictions_of(session, [recording_id]).get(recording_id)


def restrictions_of(session: Session, recording_ids: list[uuid.UUID]
                    ) -> dict[uuid.UUID, Restriction]:
    """The restrictions on many recordings and their lists, in one query (the sweep reads a
    batch's); unrestricted ones are absent."""
    if not recording_ids:
        return {}
    kinds: dict[uuid.UUID, str] = {}
    listed: dict[uuid.UUID, set[int]] = {}
    for rid, kind, user_id in session.execute(
            select(RecordingRestriction.recording_id, RecordingRestriction.kind,
                   RestrictionAccess.user_id)
            .outerjoin(RestrictionAccess,
                       RestrictionAccess.recording_id == RecordingRestriction.recording_id)
            .where(RecordingRestriction.recording_id.in_(recording_ids))):
        kinds[rid] = kind
        if user_id is not None:
            listed.setdefault(rid, set()).add(user_id)
    return {rid: Restriction(kind, frozenset(listed.get(rid, ()))) for rid, kind in kinds.items()}


def _reason(reason: str) -> str:
    reason = " ".join(reason.split())
    if not REASON_MIN <= len(reason) <= REASON_MAX:
        raise RestrictionRefused(f"give a reason of {REASON_MIN} to {REASON_MAX} characters")
    return reason


def _listed_names(session: Session, recording_id: uuid.UUID) -> list[str]:
    return sorted(session.scalars(
        select(User.username).join(RestrictionAccess, RestrictionAccess.user_id == User.id)
        .where(RestrictionAccess.recording_id == recording_id)))


def _require_user(principal: Principal) -> int:
    if principal.user_id is None:
        raise RestrictionRefused("only people manage restrictions")
    return principal.user_id


def _list(session: Session, *, clock: Clock, recording_id: uuid.UUID, user_id: int,
          by: int) -> None:
    session.add(RestrictionAccess(recording_id=recording_id, user_id=user_id, added_by=by,
                                  added_at=clock.now()))


def place(
    session: Session, *, clock: Clock, principal: Principal, actor: Actor, recording: Recording,
    kind: str, reason: str,
) -> dict[str, Any]:
    """Restrict a recording, or change the kind of its restriction. Whoever places or tightens to
    a post-incident restriction is put on its list, so someone can still manage it."""
    by = _require_user(principal)
    if kind not in RESTRICTION_KINDS:
        raise RestrictionRefused(f"kind must be one of: {', '.join(RESTRICTION_KINDS)}")
    reason = _reason(reason)
    row = session.get(RecordingRestriction, recording.id, with_for_update=True)
    previous = row.kind if row is not None else None
    if row is None:
        row = RecordingRestriction(recording_id=recording.id, kind=kind, reason=reason,
                                   placed_by=by, placed_at=clock.now())
        session.add(row)
        session.flush()
    elif row.kind == kind:
        raise RestrictionConflict(f"the recording is already {kind}")
    else:
        row.kind, row.reason, row.placed_by, row.placed_at = kind, reason, by, clock.now()
    if kind == POST_INCIDENT and by not in _listed_ids(session, recording.id):
        _list(session, clock=clock, recording_id=recording.id, user_id=by, by=by)
    session.flush()
    record(session, clock=clock, actor=actor, action="recording.restricted",
           object_type="recording", object_id=str(recording.id), reason=reason,
           details={"kind": kind, "previous": previous,
                    "access_list": _listed_names(session, recording.id)})
    return describe(session, recording.id) or {}


def release(
    session: Session, *, clock: Clock, principal: Principal, actor: Actor, recording: Recording,
    reason: str,
) -> None:
    """Lift the restriction; its list goes with it (the audit event names who was on it)."""
    _require_user(principal)
    reason = _reason(reason)
    row = session.get(RecordingRestriction, recording.id, with_for_update=True)
    if row is None:
        raise RestrictionConflict("the recording is not restricted")
    listed = _listed_names(session, recording.id)
    kind = row.kind
    session.execute(delete(RestrictionAccess).where(
        RestrictionAccess.recording_id == recording.id))
    session.delete(row)
    session.flush()
    record(session, clock=clock, actor=actor, action="recording.unrestricted",
           object_type="recording", object_id=str(recording.id), reason=reason,
           details={"kind": kind, "access_list": listed})


def _target(session: Session, username: str) -> User:
    user = session.scalars(select(User).where(User.username == username)).one_or_none()
    if user is None or not user.active:
        raise RestrictionRefused(f"no active user {username!r}")
    return user


def _role(value: str) -> Role | None:
    try:
        return Role(value)
    except ValueError:
        return None


def add_access(
    session: Session, *, clock: Clock, principal: Principal, actor: Actor, recording: Recording,
    username: str, reason: str,
) -> dict[str, Any]:
    """Put someone on the access list: they see the recording from now on (and still need a
    justification grant to play it, unless it is their own)."""
    by = _require_user(principal)
    reason = _reason(reason)
    row = session.get(RecordingRestriction, recording.id, with_for_update=True)
    if row is None:
        raise RestrictionConflict("the recording is not restricted: everyone in scope sees it")
    user = _target(session, username)
    if not may_be_listed(_role(user.role)):
        raise RestrictionRefused(f"a {user.role} cannot be given footage through an access list")
    if user.id in _listed_ids(session, recording.id):
        raise RestrictionConflict(f"{username} is already on the access list")
    _list(session, clock=clock, recording_id=recording.id, user_id=user.id, by=by)
    session.flush()
    record(session, clock=clock, actor=actor, action="recording.access_listed",
           object_type="recording", object_id=str(recording.id), reason=reason,
           details={"kind": row.kind, "username": username, "user_id": user.id,
                    "role": user.role})
    return describe(session, recording.id) or {}


def remove_access(
    session: Session, *, clock: Clock, principal: Principal, actor: Actor, recording: Recording,
    username: str, reason: str,
) -> dict[str, Any]:
    """Take someone off the list. A post-incident restriction keeps at least one professional
    standards member on it: otherwise nobody could see it to release it."""
    _require_user(principal)
    reason = _reason(reason)
    row = session.get(RecordingRestriction, recording.id, with_for_update=True)
    if row is None:
        raise RestrictionConflict("the recording is not restricted")
    user = session.scalars(select(User).where(User.username == username)).one_or_none()
    entry = None if user is None else session.scalars(select(RestrictionAccess).where(
        RestrictionAccess.recording_id == recording.id,
        RestrictionAccess.user_id == user.id)).one_or_none()
    if user is None or entry is None:
        raise RestrictionConflict(f"{username} is not on the access list")
    if row.kind == POST_INCIDENT and user.role == Role.PROFESSIONAL_STANDARDS:
        others = session.scalars(
            select(User.id).join(RestrictionAccess, RestrictionAccess.user_id == User.id)
            .where(RestrictionAccess.recording_id == recording.id, User.id != user.id,
                   User.role == Role.PROFESSIONAL_STANDARDS.value, User.active.is_(True))).first()
        if others is None:
            raise RestrictionConflict(
                "the last professional standards member cannot leave a post-incident "
                "restriction's list: add another first, or release the restriction")
    session.delete(entry)
    session.flush()
    record(session, clock=clock, actor=actor, action="recording.access_unlisted",
           object_type="recording", object_id=str(recording.id), reason=reason,
           details={"kind": row.kind, "username": username, "user_id": user.id})
    return describe(session, recording.id) or {}


def describe(session: Session, recording_id: uuid.UUID) -> dict[str, Any] | None:
    """The restriction and its list, for the people who manage it."""
    row = session.get(RecordingRestriction, recording_id)
    if row is None:
        return None
    placed_by = session.get(User, row.placed_by)
    entries = session.execute(
        select(RestrictionAccess, User).join(User, RestrictionAccess.user_id == User.id)
        .where(RestrictionAccess.recording_id == recording_id)
        .order_by(User.username)).all()
    adders = {u.id: u.username for u in session.scalars(select(User).where(
        User.id.in_({e.added_by for e, _ in entries})))}
    return {
        "recording_id": str(recording_id),
        "kind": row.kind,
        "reason": row.reason,
        "placed_by": placed_by.username if placed_by else None,
        "placed_at": row.placed_at.isoformat(),
        "access_list": [{"username": u.username, "role": u.role,
                         "added_by": adders.get(e.added_by), "added_at": e.added_at.isoformat()}
                        for e, u in entries],
    }
