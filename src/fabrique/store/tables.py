"""The tables, declared once; Alembic migrations under ``migrations/`` create them."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData(naming_convention={
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
})

tenants = sa.Table(
    "tenants", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(128), nullable=False, unique=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    # The residency policy of the tenant's keys that have none of their own; NULL: config's.
    sa.Column("policy", sa.String(128), nullable=True),
)

api_keys = sa.Table(
    "api_keys", metadata,
    # The public part of the key (``fab-<key_id>_<secret>``): safe to show and log.
    sa.Column("key_id", sa.String(32), primary_key=True),
    sa.Column("tenant_id", sa.Integer, sa.ForeignKey("tenants.id"), nullable=False, index=True),
    sa.Column("name", sa.String(128), nullable=True),
    # SHA-256 of the whole key: the secret has 256 bits of entropy, so a fast hash is the
    # right tool (a slow KDF protects low-entropy passwords, and would cost every request).
    sa.Column("secret_hash", sa.String(64), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("policy", sa.String(128), nullable=True),  # overrides the tenant's
)

# The audit ledger (fabrique.ledger). One row of ledger_head is the sequencer: every append
# locks it, so several processes sharing PostgreSQL write one log with no gap and no fork.
ledger_head = sa.Table(
    "ledger_head", metadata,
    sa.Column("id", sa.SmallInteger, primary_key=True, autoincrement=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    # Records before this index were purged (retention); their leaf hashes stay.
    sa.Column("purged_before", sa.BigInteger, nullable=False),
)

ledger_records = sa.Table(
    "ledger_records", metadata,
    sa.Column("idx", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("time_ms", sa.BigInteger, nullable=False),
    sa.Column("tenant", sa.String(128), nullable=False),
    sa.Column("request_id", sa.String(64), nullable=False, index=True),
    sa.Column("record", sa.LargeBinary, nullable=True),  # canonical JSON; NULL once purged
    sa.Index("ix_ledger_records_tenant_idx", "tenant", "idx"),
)

# Every complete subtree's hash, (level, idx) = leaves [idx·2^level, (idx+1)·2^level);
# level 0 holds the leaf hashes. Proofs read a few rows here and never rehash the log.
ledger_nodes = sa.Table(
    "ledger_nodes", metadata,
    sa.Column("level", sa.SmallInteger, primary_key=True, autoincrement=False),
    sa.Column("idx", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("hash", sa.LargeBinary(32), nullable=False),
)

ledger_tree_heads = sa.Table(
    "ledger_tree_heads", metadata,
    sa.Column("size", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("root", sa.LargeBinary(32), nullable=False),
    sa.Column("timestamp_ms", sa.BigInteger, nullable=False),
    sa.Column("key_id", sa.String(16), primary_key=True),
    sa.Column("signature", sa.LargeBinary(64), nullable=False),
)

# Encrypted payloads (AES-GCM, a key per data subject); the record holds their SHA-256.
ledger_payloads = sa.Table(
    "ledger_payloads", metadata,
    sa.Column("idx", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("tenant", sa.String(128), nullable=False),
    sa.Column("subject_ref", sa.String(64), nullable=False),
    sa.Column("blob", sa.LargeBinary, nullable=False),  # nonce ‖ ciphertext ‖ tag
    sa.Column("expires_ms", sa.BigInteger, nullable=False, index=True),
)

# Data-subject keys, wrapped by the ledger's master key. Erasure deletes the row.
ledger_subject_keys = sa.Table(
    "ledger_subject_keys", metadata,
    sa.Column("tenant", sa.String(128), primary_key=True),
    sa.Column("subject_ref", sa.String(64), primary_key=True),  # HMAC of the subject id
    sa.Column("wrapped", sa.LargeBinary, nullable=False),
    sa.Column("created_ms", sa.BigInteger, nullable=False),
)

# One row per request that reached the pipeline (metering, issue 6); written in batches
# behind the request path. Names, not foreign keys: usage outlives revoked keys.
usage = sa.Table(
    "usage", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("request_id", sa.String(40), nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("tenant", sa.String(128), nullable=False, index=True),
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
