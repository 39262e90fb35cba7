"""API keys and tenants: create, list, revoke, and authenticate on the hot path.

A key reads ``fab-<key_id>_<secret>``. Only the key id (public) and the SHA-256 of the
whole key are stored; the key itself is shown once, at creation. Authentication looks
the id up (cached for ``key_cache_ttl_s``) and compares hashes in constant time.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
import string
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.exc import DataError, IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection

from fabrique.errors import AuthenticationError, FabriqueError, InvalidField, NotFound, StoreError
from fabrique.store import Database
from fabrique.store.tables import api_keys, tenants

log = logging.getLogger("fabrique.keys")

PREFIX = "fab-"
_LOOKUP_TIMEOUT_S = 2.0  # a database that does not answer must not hold requests for long
_ID_ALPHABET = string.ascii_lowercase + string.digits
_ID_LEN = 12
_NEGATIVE_CACHE_MAX = 10_000


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """What is known of a key, never its secret."""

    key_id: str
    tenant: str
    tenant_id: int
    name: str | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    policy: str | None = None  # the key's own residency policy, if it has one

    @property
    def status(self) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= datetime.now(UTC):
            return "expired"
        return "active"

    def as_dict(self) -> dict[str, object]:
        return {"key_id": self.key_id, "tenant": self.tenant, "name": self.name,
                "status": self.status, "created_at": _iso(self.created_at),
                "expires_at": _iso(self.expires_at), "revoked_at": _iso(self.revoked_at),
                "policy": self.policy}


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the result of authentication, attached to each request."""

    tenant: str
    tenant_id: int
    key_id: str
    policy: str | None = None  # the key's residency policy, else its tenant's (admin API)


@dataclass(slots=True)
class _Cached:
    secret_hash: bytes
    principal: Principal
    expires_at: float | None  # epoch seconds
    revoked: bool
    fetched: float


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> tuple[str, str]:
    """A fresh (key_id, full key) pair."""
    key_id = "".join(secrets.choice(_ID_ALPHABET) for _ in range(_ID_LEN))
    return key_id, f"{PREFIX}{key_id}_{secrets.token_urlsafe(32)}"


def parse_key(key: str) -> str | None:
    """The key id of a well-formed key, else None."""
    if not key.startswith(PREFIX) or not key.isascii():
        return None
    key_id, sep, secret = key[len(PREFIX):].partition("_")
    if not sep or len(key_id) != _ID_LEN or not secret or len(key) > 128:
        return None
    return key_id


