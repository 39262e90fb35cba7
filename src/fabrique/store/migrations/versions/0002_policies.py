"""Residency policy per tenant and per key.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tenants") as batch:
        batch.add_column(sa.Column("policy", sa.String(128), nullable=True))
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("policy", sa.String(128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("policy")
    with op.batch_alter_table("tenants") as batch:
        batch.drop_column("policy")
