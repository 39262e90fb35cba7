"""Real gateway processes: killed with SIGKILL under load, and two sharing PostgreSQL.

What a client saw completed must be in the ledger after a crash (the record is committed
before the body, or the stream's [DONE], is sent), and the tree must verify; two gateways
appending to one PostgreSQL must write one log, with no gap and no fork.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from pathlib import Path

import aiohttp
import orjson
import pytest
import sqlalchemy as sa

from fabrique.ledger.signing import parse_public_key
from fabrique.ledger.verify import verify_export
from fabrique.store import Database

from ..conftest import PG_URL
from ..test_cli import FABRIQUE, free_port, run, wait_for_port
from .conftest import drop_ledger

CHAT = {"messages": [{"role": "user", "content": "Bonjour"}], "max_tokens": 4}


def _serve(env: dict[str, str], port: int, config: Path | None = None) -> subprocess.Popen[bytes]:
    args = [*FABRIQUE, "serve", "--port", str(port)] + (["--config", str(config)] if config else [])
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    wait_for_port(port, proc)  # type: ignore[arg-type]
    return proc


async def _load(ports: list[int], key: str, model: str, seconds: float | None,
                count: int | None = None) -> list[str]:
    """Requests from 16 clients (plain, streamed, refused) until the time or count is up;
    returns the request ids of the answers that arrived whole."""
    done: list[str] = []
    stop = asyncio.Event()
    headers = {"Authorization": f"Bearer {key}"}

    async def client(n: int, session: aiohttp.ClientSession) -> None:
        i = 0
        while not stop.is_set() and (count is None or len(done) < count):
            i += 1
            port = ports[(n + i) % len(ports)]
            kind = (n + i) % 3
            body = {**CHAT, "model": model if kind != 2 else "no-such-model", "stream": kind == 1}
            try:
                async with session.post(f"http://127.0.0.1:{port}/v1/chat/completions",
                                        json=body, headers=headers) as resp:
                    data = await resp.read()
                    whole = (data.endswith(b"data: [DONE]\n\n") if kind == 1 else
                             resp.status == (200 if kind == 0 else 404))
                    if whole:
                        done.append(resp.headers["x-fabrique-request-id"])
            except (TimeoutError, aiohttp.ClientError):
                await asyncio.sleep(0.01)  # the server went away: what it answered is counted

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        tasks = [asyncio.create_task(client(n, session)) for n in range(16)]
        if seconds is not None:
            await asyncio.sleep(seconds)
            stop.set()
        await asyncio.gather(*tasks)
    return done


def _verified_ids(env: dict[str, str], tmp_path: Path, config: Path | None = None) -> list[str]:
    extra = ["--config", str(config)] if config else []
    key = parse_public_key(run("audit", "public-key", *extra, env=env).stdout.strip())
    export = run("audit", "export", *extra, env=env).stdout.encode().splitlines()
    verify_export(export, key)
    return [orjson.loads(line)["record"]["request_id"] for line in export
            if line.startswith(b'{"type":"record"')]


def test_a_gateway_killed_under_load_lost_no_completed_request(tmp_path):
    env = {**os.environ, "FABRIQUE_HOME": str(tmp_path / "home")}
    key = run("keys", "create", "--tenant", "acme", env=env).stdout.strip().splitlines()[-1]
    port = free_port()
    proc = _serve(env, port)
    completed: list[str] = []

    try:
        asyncio.run(asyncio.wait_for(_collect(port, key, completed, kill=(proc.pid, 300)), 60))
    finally:
        proc.kill()
        proc.wait(10)
    assert len(completed) > 20, "the load did not get going before the kill"
    # Restart on the same database: it starts, serves, and appends after the crash.
    proc = _serve(env, port)
    try:
        after = asyncio.run(_load([port], key, "fabrique-sim-chat", seconds=None, count=10))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    recorded = _verified_ids(env, tmp_path)  # verify_export raises if the tree does not hold
    missing = set(completed + after) - set(recorded)
    assert not missing, f"{len(missing)} completed requests have no record"
    assert len(recorded) == len(set(recorded))


async def _collect(port: int, key: str, out: list[str], kill: tuple[int, int]) -> None:
    """Load from 16 clients, keeping the ids of whole answers in ``out``; SIGKILL the server
    (``kill``: pid, after how many answers) the instant an answer has arrived whole, while
    the other 15 are in flight: a record committed after its answer would be lost here."""
    headers = {"Authorization": f"Bearer {key}"}
    dead = asyncio.Event()

    async def client(n: int, session: aiohttp.ClientSession) -> None:
        i = 0
        while not dead.is_set():
            i += 1
            kind = (n + i) % 3
            body = {**CHAT, "model": "fabrique-sim-chat" if kind != 2 else "nope",
                    "stream": kind == 1}
            try:
                async with session.post(f"http://127.0.0.1:{port}/v1/chat/completions",
                                        json=body, headers=headers) as resp:
                    data = await resp.read()
                    if (data.endswith(b"data: [DONE]\n\n") if kind == 1 else
                            resp.status == (200 if kind == 0 else 404)):
                        out.append(resp.headers["x-fabrique-request-id"])
                        if len(out) == kill[1]:
                            os.kill(kill[0], signal.SIGKILL)
            except (TimeoutError, aiohttp.ClientError):
                dead.set()

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        await asyncio.gather(*(client(n, session) for n in range(16)))


@pytest.mark.postgres
def test_two_gateways_on_one_postgresql_write_one_log(tmp_path):
    asyncio.run(drop_ledger(PG_URL))
    config = tmp_path / "fabrique.yaml"
    config.write_text(f"""
data_dir: {tmp_path / 'shared'}
database: {{url: "{PG_URL}"}}
providers:
  - {{name: sim, type: simulated, jurisdiction: FR, hosting: self-hosted,
     profile: {{decode_ms_per_token: 0, base_ttft_ms: 0}}}}
models:
  - {{name: chat, deployments: [{{provider: sim}}]}}
""")
    env = {**os.environ, "FABRIQUE_HOME": str(tmp_path / "home")}
    tenant = f"ledger-two-{os.getpid()}"
    key = run("keys", "create", "--tenant", tenant, "--config", str(config),
              env=env).stdout.strip().splitlines()[-1]
    ports = [free_port(), free_port()]
    procs = [_serve(env, p, config) for p in ports]
    try:
        ids = asyncio.run(_load(ports, key, "chat", seconds=None, count=400))
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(30)
    try:
        recorded = _verified_ids(env, tmp_path, config)  # one tree, indexes 0..n-1, signed
        assert set(ids) <= set(recorded) and len(recorded) == len(set(recorded))
    finally:
        asyncio.run(_forget(tenant))
        asyncio.run(drop_ledger(PG_URL))


async def _forget(tenant: str) -> None:
    """Remove this test's tenant and key from the shared test database."""
    db = await Database(PG_URL).open()
    try:
        async with db.engine.begin() as conn:
            await conn.execute(sa.text("DELETE FROM api_keys WHERE tenant_id IN "
                                       "(SELECT id FROM tenants WHERE name = :t)"), {"t": tenant})
            await conn.execute(sa.text("DELETE FROM tenants WHERE name = :t"), {"t": tenant})
    finally:
        await db.close()
