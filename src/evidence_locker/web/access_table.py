"""Who may call which route: the one table the authorisation matrix test checks the app against.

Every route of the app (method and path template, as FastAPI declares it) has an entry naming the
callers it admits. A caller is a role from DESIGN.md, a dock's upload token, a token for
Prometheus, somebody anonymous, or a credential that is no longer good (an expired or revoked
token, an expired or ended web session). "Admitted" means *not refused by authorisation*: the
route may still answer 404 for data the caller cannot see (a prosecutor asking for a recording
nobody shared with them).
Refused means 401 for anonymous and stale credentials (on a page: sent to sign in) and 403 for
the wrong role or a token without the scope (on a page a token that is not a person's is nobody:
sent to sign in). `tests/web/test_authz_matrix.py` calls every route as every caller; a route
without an entry here, or an entry without a route, fails it. So a new route starts here.

This is a specification, not the enforcement: the routes enforce with the rules in
accounts/roles.py and fleet/rules.py, and this table says what they must add up to.
"""

from __future__ import annotations

from collections.abc import Mapping

from evidence_locker.accounts.roles import NO_FOOTAGE, Role

#: A dock's upload token (no role; scope `upload`).
DOCK = "dock"
#: A token with only the `metrics` scope (Prometheus's), here a professional-standards user's:
#: the role must not leak through a token issued for one job.
METRICS_TOKEN = "metrics-token"  # noqa: S105 - a caller's name, not a secret
#: No credential at all.
ANONYMOUS = "anonymous"
#: A credential that was good once: an expired or revoked API token, an expired or ended session.
STALE = "expired-or-revoked"

Caller = Role | str

USERS: frozenset[Caller] = frozenset(Role)
#: Everyone and everything, credential or not.
EVERYONE: frozenset[Caller] = USERS | {DOCK, METRICS_TOKEN, ANONYMOUS, STALE}
#: Public routes: health for load balancers, sign-in, tus discovery (like a CORS preflight),
#: static files and the API's description (the code is open source; the schema reveals no data).
PUBLIC = EVERYONE

#: Roles that see footage at all. The people who run the system (fleet administrators, auditors,
#: system administrators) cannot watch it: separation of duties. Watchdogs and prosecutors pass
#: this gate and then see only what a grant, an access list or a share gives them, so for them
#: the data decides (404), not the role.
FOOTAGE: frozenset[Caller] = USERS - NO_FOOTAGE
#: Restrictions (covert work, post-incident) are placed and released by professional standards
#: only: evidence officers have their whole command, and a restriction exists to narrow that.
RESTRICTION_MANAGERS: frozenset[Caller] = frozenset({Role.PROFESSIONAL_STANDARDS})
#: The fleet register's reports: fleet administrators (the whole force) and supervisors (their
#: unit subtree). No footage is shown there.
FLEET_READERS: frozenset[Caller] = frozenset({Role.FLEET_ADMINISTRATOR, Role.SUPERVISOR})
#: Audit trails of people, and access-pattern alerts: auditors ("the audit log and reports") and
#: professional standards (complaints and misconduct). Never officers: the trail of one's own
#: footage can reveal a complaint or covert investigation about them.
AUDIT_READERS: frozenset[Caller] = frozenset({Role.AUDITOR, Role.PROFESSIONAL_STANDARDS})
#: A recording's trail also goes to court with the footage an evidence officer discloses (and
#: then only for recordings they can see: 404 otherwise).
RECORDING_TRAIL_READERS: frozenset[Caller] = AUDIT_READERS | {Role.EVIDENCE_OFFICER}
#: Ingest and heartbeats: a dock's upload token only (a person's token has no `upload` scope).
DOCKS: frozenset[Caller] = frozenset({DOCK})
#: Prometheus metrics are not for the world: a token with the `metrics` scope, or a system
#: administrator. Every other route refuses a metrics-only token, whoever it belongs to.
METRICS: frozenset[Caller] = frozenset({Role.SYSTEM_ADMINISTRATOR, METRICS_TOKEN})

#: Flagging evidence and withdrawing flags (lifecycle/): officers (their own), supervisors (their
#: unit), evidence officers (their command); the rest of the footage roles are refused by role.
FLAGGERS: frozenset[Caller] = frozenset(
    {Role.OFFICER, Role.SUPERVISOR, Role.EVIDENCE_OFFICER})
#: Holds (legal, complaint, post-incident) are placed and released by professional standards.
HOLD_MANAGERS: frozenset[Caller] = frozenset({Role.PROFESSIONAL_STANDARDS})
#: The review queue and review decisions (retain / dispose): evidence officers, their command.
REVIEWERS: frozenset[Caller] = frozenset({Role.EVIDENCE_OFFICER})
#: The subject-told compliance report (counts, no footage): supervisors (their unit), evidence
#: officers (their command), professional standards and auditors (the force).
REPORT_READERS: frozenset[Caller] = frozenset(
    {Role.SUPERVISOR, Role.EVIDENCE_OFFICER, Role.PROFESSIONAL_STANDARDS, Role.AUDITOR})

