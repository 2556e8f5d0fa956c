"""Tenant isolation in the store: one writer (a lease), budget reservations and job time
limits, data handlers owned by tenants.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "store_leases",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("holder", sa.String(length=64), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("machine", sa.String(length=255), nullable=False),
        sa.Column("since", sa.Float(), nullable=False),
        sa.Column("renewed_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "tenant_handlers",
        sa.Column("handler", sa.String(length=128), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),
        sa.PrimaryKeyConstraint("handler"),
    )
    with op.batch_alter_table("tenant_handlers", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_tenant_handlers_tenant_id"), ["tenant_id"], unique=False
        )
    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.add_column(sa.Column("default_max_hours", sa.Float(), nullable=True))
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("time_limit_s", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("reserved_accel_hours", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("reserved_usd", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("reserved_usd")
        batch_op.drop_column("reserved_accel_hours")
        batch_op.drop_column("time_limit_s")
    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.drop_column("default_max_hours")
    with op.batch_alter_table("tenant_handlers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tenant_handlers_tenant_id"))
    op.drop_table("tenant_handlers")
    op.drop_table("store_leases")
