#!/usr/bin/env python3
"""How fast is the audit ledger? Durable appends, proofs at scale, offline verification,
and what recording adds to a gateway request.

- **appends**: concurrent appenders (256 coroutines) on one ``Ledger`` for a few seconds,
  on SQLite (WAL, ``synchronous=FULL``: each commit is fsynced) and on PostgreSQL
  (``synchronous_commit=on``), with group commit; appends/s and records per commit.
- **proofs**: a tree of 1M (and, in a full run, 10M) leaves written straight into the
  ledger's SQLite tables, and of 1M into PostgreSQL's, then inclusion and consistency
  proofs of random records read through ``LedgerStore`` (the same path as the admin API):
  p50 and p99 per proof, and the number of stored hashes each reads.
- **verify**: an export of realistic records (about 700 bytes each) checked by
  ``verify_export``: seconds per million records.
- **gateway**: two in-process gateways on loopback (ledger on, ledger off) in front of the
  simulated engine, called alternately at concurrency 1: the p50 the ledger adds, and the
  p50 time spent in the record finisher (build the record + wait for its group commit);
  on SQLite and PostgreSQL, with ``ledger.sync`` full (fsync) and normal.

    .venv/bin/python bench/ledger.py            # full: 10M-leaf proofs, 1M-record export
    .venv/bin/python bench/ledger.py --quick    # < 60 s; the last stdout line is one JSON object

PostgreSQL: ``--pg URL`` (default ``$FABRIQUE_BENCH_PG``, else the local
``fabrique_ledger`` database); its ledger tables are dropped before and after. ``--no-pg``
leaves it out. Results also go to ``bench/results/ledger.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fabrique.config import Config
from fabrique.ledger import merkle
from fabrique.ledger.canonical import canonical
from fabrique.ledger.export import head_line, header_line, record_line
from fabrique.ledger.leaf import record_leaf_hash
from fabrique.ledger.service import Ledger
from fabrique.ledger.signing import Signer, public_key_text
from fabrique.ledger.store import Entry, LedgerStore
from fabrique.ledger.verify import verify_export
from fabrique.store import Database

DEFAULT_PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/fabrique_ledger"


def sample_record(i: int) -> bytes:
    """A record shaped like the gateway's (about 700 bytes)."""
    return canonical({
        "v": 1, "time": "2026-12-06T17:00:00.000Z", "request_id": f"req_{i:024x}",
        "tenant": f"tenant-{i % 17}", "key_id": "k3q9v0d2m1xa", "agent_id": None,
        "session_id": None, "endpoint": "chat/completions", "stream": i % 2 == 0,
        "model": "mistral-small", "deployment": "scaleway/mistral-small-3.2", "jurisdiction": "FR",
        "pseudonymized": False, "data_class": "personal", "entity_counts": {"EMAIL": 1, "FR_NIR": 1},
        "decisions": [{"stage": "classify", "outcome": "personal", "reason": "EMAIL×1; FR_NIR×1"},
                      {"stage": "decide", "outcome": "allowed", "reason": "personal: FR in EEA"},
                      {"stage": "route", "outcome": "scaleway/mistral-small-3.2",
                       "reason": "weighted; jurisdiction FR; in clear"}],
        "attempts": [{"deployment": "scaleway/mistral-small-3.2", "outcome": "ok", "us": 182_331}],
        "usage": {"prompt_tokens": 412, "completion_tokens": 96, "total_tokens": 508},
        "latency_us": {"total": 183_002, "upstream_wait": 182_400, "gateway": 602},
        "meter": {"cost_eur": "0.000213", "energy_wh": "0.41", "co2e_g": "0.021"},
        "status": 200, "outcome": "ok", "payload": None})


async def drop_ledger(url: str) -> None:
    """The ledger afresh: the schema back to 0002 (and migrated again at the next open)."""
    db = Database(url)
    try:
        await db.downgrade("0002")
    finally:
        await db.close()


# --- appends ------------------------------------------------------------------------------

