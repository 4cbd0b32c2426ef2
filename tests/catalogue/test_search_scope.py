"""search() builds its page from one ordered index scan per unit in scope (and one for the
officer's own footage), because a single OR over the whole window is seconds at 10 M rows. This
checks it against the visibility rule written the plain way, a WHERE clause, on a random
catalogue: same rows, same order, page after page, for every role and filter combination. The
catalogue has restricted and post-incident recordings with random access lists, and the same rule
is checked per recording too (roles.may_view_recording over queries.scope_of)."""

from __future__ import annotations

import datetime as dt
import random
import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from evidence_locker.accounts.models import User
from evidence_locker.accounts.roles import (
    RESTRICTION_KINDS,
    Principal,
    Role,
    may_view_recording,
)
from evidence_locker.catalogue.models import (
    Blob,
    Recording,
    RecordingFile,
    RecordingRestriction,
    RestrictionAccess,
)
from evidence_locker.catalogue.queries import Filters, count_by_unit, scope_of, search
from evidence_locker.db import transaction
from evidence_locker.fleet.models import Officer, Unit
from evidence_locker.lifecycle.case_models import Case, CaseGrant, CaseRecording
from evidence_locker.lifecycle.models import CategoryVersion, EvidenceFlag
from search_reference import reference

T0 = dt.datetime(2026, 10, 1, tzinfo=dt.UTC)
REFERENCES = ("CR/1/26", "CR/2/26", "CR/3/26")
USERS = list(range(1, 9))  # the principals' user ids; random access lists name them
# (code, parent): a force, two commands, five units, one unit nested a level deeper.
TREE = (("F", None), ("C1", "F"), ("C2", "F"), ("U1", "C1"), ("U2", "C1"), ("U3", "C1"),
        ("U4", "C2"), ("U4A", "U4"), ("U5", "C2"))


def build(session: Session, rng: random.Random) -> tuple[dict[str, int], list[int], list[str]]:
    units: dict[str, int] = {}
    paths: dict[str, str] = {}
    for n, (code, parent) in enumerate(TREE, start=1):
        paths[code] = (paths[parent] if parent else "/") + code + "/"
        session.add(Unit(id=n, code=code, name=code, kind="unit", path=paths[code],
                         parent_id=units.get(parent or "")))
        units[code] = n
        session.flush()
    leaves = [u for c, u in units.items() if c.startswith("U")]
    officers = []
    for n in range(1, 13):
        session.add(Officer(id=n, collar=f"{1000 + n}", name=f"PC {n}",
                            unit_id=rng.choice(leaves)))
        officers.append(n)
    session.flush()
    shas = []
    for n in range(20):
        sha = f"{n:064x}"
        session.add(Blob(sha256=sha, size=1, stored_at=T0))
        shas.append(sha)
    session.flush()
    for n in range(400):
        officer = rng.choice([*officers, None])
        # Mostly the officer's unit, sometimes another (the officer moved), sometimes none.
        unit = rng.choice([*leaves, None]) if officer is None or rng.random() < 0.2 else \
            session.get(Officer, officer).unit_id  # type: ignore[union-attr]
        # Few distinct instants, so ties on sort_at are common and the id decides.
        at = T0 + dt.timedelta(hours=rng.randrange(0, 24 * 10, 3))
        rec = Recording(id=uuid.UUID(int=rng.getrandbits(128)), device_serial=f"CAM-{n % 9}",
                        camera_recording_id=f"R{n}", officer_id=officer, unit_id=unit,
                        received_at=at, sort_at=at,
                        state=rng.choice(["complete", "incomplete"]),
                        # Deadlines on a few instants too (ties), now and then none (held).
                        delete_after=None if rng.random() < 0.15 else
                        T0 + dt.timedelta(days=31, hours=rng.randrange(0, 24 * 10, 6)),
                        # Now and then one the sweep has decided to delete: listed to nobody.
                        retention_state="deleting" if rng.random() < 0.05 else "live")
        session.add(rec)
        for index in range(rng.choice([0, 1, 2])):
            session.add(RecordingFile(recording_id=rec.id, kind="clip", index=index + 1,
                                      filename=f"c{index}.mp4", sha256=rng.choice(shas), size=1,
                                      received_at=at))
    session.flush()
    for uid in USERS:
        session.add(User(id=uid, username=f"user{uid}", role="officer", created_at=T0))
    session.flush()
    # Cases, some recordings linked (now and then the link removed), granted to some of the
    # principals' users (now and then revoked): what a watchdog sees besides its access lists.
    for cid in (1, 2, 3):
        session.add(Case(id=cid, reference=f"CASE/{cid}", title="t", status="open", unit_id=1,
                         opened_at=T0, opened_by=1, status_changed_at=T0))
    session.flush()
    for rec in session.scalars(select(Recording).order_by(Recording.id)):
        if rng.random() < 0.15:
            session.add(CaseRecording(case_id=rng.choice([1, 2, 3]), recording_id=rec.id,
                                      added_at=T0, added_by=1, added_reason="test",
                                      removed_at=T0 if rng.random() < 0.2 else None))
    for uid in USERS:
        for cid in rng.sample([1, 2, 3], rng.choice([0, 1, 2])):
            session.add(CaseGrant(case_id=cid, user_id=uid, granted_at=T0, granted_by=1,
                                  reason="test", revoked_at=T0 if rng.random() < 0.25 else None))
    session.flush()
    # Evidence flags with a few crime references, some withdrawn (they no longer match).
    session.add(CategoryVersion(id=1, name="crime", version=1, kind="review", days=365,
                                applied_at=T0))
    session.flush()
    for rec in session.scalars(select(Recording).order_by(Recording.id)):
        for _ in range(rng.choice([0, 0, 0, 1, 2])):
            session.add(EvidenceFlag(recording_id=rec.id, category_id=1,
                                     reference=rng.choice(REFERENCES), flagged_at=T0,
                                     withdrawn_at=T0 if rng.random() < 0.3 else None))
    session.flush()
    # About one recording in eight restricted, a third of those post-incident, each with a random
    # access list of the principals' users.
    for rec in session.scalars(select(Recording).order_by(Recording.id)):
        if rng.random() < 0.125:
            session.add(RecordingRestriction(recording_id=rec.id, kind=rng.choice(
                [*RESTRICTION_KINDS, RESTRICTION_KINDS[0]]), reason="test", placed_by=1,
                placed_at=T0))
            session.flush()
            for uid in rng.sample(USERS, rng.choice([0, 1, 1, 2, 4])):
                session.add(RestrictionAccess(recording_id=rec.id, user_id=uid, added_by=1,
                                              added_at=T0))
    session.flush()
    return units, officers, shas


