"""The ledger on SQLite and PostgreSQL: durable grouped appends, one sequencer, proofs."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from fabrique.config import Config
from fabrique.ledger import merkle
from fabrique.ledger.canonical import canonical
from fabrique.ledger.leaf import record_leaf_hash
from fabrique.ledger.service import Ledger
from fabrique.ledger.signing import verify_head
from fabrique.ledger.store import Entry
from fabrique.ledger.verify import verify_export
from fabrique.store import Database

from ..conftest import make_config


def entry(n: int, tenant: str = "acme") -> Entry:
    record = canonical({"request_id": f"req_{n}", "tenant": tenant, "status": 200})
    return Entry(record, 1_000 + n, tenant, f"req_{n}")


async def exported(led: Ledger, since_ms: int | None = None) -> list[bytes]:
    return [line async for line in led.export(since_ms)]


async def test_concurrent_appends_share_commits_and_get_distinct_indexes(ledger):
    indexes = await asyncio.gather(*(ledger.append(entry(i)) for i in range(300)))
    assert sorted(indexes) == list(range(300))
    assert ledger.commits.batches < 300  # grouped: fewer commits than appends
    head = await ledger.sign()
    assert head.size == 300 and verify_head(head, ledger.signer.public)
    result = verify_export(await exported(ledger), ledger.signer.public)
    assert result.records == 300


async def test_the_stored_tree_is_the_rfc_tree(ledger):
    records = [canonical({"n": i}) for i in range(37)]
    for r in records:
        await ledger.append(Entry(r, 0, "acme", "r"))
    leaves = [record_leaf_hash(i, r) for i, r in enumerate(records)]
    assert (await ledger.store.head()).root == merkle.root_of(leaves)
    for size in (1, 16, 37):
        assert await merkle.root_at(ledger.store.read_nodes, size) == merkle.root_of(leaves[:size])


async def test_proofs_from_the_store_verify_against_the_signed_head(ledger):
    for i in range(21):
        await ledger.append(entry(i))
    early = await ledger.sign()
    for i in range(21, 50):
        await ledger.append(entry(i))
    proof = await ledger.inclusion(13)
    head = proof["tree_head"]
    assert head["size"] == 50 and proof["record"]["request_id"] == "req_13"
    assert merkle.verify_inclusion(13, 50, bytes.fromhex(proof["leaf_hash"]),
                                   [bytes.fromhex(h) for h in proof["proof"]],
                                   bytes.fromhex(head["root_hash"]))
    cons = await ledger.consistency(early.size)
    assert cons["first_root"] == early.root.hex()
    assert merkle.verify_consistency(early.size, 50, early.root, bytes.fromhex(head["root_hash"]),
                                     [bytes.fromhex(h) for h in cons["proof"]])


async def test_two_independent_gateways_write_one_log(db_url, tmp_path):
    """Two engines (as two processes would have) append at once: one log, no gap, no fork."""
    config = make_config(tmp_path)
    dbs = [await Database(db_url).open() for _ in range(2)]
    ledgers = [Ledger(config, db) for db in dbs]
    for led in ledgers:
        await led.start()
    try:
        got = await asyncio.gather(*(ledgers[i % 2].append(entry(i, f"t{i % 2}")) for i in range(400)))
        assert sorted(got) == list(range(400))
        lines = await exported(ledgers[1])
        result = verify_export(lines, ledgers[0].signer.public)
        assert result.records == 400
        seen = [orjson.loads(line)["record"]["request_id"] for line in lines[1:-1]
                if b'"type":"record"' in line]
        assert sorted(seen) == sorted(f"req_{i}" for i in range(400))
    finally:
        for led, db in zip(ledgers, dbs, strict=True):
            await led.close()
            await db.close()


async def test_export_since_starts_mid_log_and_still_verifies(ledger):
    for i in range(40):
        await ledger.append(entry(i))
    await ledger.sign()  # a checkpoint at 40
    for i in range(40, 45):
        await ledger.append(entry(i))
    lines = await exported(ledger, since_ms=1_000 + 25)
    result = verify_export(lines, ledger.signer.public)
    assert (result.start, result.records, result.checkpoints) == (25, 20, 2)


async def test_retention_purges_content_and_the_tree_still_verifies(ledger):
    for i in range(10):
        await ledger.append(entry(i))
    day = 86_400_000
    # Records 0..5 are older than the retention (records' time is 1000 + n ms).
    assert (await ledger.purge(now=1_006 + 183 * day))["records"] == 0  # none is old enough
    done = await ledger.purge(now=1_006 + 184 * day)  # the minimum, and a day of slack
    assert done["records"] == 6
    lines = await exported(ledger)
    result = verify_export(lines, ledger.signer.public)
    assert (result.start, result.records) == (6, 4)
    proof = await ledger.inclusion(2)  # a purged record is still proven by its leaf hash
    assert proof["record"] is None and merkle.verify_inclusion(
        2, 10, bytes.fromhex(proof["leaf_hash"]), [bytes.fromhex(h) for h in proof["proof"]],
        bytes.fromhex(proof["tree_head"]["root_hash"]))


async def test_a_restarted_ledger_continues_the_same_tree(db_url, tmp_path):
    config: Config = make_config(tmp_path)
    for round_ in range(2):
        db = await Database(db_url).open()
        led = Ledger(config, db)
        await led.start()
        for i in range(5):
            await led.append(entry(round_ * 5 + i))
        await led.close()
        await db.close()
    db = await Database(db_url).open()
    led = Ledger(config, db)
    led.load_keys()
    try:
        assert verify_export(await exported(led), led.signer.public).records == 10
    finally:
        await led.store.close()
        await db.close()


async def test_relaxed_sync_writes_the_same_verified_log(db_url, tmp_path):
    config = make_config(tmp_path, ledger={"sync": "normal"})
    db = await Database(db_url).open()
    led = Ledger(config, db)
    await led.start()
    try:
        await asyncio.gather(*(led.append(entry(i)) for i in range(50)))
        if db.dialect == "sqlite":  # the ledger's own connection, not the others'
            pragma = await led.store._sqlite.run(lambda c: c.execute("PRAGMA synchronous").fetchone())
            assert pragma == (1,)  # NORMAL
        assert verify_export(await exported(led), led.signer.public).records == 50
    finally:
        await led.close()
        await db.close()


async def test_the_generic_sqlalchemy_path_writes_the_same_log(db_url, tmp_path):
    """Drivers other than aiosqlite and asyncpg (psycopg …) append through SQLAlchemy."""
    config = make_config(tmp_path)
    dbs = [await Database(db_url).open() for _ in range(2)]
    ledgers = [Ledger(config, db) for db in dbs]
    for led in ledgers:
        await led.start()
    ledgers[0].store._sqlite = ledgers[0].store._pg = None  # the generic path, beside a fast one
    try:
        got = await asyncio.gather(*(ledgers[i % 2].append(entry(i)) for i in range(200)))
        assert sorted(got) == list(range(200))
        assert verify_export(await exported(ledgers[0]), ledgers[0].signer.public).records == 200
    finally:
        for led, db in zip(ledgers, dbs, strict=True):
            await led.close()
            await db.close()


async def test_proof_documents_check_offline(ledger):
    from fabrique.ledger.proofs import ProofInvalid, check_proof

    for i in range(12):
        await ledger.append(entry(i))
    early = await ledger.sign()
    for i in range(12, 30):
        await ledger.append(entry(i))
    public = ledger.signer.public
    assert "record 5 is in the log of 30" in check_proof(await ledger.inclusion(5), public)
    cons = await ledger.consistency(12)
    assert cons["first_tree_head"]["root_hash"] == early.root.hex()
    assert "prefix" in check_proof(cons, public)
    forged = await ledger.inclusion(5)
    forged["tree_head"]["size"] = 31
    with pytest.raises(ProofInvalid, match="bad signature"):
        check_proof(forged, public)


async def test_a_record_edited_in_the_database_is_named_by_the_next_export(ledger):
    import sqlalchemy as sa

    from fabrique.ledger.verify import ExportInvalid

    for i in range(20):
        await ledger.append(entry(i))
    forged = canonical({"request_id": "req_7", "tenant": "acme", "status": 403})
    async with ledger.db.engine.begin() as conn:
        await conn.execute(sa.text("UPDATE ledger_records SET record = :r WHERE idx = 7"), {"r": forged})
    with pytest.raises(ExportInvalid) as exc:
        verify_export(await exported(ledger), ledger.signer.public)
    assert (exc.value.index, exc.value.kind) == (7, "modified")


async def test_heads_signed_with_another_key_stay_out_of_exports(db_url, tmp_path):
    """A replica misconfigured with its own key signs heads; exports and proofs of this
    key's holder carry only this key's heads, so they still verify."""
    db = await Database(db_url).open()
    mine = Ledger(make_config(tmp_path / "a"), db)
    other = Ledger(make_config(tmp_path / "b"), db)
    await mine.start()
    other.load_keys()
    try:
        for i in range(10):
            await mine.append(entry(i))
            await other.sign()
        assert verify_export(await exported(mine), mine.signer.public).records == 10
        cons = await mine.consistency(5)
        assert cons["first_tree_head"] is None or cons["first_tree_head"]["key_id"] == mine.signer.key_id
    finally:
        await mine.close()
        await db.close()
