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
