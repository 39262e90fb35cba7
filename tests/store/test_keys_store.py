"""Key lifecycle on both backends: SQLite (embedded default) and PostgreSQL (scale-out)."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from fabrique.errors import AuthenticationError, InvalidField, NotFound, StoreError
from fabrique.keys import KeyStore, parse_key
from fabrique.store import Database

from ..conftest import PG_URL, drop_all


async def test_create_authenticate_revoke(db):
    store = KeyStore(db)
    info, key = await store.create_key("acme", name="ci")
    assert key.startswith("fab-") and parse_key(key) == info.key_id
    principal = await store.authenticate(f"Bearer {key}")
    assert (principal.tenant, principal.key_id) == ("acme", info.key_id)
    await store.revoke(info.key_id)
    with pytest.raises(AuthenticationError) as exc:
        await store.authenticate(f"Bearer {key}")
    assert exc.value.code == "revoked_api_key"
    [listed] = await store.list_keys("acme")
    assert listed.status == "revoked"


async def test_only_the_hash_is_stored(db):
    store = KeyStore(db)
    _info, key = await store.create_key("acme")
    async with db.engine.connect() as conn:
        row = (await conn.execute(sa.text("SELECT * FROM api_keys"))).mappings().one()
    assert key not in {str(v) for v in row.values()}
    assert row["secret_hash"] == hashlib.sha256(key.encode()).hexdigest()


async def test_expired_key_is_refused(db):
    store = KeyStore(db)
    _, key = await store.create_key("acme", expires_at=datetime.now(UTC) + timedelta(seconds=1))
    await store.authenticate(f"Bearer {key}")
    await asyncio.sleep(1.1)
    with pytest.raises(AuthenticationError) as exc:
        await store.authenticate(f"Bearer {key}")
    assert exc.value.code == "expired_api_key"
    with pytest.raises(InvalidField):
        await store.create_key("acme", expires_at=datetime.now(UTC) - timedelta(days=1))


async def test_wrong_secret_with_a_real_key_id_is_refused(db):
    store = KeyStore(db)
    _, key = await store.create_key("acme")
    with pytest.raises(AuthenticationError):
        await store.authenticate(f"Bearer {key[:-1]}{'A' if key[-1] != 'A' else 'B'}")


async def test_tenants_are_created_once_even_concurrently(db):
    stores = [KeyStore(db) for _ in range(5)]
    ids = await asyncio.gather(*(s.ensure_tenant("globex") for s in stores))
    assert len(set(ids)) == 1
    assert [t["name"] for t in await stores[0].list_tenants()] == ["globex"]


async def test_keys_are_listed_per_tenant(db):
    store = KeyStore(db)
    await store.create_key("acme")
    await store.create_key("acme")
    await store.create_key("globex")
    assert len(await store.list_keys("acme")) == 2
    assert {k.tenant for k in await store.list_keys()} == {"acme", "globex"}


async def test_revoking_an_unknown_key_is_not_found(db):
    with pytest.raises(NotFound):
        await KeyStore(db).revoke("nosuchkey123")


async def test_revocation_by_another_process_applies_within_the_cache_ttl(db):
    gateway_side, admin_side = KeyStore(db, cache_ttl_s=0.2), KeyStore(db)
    info, key = await admin_side.create_key("acme")
    await gateway_side.authenticate(f"Bearer {key}")
    await admin_side.revoke(info.key_id)
    await gateway_side.authenticate(f"Bearer {key}")  # still cached: bounded staleness
    await asyncio.sleep(0.25)
    with pytest.raises(AuthenticationError):
        await gateway_side.authenticate(f"Bearer {key}")


async def _store_losing_its_database(tmp_path, new_url: str) -> tuple[KeyStore, str, str]:
    """A store that has cached one key (known) but not another (unknown), then finds its
    database replaced by ``new_url``."""
    db = await Database(f"sqlite+aiosqlite:///{tmp_path / 'k.db'}").open()
    store = KeyStore(db, cache_ttl_s=0)
    _, known = await store.create_key("acme")
    _, unknown = await KeyStore(db).create_key("globex")
    await store.authenticate(f"Bearer {known}")
    await db.close()
    store.db = Database(new_url)
    return store, known, unknown


async def test_known_keys_keep_working_while_the_database_is_down(tmp_path, unused_tcp_port):
    # The database goes away: nothing listens where the store now looks.
    store, key, unknown = await _store_losing_its_database(
        tmp_path, f"postgresql+asyncpg://postgres@127.0.0.1:{unused_tcp_port}/gone")
    try:
        assert (await store.authenticate(f"Bearer {key}")).tenant == "acme"
        with pytest.raises(StoreError):
            await store.authenticate(f"Bearer {unknown}")
    finally:
        await store.db.close()


@pytest.mark.postgres
async def test_two_replicas_share_keys_through_postgresql():
    await drop_all(PG_URL)
    a, b = await asyncio.gather(Database(PG_URL).open(), Database(PG_URL).open())
    try:
        _, key = await KeyStore(a).create_key("acme")
        assert (await KeyStore(b).authenticate(f"Bearer {key}")).tenant == "acme"
    finally:
        await a.close()
        await b.close()
        await drop_all(PG_URL)


async def test_an_expired_cache_entry_is_refreshed_once_for_all_waiting_requests(db):
    store = KeyStore(db, cache_ttl_s=0)
    _, key = await store.create_key("acme")
    fetch, calls = store._fetch, []

    async def counting(key_id, now):
        calls.append(key_id)
        return await fetch(key_id, now)

    store._fetch = counting
    principals = await asyncio.gather(*(store.authenticate(f"Bearer {key}") for _ in range(50)))
    assert {p.tenant for p in principals} == {"acme"}
    assert len(calls) == 1


async def test_a_silent_database_holds_requests_for_seconds_not_minutes(tmp_path):
    # A TCP listener that accepts and never answers: what a hung PostgreSQL looks like.
    held: list[asyncio.StreamWriter] = []
    server = await asyncio.start_server(lambda r, w: held.append(w), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    store, known, unknown = await _store_losing_its_database(
        tmp_path, f"postgresql+asyncpg://postgres@127.0.0.1:{port}/hung")
    try:
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(StoreError) as info:
            await store.authenticate(f"Bearer {unknown}")
        assert "SELECT" not in info.value.message
        assert (await store.authenticate(f"Bearer {known}")).tenant == "acme"  # stale but served
        assert loop.time() - started < 30  # bounded by the lookup timeout, not asyncpg's 60 s
        assert await store.db.ping(timeout_s=0.5) is False
    finally:
        await store.db.close()
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()
