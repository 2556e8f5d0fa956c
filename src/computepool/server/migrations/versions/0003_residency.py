"""Residency in the live pool: approvals on record, per-year person counters, data transfers
(GB, start delay and egress per placement interval; egress in the ledger).

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "residency_approvals",
        sa.Column("id", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("handler", sa.String(length=128), nullable=False),
        sa.Column("origin", sa.String(length=32), nullable=False),
        sa.Column("data_class", sa.String(length=128), nullable=False),
        sa.Column("to", sa.JSON(), nullable=False),
        sa.Column("datasets", sa.JSON(), nullable=False),
        sa.Column("valid_from", sa.Float(), nullable=True),
        sa.Column("expires", sa.Float(), nullable=True),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("revoked_at", sa.Float(), nullable=True),
        sa.Column("revoked_by", sa.String(length=128), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "residency_exports",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("handler", sa.String(length=128), nullable=False),
        sa.Column("origin", sa.String(length=32), nullable=False),
        sa.Column("counter", sa.String(length=32), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("dataset", sa.String(length=256), nullable=False),
        sa.Column("persons", sa.Integer(), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint(
            "handler", "origin", "counter", "year", "dataset", name="uq_residency_exports_key"
        ),
    )
    with op.batch_alter_table("allocations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("transfer_gb", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("transfer_s", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("egress_usd", sa.Float(), nullable=True))
    with op.batch_alter_table("ledger_entries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("egress_usd", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("ledger_entries", schema=None) as batch_op:
        batch_op.drop_column("egress_usd")
    with op.batch_alter_table("allocations", schema=None) as batch_op:
        batch_op.drop_column("egress_usd")
        batch_op.drop_column("transfer_s")
        batch_op.drop_column("transfer_gb")
    op.drop_table("residency_exports")
    op.drop_table("residency_approvals")