async def bench_appends(url: str, seconds: float, workdir: Path, sync: str = "full") -> dict[str, Any]:
    db = await Database(url).open()
    config = Config.model_validate({"data_dir": str(workdir / "data"), "ledger": {"sync": sync}})
    ledger = Ledger(config, db)
    await ledger.start()
    setting = await _durability(db)
    records = [sample_record(i) for i in range(1000)]
    count = 0
    stop = time.monotonic() + seconds

    async def appender(n: int) -> None:
        nonlocal count
        i = n
        while time.monotonic() < stop:
            await ledger.append(Entry(records[i % 1000], 0, "bench", f"req_{i}"))
            count += 1
            i += 256

    await ledger.append(Entry(records[0], 0, "bench", "warm-up"))
    batches0, started = ledger.commits.batches, time.perf_counter()
    await asyncio.gather(*(appender(n) for n in range(256)))
    elapsed = time.perf_counter() - started
    batches = ledger.commits.batches - batches0
    await ledger.close()
    size = (await ledger.store.head()).size
    await db.close()
    return {"sync": sync, "appends_per_s": round(count / elapsed), "appends": count,
            "seconds": round(elapsed, 2),
            "records_per_commit": round(count / max(1, batches), 1), "commits_per_s":
            round(batches / elapsed, 1), "durability": setting, "log_size": size}


async def _durability(db: Database) -> str:
    async with db.engine.connect() as conn:
        if db.dialect == "sqlite":
            mode = (await conn.exec_driver_sql("PRAGMA journal_mode")).scalar()
            sync = (await conn.exec_driver_sql("PRAGMA synchronous")).scalar()
            names = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}
            return f"journal_mode={mode}, synchronous={names[sync]}"
        commit = (await conn.exec_driver_sql("SHOW synchronous_commit")).scalar()
        fsync = (await conn.exec_driver_sql("SHOW fsync")).scalar()
        return f"synchronous_commit={commit}, fsync={fsync}"


# --- proofs ------------------------------------------------------------------------------

async def bench_proofs(n: int, workdir: Path, samples: int) -> dict[str, Any]:
    path = workdir / f"proofs-{n}.db"
    db = await Database(f"sqlite+aiosqlite:///{path}").open()
    await db.close()
    started = time.perf_counter()
    root = _fill_tree(path, n)
    build_s = time.perf_counter() - started
    db = await Database(f"sqlite+aiosqlite:///{path}").open()
    store = LedgerStore(db)
    rng = random.Random(7)
    inclusion, consistency, reads = [], [], []

    async def counting(keys: Any) -> Any:
        reads.append(len(keys))
        return await store.read_nodes(keys)

    for _ in range(samples):
        index = rng.randrange(n)
        t = time.perf_counter()
        proof = await merkle.inclusion_proof(counting, index, n)
        inclusion.append(time.perf_counter() - t)
        leaf = (await store.read_nodes([(0, index)]))[0, index]
        assert merkle.verify_inclusion(index, n, leaf, proof, root)
        first = rng.randrange(1, n)
        t = time.perf_counter()
        cproof = await merkle.consistency_proof(store.read_nodes, first, n)
        consistency.append(time.perf_counter() - t)
    first_root = await merkle.root_at(store.read_nodes, first)
    assert merkle.verify_consistency(first, n, first_root, root, cproof)
    await db.close()
    size_mb = path.stat().st_size / 1e6
    path.unlink()
    return {"leaves": n, "build_s": round(build_s, 1), "db_mb": round(size_mb),
            "inclusion_ms_p50": _ms(inclusion, 50), "inclusion_ms_p99": _ms(inclusion, 99),
            "consistency_ms_p50": _ms(consistency, 50), "consistency_ms_p99": _ms(consistency, 99),
            "hashes_read_max": max(reads), "samples": samples}


