"""The OpenAI-compatible gateway: tokens metered per tenant, service and model, and each
tenant's request and token rate limits.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "token_usage",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("service", sa.String(length=128), nullable=False),
        sa.Column("model", sa.String(length=128), nullable=False),
        sa.Column("start", sa.Float(), nullable=False),
        sa.Column("end", sa.Float(), nullable=False),
        sa.Column("requests", sa.Integer(), nullable=False),
        sa.Column("prompt_tokens", sa.BigInteger(), nullable=False),
        sa.Column("completion_tokens", sa.BigInteger(), nullable=False),
        sa.Column("estimated", sa.Integer(), nullable=False),
        sa.Column("cost_usd", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("token_usage", schema=None) as batch_op:
        batch_op.create_index("ix_token_usage_tenant_end", ["tenant_id", "end"], unique=False)
        batch_op.create_index("ix_token_usage_end", ["end"], unique=False)
    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.add_column(sa.Column("requests_per_s", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("tokens_per_min", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.drop_column("tokens_per_min")
        batch_op.drop_column("requests_per_s")
    with op.batch_alter_table("token_usage", schema=None) as batch_op:
        batch_op.drop_index("ix_token_usage_end")
        batch_op.drop_index("ix_token_usage_tenant_end")
    op.drop_table("token_usage")