#: Tombstones and deletion certificates (lifecycle/record_views.py): the records manager's
#: roles. A tombstone names a deleted recording's camera, officer and times, no footage; a
#: restricted recording's is shown only to whom the recording was (`records.shown_to`).
TOMBSTONE_READERS: frozenset[Caller] = frozenset({Role.AUDITOR, Role.PROFESSIONAL_STANDARDS})
#: Cases (lifecycle/cases.py): any footage role may ask (the case itself decides: its command's
#: evidence officers, its owners, professional standards, a watchdog it is granted to; others
#: get 404); changes by the roles that work cases, opening by evidence officers and
#: professional standards, watchdog grants by professional standards.
CASE_READERS: frozenset[Caller] = FOOTAGE
CASE_WORKERS: frozenset[Caller] = frozenset(
    {Role.OFFICER, Role.SUPERVISOR, Role.EVIDENCE_OFFICER, Role.PROFESSIONAL_STANDARDS})
CASE_OPENERS: frozenset[Caller] = frozenset({Role.EVIDENCE_OFFICER, Role.PROFESSIONAL_STANDARDS})
CASE_GRANTORS: frozenset[Caller] = frozenset({Role.PROFESSIONAL_STANDARDS})

_RECORDING = "/api/v1/recordings/{recording_id}"
_CASE = "/api/v1/cases/{case_id}"
_UPLOAD = "/api/v1/uploads/{upload_id}"

