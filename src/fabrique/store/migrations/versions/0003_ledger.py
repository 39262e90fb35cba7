"""The audit ledger: records, Merkle nodes, the sequencer's head, signed heads, payloads.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    head = op.create_table(
        "ledger_head",
        sa.Column("id", sa.SmallInteger, nullable=False, autoincrement=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("purged_before", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_ledger_head"),
    )
    op.bulk_insert(head, [{"id": 1, "size": 0, "purged_before": 0}])
    op.create_table(
        "ledger_records",
        sa.Column("idx", sa.BigInteger, nullable=False, autoincrement=False),
        sa.Column("time_ms", sa.BigInteger, nullable=False),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("record", sa.LargeBinary, nullable=True),
        sa.PrimaryKeyConstraint("idx", name="pk_ledger_records"),
    )
    op.create_index("ix_ledger_records_request_id", "ledger_records", ["request_id"])
    op.create_index("ix_ledger_records_tenant_idx", "ledger_records", ["tenant", "idx"])
    op.create_table(
        "ledger_nodes",
        sa.Column("level", sa.SmallInteger, nullable=False, autoincrement=False),
        sa.Column("idx", sa.BigInteger, nullable=False, autoincrement=False),
        sa.Column("hash", sa.LargeBinary(32), nullable=False),
        sa.PrimaryKeyConstraint("level", "idx", name="pk_ledger_nodes"),
    )
    op.create_table(
        "ledger_tree_heads",
        sa.Column("size", sa.BigInteger, nullable=False, autoincrement=False),
        sa.Column("root", sa.LargeBinary(32), nullable=False),
        sa.Column("timestamp_ms", sa.BigInteger, nullable=False),
        sa.Column("key_id", sa.String(16), nullable=False),
        sa.Column("signature", sa.LargeBinary(64), nullable=False),
        sa.PrimaryKeyConstraint("size", "key_id", name="pk_ledger_tree_heads"),
    )
    op.create_table(
        "ledger_payloads",
        sa.Column("idx", sa.BigInteger, nullable=False, autoincrement=False),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("subject_ref", sa.String(64), nullable=False),
        sa.Column("blob", sa.LargeBinary, nullable=False),
        sa.Column("expires_ms", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("idx", name="pk_ledger_payloads"),
    )
    op.create_index("ix_ledger_payloads_expires_ms", "ledger_payloads", ["expires_ms"])
    op.create_table(
        "ledger_subject_keys",
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("subject_ref", sa.String(64), nullable=False),
        sa.Column("wrapped", sa.LargeBinary, nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("tenant", "subject_ref", name="pk_ledger_subject_keys"),
    )


def downgrade() -> None:
    for table in ("ledger_subject_keys", "ledger_payloads", "ledger_tree_heads", "ledger_nodes",
                  "ledger_records", "ledger_head"):
        op.drop_table(table)