def principals(units: dict[str, int], officers: list[int]) -> list[Principal]:
    paths = {c: "/" + "/".join(_chain(c)) + "/" for c in units}
    ids = iter(USERS * 20)
    out = [Principal(user_id=next(ids), username="ps", role=Role.PROFESSIONAL_STANDARDS)
           for _ in range(3)]
    out += [Principal(user_id=next(ids), username="wd", role=Role.WATCHDOG) for _ in range(3)]
    out += [Principal(user_id=next(ids), username="pros", role=Role.PROSECUTOR),
            Principal(user_id=next(ids), username="aud", role=Role.AUDITOR)]
    for officer in officers[:4]:
        out.append(Principal(user_id=next(ids), username="pc", role=Role.OFFICER,
                             officer_id=officer))
    for code in ("U1", "U4", "C1", "F"):
        for officer in (None, officers[0], officers[5]):
            for role in (Role.SUPERVISOR, Role.EVIDENCE_OFFICER):
                out.append(Principal(user_id=next(ids), username="s", role=role,
                                     unit_path=paths[code], officer_id=officer))
    out.append(Principal(user_id=next(ids), username="s", role=Role.SUPERVISOR,
                         officer_id=officers[2]))
    return out


def _chain(code: str) -> list[str]:
    parent = dict(TREE)[code]
    return [*_chain(parent), code] if parent else [code]


def random_filters(rng: random.Random, units: dict[str, int], officers: list[int],
                   shas: list[str]) -> Filters:
    since = T0 + dt.timedelta(hours=rng.randrange(0, 24 * 10, 3)) if rng.random() < 0.3 else None
    return Filters(
        officer=f"{1000 + rng.choice(officers)}" if rng.random() < 0.25 else None,
        unit=rng.choice(list(units)) if rng.random() < 0.4 else None,
        device=f"CAM-{rng.randrange(9)}" if rng.random() < 0.2 else None,
        since=since,
        until=since + dt.timedelta(days=rng.choice([1, 3])) if since and rng.random() < 0.7
        else None,
        state=rng.choice(["complete", "incomplete"]) if rng.random() < 0.2 else None,
        sha256=rng.choice(shas) if rng.random() < 0.1 else None,
        reference=rng.choice(REFERENCES) if rng.random() < 0.15 else None,
        due_before=T0 + dt.timedelta(days=31, hours=rng.randrange(0, 24 * 11, 6))
        if rng.random() < 0.3 else None,
    )