class KeyStore:
    """Tenants and keys in the database, with an authentication cache in front."""

    def __init__(self, db: Database, cache_ttl_s: float = 5.0) -> None:
        self.db = db
        self.cache_ttl_s = cache_ttl_s
        self._cache: dict[str, _Cached] = {}
        self._unknown: dict[str, float] = {}
        self._pending: dict[str, asyncio.Future[_Cached | None]] = {}
        self._revocations = 0  # bumped by revoke(), so a lookup racing it is not cached

    # -- administration -------------------------------------------------------------

    async def ensure_tenant(self, name: str) -> int:
        name = name.strip()
        if not name or len(name) > 128:
            raise InvalidField("tenant name must be 1 to 128 characters", param="tenant")
        async with self._begin() as conn:
            found = await conn.scalar(sa.select(tenants.c.id).where(tenants.c.name == name))
            if found is not None:
                return int(found)
            try:
                async with conn.begin_nested():
                    result = await conn.execute(
                        tenants.insert().values(name=name, created_at=datetime.now(UTC)))
                    key = result.inserted_primary_key
                    assert key is not None
                    return int(key[0])
            except IntegrityError:  # created concurrently by another process
                found = await conn.scalar(sa.select(tenants.c.id).where(tenants.c.name == name))
                if found is None:
                    raise
                return int(found)

    async def list_tenants(self) -> list[dict[str, object]]:
        async with self._begin() as conn:
            rows = (await conn.execute(sa.select(tenants).order_by(tenants.c.name))).all()
        return [{"name": r.name, "created_at": _iso(_utc(r.created_at)), "policy": r.policy}
                for r in rows]

    async def set_tenant_policy(self, name: str, policy: str | None, *,
                                create: bool = False) -> dict[str, object]:
        """Give a tenant's keys (those without their own) a residency policy; None: config's.
        An unknown tenant is NotFound, unless ``create``."""
        if create:
            tenant_id = await self.ensure_tenant(name)
        else:
            async with self._begin() as conn:
                found = await conn.scalar(sa.select(tenants.c.id).where(tenants.c.name == name))
            if found is None:
                raise NotFound(f"no tenant named {name!r}", param="name", code="tenant_not_found")
            tenant_id = int(found)
        async with self._begin() as conn:
            await conn.execute(tenants.update().where(tenants.c.id == tenant_id)
                               .values(policy=policy))
            row = (await conn.execute(sa.select(tenants).where(tenants.c.id == tenant_id))).one()
        self._forget_all()  # this process applies it at once; others within the cache TTL
        return {"name": row.name, "created_at": _iso(_utc(row.created_at)), "policy": row.policy}

    async def assigned_policies(self) -> set[str]:
        """Every policy name the admin API gave a tenant or a key."""
        async with self._begin() as conn:
            names = set((await conn.execute(sa.select(tenants.c.policy).distinct())).scalars())
            names |= set((await conn.execute(sa.select(api_keys.c.policy).distinct())).scalars())
        return {n for n in names if n is not None}

    def _forget_all(self) -> None:
        self._revocations += 1  # a lookup in flight must not cache what it read before
        self._cache.clear()

    async def create_key(self, tenant: str, *, name: str | None = None,
                         expires_at: datetime | None = None,
                         policy: str | None = None) -> tuple[KeyInfo, str]:
        """Create a key (and its tenant if needed); returns its info and the key, shown once."""
        if expires_at is not None:
            try:  # the store keeps no UTC offset: convert, or +05:00 would expire 5 h late
                expires_at = (expires_at.replace(tzinfo=UTC) if expires_at.tzinfo is None
                              else expires_at.astimezone(UTC))
            except OverflowError as exc:
                raise InvalidField("expires_at is out of range", param="expires_at") from exc
        if expires_at is not None and expires_at <= datetime.now(UTC):
            raise InvalidField("expires_at must be in the future", param="expires_at")
        tenant_id = await self.ensure_tenant(tenant)
        key_id, key = new_key()
        now = datetime.now(UTC)
        async with self._begin() as conn:
            await conn.execute(api_keys.insert().values(
                key_id=key_id, tenant_id=tenant_id, name=name, secret_hash=hash_key(key),
                created_at=now, expires_at=expires_at, policy=policy))
        self._unknown.pop(key_id, None)
        info = KeyInfo(key_id, tenant.strip(), tenant_id, name, now, expires_at, None, policy)
        return info, key

    async def list_keys(self, tenant: str | None = None) -> list[KeyInfo]:
        query = _key_query().order_by(api_keys.c.created_at)
        if tenant is not None:
            query = query.where(tenants.c.name == tenant)
        async with self._begin() as conn:
            rows = (await conn.execute(query)).all()
        return [_info(r) for r in rows]

    async def revoke(self, key_id: str) -> KeyInfo:
        if key_id.startswith(PREFIX):  # the whole key was given: keep its id part
            key_id = key_id[len(PREFIX):].partition("_")[0]
        async with self._begin() as conn:
            await conn.execute(
                api_keys.update().where(api_keys.c.key_id == key_id,
                                        api_keys.c.revoked_at.is_(None))
                .values(revoked_at=datetime.now(UTC)))
            row = (await conn.execute(_key_query().where(api_keys.c.key_id == key_id))).first()
        if row is None:
            raise NotFound(f"no key with id {key_id!r}", param="key_id", code="key_not_found")
        self._revocations += 1
        self._cache.pop(key_id, None)
        return _info(row)

    # -- hot path -------------------------------------------------------------------

    async def authenticate(self, authorization: str | None) -> Principal:
        """The principal for an ``Authorization: Bearer fab-…`` header, or AuthenticationError."""
        if not authorization:
            raise AuthenticationError(
                "Missing API key: send 'Authorization: Bearer fab-…' (create one with "
                "`fabrique keys create --tenant NAME`).")
        scheme, _, key = authorization.partition(" ")
        key = key.strip()
        key_id = parse_key(key) if scheme.lower() == "bearer" else None
        if key_id is None:
            raise AuthenticationError("Invalid API key: expected 'Authorization: Bearer fab-…'.")
        now = time.monotonic()
        entry = self._cache.get(key_id)
        if entry is None or now - entry.fetched > self.cache_ttl_s:
            entry = await self._fetch_once(key_id, now)
        # Hash whatever was sent and compare in constant time, known id or not.
        sent = hashlib.sha256(key.encode()).digest()
        expected = entry.secret_hash if entry is not None else b"\0" * 32
        if not hmac.compare_digest(sent, expected) or entry is None:
            raise AuthenticationError("Invalid API key.")
        if entry.revoked:
            raise AuthenticationError("This API key has been revoked.", code="revoked_api_key")
        if entry.expires_at is not None and entry.expires_at <= time.time():
            raise AuthenticationError("This API key has expired.", code="expired_api_key")
        return entry.principal

    async def _fetch_once(self, key_id: str, now: float) -> _Cached | None:
        """One lookup per key at a time: when the cache expires under load, the requests
        in flight share one query instead of stampeding the database."""
        pending = self._pending.get(key_id)
        if pending is None:
            pending = self._pending[key_id] = asyncio.ensure_future(self._fetch(key_id, now))
            pending.add_done_callback(lambda _: self._pending.pop(key_id, None))
        return await asyncio.shield(pending)

    async def _fetch(self, key_id: str, now: float) -> _Cached | None:
        seen_missing = self._unknown.get(key_id)
        if seen_missing is not None and now - seen_missing <= self.cache_ttl_s:
            return None
        revocations = self._revocations
        try:
            async with asyncio.timeout(_LOOKUP_TIMEOUT_S), self.db.engine.connect() as conn:
                row = (await conn.execute(_key_query().where(api_keys.c.key_id == key_id))).first()
        except (SQLAlchemyError, OSError, TimeoutError) as exc:
            stale = self._cache.get(key_id)
            if stale is not None:  # the database is down: keep serving known keys, and wait
                stale.fetched = now  # a TTL before asking it again
                return stale
            log.warning("key lookup failed: %s", exc)
            raise StoreError("Cannot check the API key: the database is unavailable.") from exc
        if revocations != self._revocations:
            # A revocation in this process committed while we read: our row may predate it.
            return await self._fetch(key_id, now)
        if row is None:
            if len(self._unknown) >= _NEGATIVE_CACHE_MAX:
                self._unknown.clear()
            self._unknown[key_id] = now
            self._cache.pop(key_id, None)
            return None
        expires = _utc(row.expires_at)
        entry = _Cached(
            secret_hash=bytes.fromhex(row.secret_hash),
            principal=Principal(row.tenant, row.tenant_id, key_id,
                                row.policy or row.tenant_policy),
            expires_at=expires.timestamp() if expires else None,
            revoked=row.revoked_at is not None, fetched=now)
        self._cache[key_id] = entry
        return entry

    @asynccontextmanager
    async def _begin(self) -> AsyncIterator[AsyncConnection]:
        # Driver messages quote SQL and parameters (a key's hash among them): they go to
        # the log, never into an answer.
        try:
            async with self.db.engine.begin() as conn:
                yield conn
        except DataError as exc:
            raise InvalidField("A value cannot be stored (invalid characters or length).") from exc
        except IntegrityError as exc:
            log.warning("integrity error: %s", exc)
            raise FabriqueError("The change conflicts with stored data; retry.", status=409,
                                code="conflict") from exc
        except (SQLAlchemyError, OSError) as exc:
            log.error("database error: %s", exc)
            raise StoreError("The database is unavailable; retry shortly.") from exc


def _key_query() -> sa.Select:  # type: ignore[type-arg]
    return sa.select(api_keys, tenants.c.name.label("tenant"),
                     tenants.c.policy.label("tenant_policy")).join(
        tenants, tenants.c.id == api_keys.c.tenant_id)


def _info(row: sa.Row) -> KeyInfo:  # type: ignore[type-arg]
    return KeyInfo(row.key_id, row.tenant, row.tenant_id, row.name, row.created_at.replace(
        tzinfo=row.created_at.tzinfo or UTC), _utc(row.expires_at), _utc(row.revoked_at), row.policy)


def _utc(value: datetime | None) -> datetime | None:
    # SQLite returns naive datetimes; everything Fabrique writes is UTC.
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