async def bench_proofs_pg(url: str, n: int, samples: int) -> dict[str, Any]:
    """The same proofs on PostgreSQL: the tree written with COPY, read through LedgerStore."""
    import asyncpg

    await drop_ledger(url)
    db = await Database(url).open()
    store = LedgerStore(db)
    try:
        conn = await asyncpg.connect(sa.engine.make_url(url).set(drivername="postgresql")
                                     .render_as_string(hide_password=False))
        frontier, rows = merkle.Frontier(), []
        started = time.perf_counter()
        for i in range(n):
            rows += frontier.append(merkle.leaf_hash(b"%d" % i))
            if len(rows) >= 200_000:
                await conn.copy_records_to_table("ledger_nodes", records=rows)
                rows.clear()
        await conn.copy_records_to_table("ledger_nodes", records=rows)
        await conn.execute("UPDATE ledger_head SET size = $1", n)
        await conn.execute("ANALYZE ledger_nodes")
        await conn.close()
        build_s = time.perf_counter() - started
        root = frontier.root()
        rng = random.Random(7)
        inclusion, consistency = [], []
        for _ in range(samples):
            index = rng.randrange(n)
            t = time.perf_counter()
            proof = await merkle.inclusion_proof(store.read_nodes, index, n)
            inclusion.append(time.perf_counter() - t)
            leaf = (await store.read_nodes([(0, index)]))[0, index]
            assert merkle.verify_inclusion(index, n, leaf, proof, root)
            t = time.perf_counter()
            await merkle.consistency_proof(store.read_nodes, rng.randrange(1, n), n)
            consistency.append(time.perf_counter() - t)
    finally:
        await store.close()
        await db.close()
        await drop_ledger(url)
    return {"database": "postgresql", "leaves": n, "build_s": round(build_s, 1),
            "inclusion_ms_p50": _ms(inclusion, 50), "inclusion_ms_p99": _ms(inclusion, 99),
            "consistency_ms_p50": _ms(consistency, 50), "consistency_ms_p99": _ms(consistency, 99),
            "samples": samples}


def _fill_tree(path: Path, n: int) -> bytes:
    """Leaves 0..n-1 and every complete subtree, written with sqlite3 in one transaction."""
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=OFF")
    conn.execute("PRAGMA synchronous=OFF")
    frontier = merkle.Frontier()
    chunk: list[tuple[int, int, bytes]] = []
    leaf_data = b"%d"
    for i in range(n):
        chunk += frontier.append(merkle.leaf_hash(leaf_data % i))
        if len(chunk) >= 200_000:
            conn.executemany("INSERT INTO ledger_nodes (level, idx, hash) VALUES (?, ?, ?)", chunk)
            chunk.clear()
    conn.executemany("INSERT INTO ledger_nodes (level, idx, hash) VALUES (?, ?, ?)", chunk)
    root = frontier.root()
    conn.execute("UPDATE ledger_head SET size = ?", (n,))
    conn.commit()
    conn.close()
    return root


def _ms(values: list[float], pct: int) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, len(ordered) * pct // 100)] * 1000, 3)


# --- verification --------------------------------------------------------------------------

def bench_verify(n: int) -> dict[str, Any]:
    key = Ed25519PrivateKey.generate()
    signer = Signer(key)
    template = sample_record(0)
    old = b"req_" + b"0" * 24
    frontier = merkle.Frontier()
    lines = [header_line(0, [], public_key_text(key.public_key()), signer.key_id)]
    started = time.perf_counter()
    for i in range(n):
        record = template.replace(old, b"req_%024x" % i)
        leaf = record_leaf_hash(i, record)
        frontier.append(leaf)
        lines.append(record_line(i, record, leaf))
        if (i + 1) % 100_000 == 0:
            lines.append(head_line(signer.sign(i + 1, frontier.root(), i)))
    lines.append(head_line(signer.sign(n, frontier.root(), n)))
    make_s = time.perf_counter() - started
    size_mb = sum(map(len, lines)) / 1e6
    started = time.perf_counter()
    result = verify_export(lines, key.public_key())
    seconds = time.perf_counter() - started
    assert result.records == n
    return {"records": n, "export_mb": round(size_mb), "verify_s": round(seconds, 2),
            "verify_s_per_million": round(seconds * 1e6 / n, 2), "make_s": round(make_s, 1)}


# --- the gateway ---------------------------------------------------------------------------