def test_search_pages_match_the_visibility_rule(runtime) -> None:
    rng = random.Random(20261122)
    with transaction(runtime.sessions) as s:
        units, officers, shas = build(s, rng)
    checked = nonempty = 0
    with transaction(runtime.sessions) as s:
        for p in principals(units, officers):
            for _ in range(12):
                f = random_filters(rng, units, officers, shas)
                want = list(s.scalars(reference(select(Recording.id), p, s, f)))
                got: list[uuid.UUID] = []
                cursor = None
                limit = rng.choice([3, 7, 50])
                while True:
                    rows, cursor = search(s, principal=p, filters=f, limit=limit, cursor=cursor)
                    assert len(rows) <= limit
                    got += [r.id for r in rows]
                    if cursor is None:
                        break
                assert got == want, (p, f, limit)
                # The due page's per-unit summary counts exactly what the list shows.
                units_of = dict(s.execute(select(Recording.id, Unit.code).outerjoin(
                    Unit, Unit.id == Recording.unit_id).where(Recording.id.in_(want))).all())
                per_unit: dict[str | None, int] = {}
                for rid in want:
                    per_unit[units_of[rid]] = per_unit.get(units_of[rid], 0) + 1
                assert dict(count_by_unit(s, principal=p, filters=f)) == per_unit, (p, f)
                checked += 1
                nonempty += bool(want)
    # The random cases must exercise something: most of them find rows.
    assert checked > 300 and nonempty > checked // 3, (checked, nonempty)


def test_the_rule_per_recording_agrees_with_the_sql(runtime) -> None:
    """roles.may_view_recording (detail, media) and the search's SQL admit the same recordings,
    restricted ones included: none is hidden from one form and shown by the other."""
    rng = random.Random(5)
    with transaction(runtime.sessions) as s:
        units, officers, _ = build(s, rng)
    with transaction(runtime.sessions) as s:
        recordings = list(s.scalars(select(Recording)))
        scopes = {r.id: scope_of(s, r) for r in recordings}
        live = {r.id: r.retention_state == "live" for r in recordings}
        assert not all(live.values())
        kinds = {sc.restriction for sc in scopes.values()}
        assert kinds == {None, *RESTRICTION_KINDS}, kinds
        listed_somewhere = 0
        for p in principals(units, officers):
            want = set(s.scalars(reference(select(Recording.id), p, s, Filters())))
            # get_visible adds one fact to the rule: a recording being deleted is gone.
            got = {rid for rid, sc in scopes.items() if may_view_recording(p, sc) and live[rid]}
            assert got == want, p
            rows, _ = search(s, principal=p, filters=Filters(), limit=1000)
            assert {r.id for r in rows} == want, p
            listed_somewhere += any(scopes[r].restriction for r in want)
        assert listed_somewhere > 5


def test_many_units_in_scope_still_one_page(runtime) -> None:
    """Past the SQLite compound-select limit the units go into one IN branch: still right."""
    rng = random.Random(7)
    with transaction(runtime.sessions) as s:
        s.add(Unit(id=1, code="F", name="F", kind="force", path="/F/"))
        s.flush()
        for n in range(2, 260):
            s.add(Unit(id=n, code=f"U{n}", name="u", kind="unit", parent_id=1, path=f"/F/U{n}/"))
        s.flush()
        for n in range(600):
            at = T0 + dt.timedelta(minutes=rng.randrange(10_000))
            s.add(Recording(device_serial="CAM", camera_recording_id=f"R{n}",
                            unit_id=rng.randrange(2, 260), received_at=at, sort_at=at))
    p = Principal(user_id=1, username="s", role=Role.EVIDENCE_OFFICER, unit_path="/F/")
    with transaction(runtime.sessions) as s:
        want = list(s.scalars(reference(select(Recording.id), p, s, Filters())))
        rows, cursor = search(s, principal=p, filters=Filters(), limit=100)
        assert [r.id for r in rows] == want[:100] and cursor is not None
        assert len(want) == 600
