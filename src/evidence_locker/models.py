"""Every feature's models, imported once so that metadata and Alembic see all tables."""

from evidence_locker.accounts.models import ApiToken, User, UserIdentity, WebSession
from evidence_locker.audit.models import AuditCheckpoint, AuditEvent
from evidence_locker.catalogue.models import (
    AccessGrant,
    Blob,
    Recording,
    RecordingFile,
    RecordingRestriction,
    RestrictionAccess,
)
from evidence_locker.db import Base
from evidence_locker.fleet.models import Device, Dock, Officer, Unit
from evidence_locker.ingest.models import Upload
from evidence_locker.lifecycle.case_models import Case, CaseGrant, CaseOwner, CaseRecording
from evidence_locker.lifecycle.models import (
    CategoryVersion,
    EvidenceFlag,
    Hold,
    IdempotencyKey,
    ReviewDecision,
    SubjectTold,
    Tombstone,
)

__all__ = [
    "AccessGrant",
    "ApiToken",
    "AuditCheckpoint",
    "AuditEvent",
    "Base",
    "Blob",
    "Case",
    "CaseGrant",
    "CaseOwner",
    "CaseRecording",
    "CategoryVersion",
    "Device",
    "Dock",
    "EvidenceFlag",
    "Hold",
    "IdempotencyKey",
    "Officer",
    "Recording",
    "RecordingFile",
    "RecordingRestriction",
    "RestrictionAccess",
    "ReviewDecision",
    "SubjectTold",
    "Tombstone",
    "Unit",
    "Upload",
    "User",
    "UserIdentity",
    "WebSession",
]