ACCESS: Mapping[tuple[str, str], frozenset[Caller]] = {
    # health, metrics, the API's description, static files
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/readyz"): PUBLIC,
    ("GET", "/metrics"): METRICS,
    ("GET", "/openapi.json"): PUBLIC,
    ("HEAD", "/openapi.json"): PUBLIC,
    ("GET", "/docs"): PUBLIC,
    ("HEAD", "/docs"): PUBLIC,
    ("GET", "/docs/oauth2-redirect"): PUBLIC,
    ("HEAD", "/docs/oauth2-redirect"): PUBLIC,
    ("GET", "/redoc"): PUBLIC,
    ("HEAD", "/redoc"): PUBLIC,
    ("GET", "/static/{path:path}"): PUBLIC,
    # tus ingest
    ("OPTIONS", "/api/v1/uploads/"): PUBLIC,
    ("OPTIONS", _UPLOAD): PUBLIC,
    ("POST", "/api/v1/uploads/"): DOCKS,
    ("HEAD", _UPLOAD): DOCKS,
    ("PATCH", _UPLOAD): DOCKS,
    ("DELETE", _UPLOAD): DOCKS,
    # recordings API
    ("GET", "/api/v1/recordings"): FOOTAGE,
    ("GET", _RECORDING): FOOTAGE,
    ("POST", f"{_RECORDING}/access"): FOOTAGE,
    ("GET", f"{_RECORDING}/media"): FOOTAGE,
    ("GET", f"{_RECORDING}/poster"): FOOTAGE,
    ("GET", f"{_RECORDING}/retention"): FOOTAGE,
    ("POST", f"{_RECORDING}/flags"): FLAGGERS,
    ("DELETE", f"{_RECORDING}/flags/{{flag_id}}"): FLAGGERS,
    ("POST", f"{_RECORDING}/flags/{{flag_id}}/review"): REVIEWERS,
    ("PUT", f"{_RECORDING}/subject-told"): FLAGGERS,
    ("GET", "/api/v1/reviews"): REVIEWERS,
    ("GET", "/api/v1/tombstones"): TOMBSTONE_READERS,
    ("GET", "/api/v1/tombstones/{tombstone_id}/certificate"): TOMBSTONE_READERS,
    ("GET", "/api/v1/reports/subject-told"): REPORT_READERS,
    ("POST", f"{_RECORDING}/holds"): HOLD_MANAGERS,
    ("POST", f"{_RECORDING}/holds/{{hold_id}}/release"): HOLD_MANAGERS,
    ("GET", f"{_RECORDING}/restriction"): RESTRICTION_MANAGERS,
    ("POST", f"{_RECORDING}/restriction"): RESTRICTION_MANAGERS,
    ("DELETE", f"{_RECORDING}/restriction"): RESTRICTION_MANAGERS,
    ("POST", f"{_RECORDING}/restriction/access"): RESTRICTION_MANAGERS,
    ("DELETE", f"{_RECORDING}/restriction/access/{{username}}"): RESTRICTION_MANAGERS,
    # cases API
    ("GET", "/api/v1/cases"): CASE_READERS,
    ("POST", "/api/v1/cases"): CASE_OPENERS,
    ("GET", _CASE): CASE_READERS,
    ("POST", f"{_CASE}/recordings"): CASE_WORKERS,
    ("DELETE", f"{_CASE}/recordings/{{recording_id}}"): CASE_WORKERS,
    ("POST", f"{_CASE}/status"): CASE_WORKERS,
    ("POST", f"{_CASE}/owners"): CASE_WORKERS,
    ("DELETE", f"{_CASE}/owners/{{username}}"): CASE_WORKERS,
    ("POST", f"{_CASE}/grants"): CASE_GRANTORS,
    ("POST", f"{_CASE}/grants/{{grant_id}}/revoke"): CASE_GRANTORS,
    # fleet API
    ("POST", "/api/v1/docks/heartbeat"): DOCKS,
    ("GET", "/api/v1/fleet/rollout"): FLEET_READERS,
    ("GET", "/api/v1/fleet/devices/{serial}"): FLEET_READERS,
    ("GET", "/api/v1/fleet/conflicts"): FLEET_READERS,
    # audit trails and alerts (audit/views.py)
    ("GET", "/api/v1/audit/recordings/{recording_id}"): RECORDING_TRAIL_READERS,
    ("GET", "/api/v1/audit/users/{username}"): AUDIT_READERS,
    ("GET", "/api/v1/audit/alerts"): AUDIT_READERS,
    # pages
    ("GET", "/login"): PUBLIC,
    ("POST", "/login"): PUBLIC,
    # Signing out: anyone; without a session nothing happens (a token is no session).
    ("POST", "/logout"): PUBLIC,
    # OpenID Connect sign-in (accounts/oidc.py): the way in, so open to all; 404 unless a force
    # configured an identity provider. An IdP's refusal is a failed sign-in, not authorisation.
    ("GET", "/login/oidc"): PUBLIC,
    ("GET", "/login/oidc/callback"): PUBLIC,
    # The home page: the recordings list for footage roles, and "no footage for this role" for
    # everyone else signed in (an administrator lands here after signing in).
    ("GET", "/"): USERS,
    ("GET", "/recordings/{recording_id}"): FOOTAGE,
    ("POST", "/recordings/{recording_id}/access"): FOOTAGE,
    # A recording's "Evidence and retention" page (lifecycle/pages.py): the same people as the
    # API's flags, holds and restriction routes, form by form.
    ("GET", "/recordings/{recording_id}/evidence"): FOOTAGE,
    ("POST", "/recordings/{recording_id}/evidence/flags"): FLAGGERS,
    ("POST", "/recordings/{recording_id}/evidence/flags/{flag_id}/withdraw"): FLAGGERS,
    ("POST", "/recordings/{recording_id}/evidence/flags/{flag_id}/review"): REVIEWERS,
    ("POST", "/recordings/{recording_id}/evidence/subject-told"): FLAGGERS,
    ("GET", "/reviews"): REVIEWERS,
    # What is due for deletion among the recordings one may see (the search's scope).
    ("GET", "/retention/due"): FOOTAGE,
    ("GET", "/reports/subject-told"): REPORT_READERS,
    # What the sweep deleted (its tombstones): the API's readers (lifecycle/record_views.py).
    ("GET", "/retention/deleted"): TOMBSTONE_READERS,
    ("POST", "/recordings/{recording_id}/evidence/holds"): HOLD_MANAGERS,
    ("POST", "/recordings/{recording_id}/evidence/holds/{hold_id}/release"): HOLD_MANAGERS,
    ("POST", "/recordings/{recording_id}/evidence/restriction"): RESTRICTION_MANAGERS,
    ("POST", "/recordings/{recording_id}/evidence/restriction/release"): RESTRICTION_MANAGERS,
    ("POST", "/recordings/{recording_id}/evidence/restriction/access"): RESTRICTION_MANAGERS,
    ("POST", "/recordings/{recording_id}/evidence/restriction/access/{username}/remove"):
        RESTRICTION_MANAGERS,
    # Case pages (lifecycle/case_pages.py): the API's people, form by form.
    ("GET", "/cases"): CASE_READERS,
    ("POST", "/cases"): CASE_OPENERS,
    ("GET", "/cases/{case_id}"): CASE_READERS,
    ("POST", "/cases/{case_id}/recordings"): CASE_WORKERS,
    ("POST", "/cases/{case_id}/recordings/{recording_id}/remove"): CASE_WORKERS,
    ("POST", "/cases/{case_id}/status"): CASE_WORKERS,
    ("POST", "/cases/{case_id}/owners"): CASE_WORKERS,
    ("POST", "/cases/{case_id}/owners/{username}/remove"): CASE_WORKERS,
    ("POST", "/cases/{case_id}/grants"): CASE_GRANTORS,
    ("POST", "/cases/{case_id}/grants/{grant_id}/revoke"): CASE_GRANTORS,
    ("GET", "/fleet"): FLEET_READERS,
    ("GET", "/fleet/devices/{serial}"): FLEET_READERS,
    ("GET", "/audit/recordings/{recording_id}"): RECORDING_TRAIL_READERS,
    ("GET", "/audit/users/{username}"): AUDIT_READERS,
    ("GET", "/audit/alerts"): AUDIT_READERS,
}


def admits(method: str, path: str, caller: Caller) -> bool:
    """Whether the table lets `caller` through authorisation on this route (KeyError: no entry,
    which is a bug the matrix test reports)."""
    return caller in ACCESS[(method, path)]
