"""The fleet register: assignments of cameras to officers over time, dock heartbeats and camera
health, attribution conflicts for the fleet administrator.

Data: every device's `issued_to_officer_id` becomes an open assignment. When it began is not
known, so it starts at ASSIGNMENT_EPOCH (the register's "since before records began"), which
keeps every existing recording attributed as it was.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from alembic import op

import evidence_locker.db

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# Same value as evidence_locker.fleet.service.ASSIGNMENT_EPOCH (a migration must not import code
# that may change later).
ASSIGNMENT_EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
UTC = evidence_locker.db.UTCDateTime


def upgrade() -> None:
    op.create_table(
        "device_assignments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("officer_id", sa.Integer(), nullable=False),
        sa.Column("starts_at", UTC(), nullable=False),
        sa.Column("ends_at", UTC(), nullable=True),
        sa.Column("created_at", UTC(), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("note", sa.String(length=500), nullable=False),
        sa.ForeignKeyConstraint(["device_id"], ["devices.id"],
                                name=op.f("fk_device_assignments_device_id_devices")),
        sa.ForeignKeyConstraint(["officer_id"], ["officers.id"],
                                name=op.f("fk_device_assignments_officer_id_officers")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_device_assignments")),
    )
    op.create_index("ix_device_assignments_device_starts", "device_assignments",
                    ["device_id", "starts_at"])
    op.create_index("ix_device_assignments_officer", "device_assignments",
                    ["officer_id", "starts_at"])
    op.create_index("uq_device_assignments_open", "device_assignments", ["device_id"],
                    unique=True, sqlite_where=sa.text("ends_at IS NULL"),
                    postgresql_where=sa.text("ends_at IS NULL"))

    op.create_table(
        "camera_status",
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("dock_id", sa.Integer(), nullable=False),
        sa.Column("bay", sa.Integer(), nullable=False),
        sa.Column("seen_at", UTC(), nullable=False),
        sa.Column("battery_percent", sa.Integer(), nullable=True),
        sa.Column("firmware", sa.String(length=64), nullable=True),
        sa.Column("free_bytes", sa.BigInteger(), nullable=True),
        sa.Column("clock_drift_seconds", sa.Float(), nullable=True),
        sa.Column("files_waiting", sa.Integer(), nullable=False),
        sa.Column("bytes_waiting", sa.BigInteger(), nullable=False),
        sa.Column("observed_at", UTC(), nullable=False),
        sa.ForeignKeyConstraint(["device_id"], ["devices.id"],
                                name=op.f("fk_camera_status_device_id_devices")),
        sa.ForeignKeyConstraint(["dock_id"], ["docks.id"],
                                name=op.f("fk_camera_status_dock_id_docks")),
        sa.PrimaryKeyConstraint("device_id", name=op.f("pk_camera_status")),
    )
    op.create_index(op.f("ix_camera_status_seen_at"), "camera_status", ["seen_at"])

    op.create_table(
        "camera_observations",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("dock_id", sa.Integer(), nullable=False),
        sa.Column("bay", sa.Integer(), nullable=False),
        sa.Column("observed_at", UTC(), nullable=False),
        sa.Column("battery_percent", sa.Integer(), nullable=True),
        sa.Column("firmware", sa.String(length=64), nullable=True),
        sa.Column("free_bytes", sa.BigInteger(), nullable=True),
        sa.Column("clock_drift_seconds", sa.Float(), nullable=True),
        sa.Column("files_waiting", sa.Integer(), nullable=False),
        sa.Column("bytes_waiting", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["device_id"], ["devices.id"],
                                name=op.f("fk_camera_observations_device_id_devices")),
        sa.ForeignKeyConstraint(["dock_id"], ["docks.id"],
                                name=op.f("fk_camera_observations_dock_id_docks")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_camera_observations")),
    )
    op.create_index("ix_camera_observations_device_at", "camera_observations",
                    ["device_id", "observed_at"])

    op.create_table(
        "attribution_conflicts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("recording_id", sa.Uuid(), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("register_officer_id", sa.Integer(), nullable=True),
        sa.Column("camera_officer", sa.String(length=64), nullable=True),
        sa.Column("recorded_at", UTC(), nullable=True),
        sa.Column("detected_at", UTC(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["device_id"], ["devices.id"],
                                name=op.f("fk_attribution_conflicts_device_id_devices")),
        sa.ForeignKeyConstraint(["recording_id"], ["recordings.id"],
                                name=op.f("fk_attribution_conflicts_recording_id_recordings")),
        sa.ForeignKeyConstraint(
            ["register_officer_id"], ["officers.id"],
            name=op.f("fk_attribution_conflicts_register_officer_id_officers")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_attribution_conflicts")),
        sa.UniqueConstraint("recording_id", name=op.f("uq_attribution_conflicts_recording_id")),
    )
    op.create_index(op.f("ix_attribution_conflicts_detected_at"), "attribution_conflicts",
                    ["detected_at"])
    op.create_index(op.f("ix_attribution_conflicts_device_id"), "attribution_conflicts",
                    ["device_id"])

    with op.batch_alter_table("docks") as batch:
        batch.add_column(sa.Column("unit_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("last_seen_at", UTC(), nullable=True))
        batch.add_column(sa.Column("last_sent_at", UTC(), nullable=True))
        batch.add_column(sa.Column("agent_version", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("reported_bays", sa.Integer(), nullable=True))
        batch.create_foreign_key(op.f("fk_docks_unit_id_units"), "units", ["unit_id"], ["id"])

    # Data: what `issued_to_officer_id` said becomes an open assignment.
    bind = op.get_bind()
    devices = sa.table("devices", sa.column("id", sa.Integer()),
                       sa.column("issued_to_officer_id", sa.Integer()))
    assignments = sa.table(
        "device_assignments", sa.column("device_id", sa.Integer()),
        sa.column("officer_id", sa.Integer()), sa.column("starts_at", UTC()),
        sa.column("ends_at", UTC()), sa.column("created_at", UTC()),
        sa.column("created_by", sa.String()), sa.column("note", sa.String()))
    now = dt.datetime.now(dt.UTC)
    rows = bind.execute(sa.select(devices.c.id, devices.c.issued_to_officer_id)
                        .where(devices.c.issued_to_officer_id.is_not(None))).all()
    if rows:
        bind.execute(assignments.insert(), [
            {"device_id": device_id, "officer_id": officer_id, "starts_at": ASSIGNMENT_EPOCH,
             "ends_at": None, "created_at": now, "created_by": "migration 0006",
             "note": "issued before assignments were recorded; start unknown"}
            for device_id, officer_id in rows])


def downgrade() -> None:
    # issued_to_officer_id was kept in step with the open assignment, so nothing to copy back.
    with op.batch_alter_table("docks") as batch:
        batch.drop_constraint(op.f("fk_docks_unit_id_units"), type_="foreignkey")
        batch.drop_column("reported_bays")
        batch.drop_column("agent_version")
        batch.drop_column("last_sent_at")
        batch.drop_column("last_seen_at")
        batch.drop_column("unit_id")
    op.drop_table("attribution_conflicts")
    op.drop_table("camera_observations")
    op.drop_table("camera_status")
    op.drop_table("device_assignments")