async def bench_gateway(requests: int, workdir: Path, sync: str, pg: str | None = None) -> dict[str, Any]:
    import aiohttp
    from aiohttp import web

    from fabrique.api import build_app
    from fabrique.gateway import Gateway
    from fabrique.pipeline import finishers, record

    spent: list[float] = []

    async def timed(ctx: Any) -> None:
        t = time.perf_counter()
        await record.record(ctx)
        if ctx.gateway.config.ledger.enabled:
            spent.append(time.perf_counter() - t)

    finishers.FINISHERS = (timed,)
    runners, urls, keys = [], {}, {}
    for name, enabled in (("on", True), ("off", False)):
        cfg = Config.model_validate({
            "data_dir": str(workdir / f"gw-{name}-{sync}"), "server": {"access_log": False},
            "ledger": {"enabled": enabled, "sync": sync}, "database": {"url": pg},
            "providers": [{"name": "sim", "type": "simulated", "jurisdiction": "FR",
                           "hosting": "self-hosted", "profile": {"decode_ms_per_token": 0,
                                                                 "base_ttft_ms": 0}}],
            "models": [{"name": "chat", "deployments": [{"provider": "sim"}]}]})
        gateway = Gateway(cfg)
        runner = web.AppRunner(build_app(gateway), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        runners.append(runner)
        urls[name] = f"http://127.0.0.1:{port}/v1/chat/completions"
        keys[name] = (await gateway.keys.create_key("bench"))[1]
    body = {"model": "chat", "max_tokens": 8,
            "messages": [{"role": "user", "content": "Résume ce texte en une phrase."}]}
    lat: dict[str, list[float]] = {"on": [], "off": []}
    try:
        async with aiohttp.ClientSession() as session:
            for i in range(requests + 100):
                for name in (("on", "off") if i % 2 else ("off", "on")):
                    t = time.perf_counter()
                    async with session.post(urls[name], json=body, headers={
                            "Authorization": f"Bearer {keys[name]}"}) as resp:
                        await resp.read()
                        assert resp.status == 200, resp.status
                    if i >= 100:
                        lat[name].append(time.perf_counter() - t)
    finally:
        for runner in runners:
            await runner.cleanup()
    on, off = statistics.median(lat["on"]), statistics.median(lat["off"])
    return {"database": "postgresql" if pg else "sqlite", "sync": sync,
            "requests_each": requests, "p50_ms_ledger_on": round(on * 1000, 3),
            "p50_ms_ledger_off": round(off * 1000, 3), "added_p50_ms": round((on - off) * 1000, 3),
            "record_finisher_p50_ms": round(statistics.median(spent[100:]) * 1000, 3)}


# --- main -----------------------------------------------------------------------------------

async def main(args: argparse.Namespace) -> dict[str, Any]:
    quick = args.quick
    out: dict[str, Any] = {"mode": "quick" if quick else "full", "machine": _machine(),
                           "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    with tempfile.TemporaryDirectory(prefix="fabrique-ledger-bench-", dir=args.workdir) as tmp:
        work = Path(tmp)
        seconds = 3.0 if quick else 10.0
        out["appends_sqlite"] = await bench_appends(f"sqlite+aiosqlite:///{work / 'a.db'}", seconds, work)
        _say("appends_sqlite", out)
        if args.pg:
            await drop_ledger(args.pg)
            try:
                out["appends_postgresql"] = await bench_appends(args.pg, seconds, work)
            finally:
                await drop_ledger(args.pg)
            _say("appends_postgresql", out)
        out["proofs"] = [await bench_proofs(n, work, 200 if quick else 1000)
                         for n in ((1_000_000,) if quick else (1_000_000, 10_000_000))]
        if args.pg:
            out["proofs"].append(await bench_proofs_pg(args.pg, 1_000_000, 200 if quick else 1000))
        _say("proofs", out)
        out["verify"] = bench_verify(300_000 if quick else 1_000_000)
        _say("verify", out)
        n = 400 if quick else 3000
        out["gateway"] = [await bench_gateway(n, work, sync) for sync in ("full", "normal")]
        if args.pg:
            for sync in ("full", "normal"):
                await drop_ledger(args.pg)
                try:
                    out["gateway"].append(await bench_gateway(n, work, sync, args.pg))
                finally:
                    await drop_ledger(args.pg)
        _say("gateway", out)
    return out


def _say(key: str, out: dict[str, Any]) -> None:
    print(f"{key}: {json.dumps(out[key])}", file=sys.stderr, flush=True)


def _machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return {"cpus": os.cpu_count(), "cpu": model, "python": platform.python_version(),
            "loadavg_1m_at_start": load}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="under 60 s: 1M-leaf proofs, 300k export")
    parser.add_argument("--pg", default=os.environ.get("FABRIQUE_BENCH_PG", DEFAULT_PG),
                        help="PostgreSQL URL (its ledger tables are dropped before and after)")
    parser.add_argument("--no-pg", dest="pg", action="store_const", const=None)
    parser.add_argument("--workdir", default=None, help="where the temporary databases go")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "ledger.json"))
    args = parser.parse_args()
    started = time.perf_counter()
    result = asyncio.run(main(args))
    result["elapsed_s"] = round(time.perf_counter() - started, 1)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))
