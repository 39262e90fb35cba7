"""Usage per request (metering).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "usage",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.String(40), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("agent", sa.String(128), nullable=True),
        sa.Column("model", sa.String(256), nullable=False),
        sa.Column("deployment", sa.String(256), nullable=True),
        sa.Column("endpoint", sa.String(32), nullable=False),
        sa.Column("stream", sa.Boolean, nullable=False),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("outcome", sa.String(64), nullable=False),
        sa.Column("input_tokens", sa.Integer, nullable=False),
        sa.Column("output_tokens", sa.Integer, nullable=False),
        sa.Column("estimated", sa.Boolean, nullable=False),
        sa.Column("latency_ms", sa.Float, nullable=False),
        sa.Column("ttft_ms", sa.Float, nullable=True),
        sa.Column("tpot_ms", sa.Float, nullable=True),
        sa.Column("queue_ms", sa.Float, nullable=True),
        sa.Column("cost_eur", sa.Float, nullable=False),
        sa.Column("energy_wh", sa.Float, nullable=False),
        sa.Column("co2e_g", sa.Float, nullable=False),
        sa.Column("embodied_g", sa.Float, nullable=False),
        sa.Column("energy_source", sa.String(16), nullable=False),
    )
    op.create_index(op.f("ix_usage_at"), "usage", ["at"])
    op.create_index(op.f("ix_usage_tenant"), "usage", ["tenant"])


def downgrade() -> None:
    op.drop_index(op.f("ix_usage_tenant"), table_name="usage")
    op.drop_index(op.f("ix_usage_at"), table_name="usage")
    op.drop_table("usage")
