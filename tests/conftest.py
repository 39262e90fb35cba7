"""Shared fixtures: a gateway on loopback in front of real (simulated or engine) upstreams."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from fabrique.api import build_app
from fabrique.config import Config, SimFaults, SimProfile
from fabrique.gateway import Gateway
from fabrique.simulator import SimEngine
from fabrique.simulator.server import build_app as build_sim_app

PG_URL = os.environ.get("FABRIQUE_TEST_PG", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
# Created by migration 0003: tests that drop the schema to start afresh drop these too.
LEDGER_TABLES = ("ledger_subject_keys", "ledger_payloads", "ledger_tree_heads", "ledger_nodes",
                 "ledger_records", "ledger_head")

# A fast profile: tests exercise behaviour, not timing.
FAST = {"decode_ms_per_token": 0.0, "base_ttft_ms": 0.0, "prefill_tokens_per_s": 1e9}


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FABRIQUE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("FABRIQUE_ADMIN_TOKEN", raising=False)
    monkeypatch.delenv("FABRIQUE_CONFIG", raising=False)


def make_config(tmp_path: Path, **overrides: Any) -> Config:
    """A config with one fast simulated chat model and one embedding model, plus overrides."""
    data: dict[str, Any] = {
        "data_dir": str(tmp_path / "data"),
        "server": {"admin_token": "test-admin-token"},
        "providers": [{"name": "sim", "type": "simulated", "profile": FAST,
                       "jurisdiction": "FR", "hosting": "self-hosted"}],
        "models": [
            {"name": "chat", "deployments": [{"provider": "sim", "model": "sim-chat"}]},
            {"name": "embed", "kind": "embedding", "deployments": [{"provider": "sim"}]},
        ],
    }
    data.update(overrides)
    return Config.model_validate(data)


GatewayFactory = Callable[..., Awaitable[tuple[TestClient, Gateway]]]


@pytest.fixture
async def gateway_factory(tmp_path: Path) -> AsyncIterator[GatewayFactory]:
    """Start a gateway on a loopback port; returns (client, gateway)."""
    clients: list[TestClient] = []

    async def start(config: Config | None = None, **overrides: Any) -> tuple[TestClient, Gateway]:
        cfg = config or make_config(tmp_path, **overrides)
        gateway = Gateway(cfg)
        client = TestClient(TestServer(build_app(gateway)))
        await client.start_server()
        clients.append(client)
        return client, gateway

    yield start
    for client in clients:
        await client.close()


@pytest.fixture
async def gateway(gateway_factory: GatewayFactory) -> tuple[TestClient, Gateway]:
    return await gateway_factory()


@pytest.fixture
async def client(gateway: tuple[TestClient, Gateway]) -> TestClient:
    return gateway[0]


@pytest.fixture
async def api_key(gateway: tuple[TestClient, Gateway]) -> str:
    _, key = await gateway[1].keys.create_key("acme")
    return key


@pytest.fixture
def auth(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"}


SimFactory = Callable[..., Awaitable[str]]


@pytest.fixture
async def sim_server() -> AsyncIterator[SimFactory]:
    """Start ``fabrique simulate``'s app on loopback; returns its base URL (…/v1)."""
    servers: list[TestServer] = []

    async def start(models: list[str] | None = None, api_key: str | None = None,
                    **faults: Any) -> str:
        engine = SimEngine(SimProfile(**FAST), SimFaults(**faults), models)
        server = TestServer(build_sim_app(engine, api_key))
        await server.start_server()
        servers.append(server)
        return str(server.make_url("/v1"))

    yield start
    for server in servers:
        await server.close()


async def drop_all(url: str) -> None:
    """Every table of Fabrique's schema, and its Alembic revision: the next open migrates a
    fresh database (PostgreSQL tests share one)."""
    import sqlalchemy as sa

    from fabrique.store import Database

    engine = Database(url).engine
    try:
        async with engine.begin() as conn:
            for table in ("usage", "api_keys", "tenants", "alembic_version", *LEDGER_TABLES):
                await conn.execute(sa.text(f"DROP TABLE IF EXISTS {table} CASCADE"))
    finally:
        await engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    """A migrated database: SQLite in a temporary folder, or the machine's PostgreSQL, empty."""
    from fabrique.store import Database

    url = f"sqlite+aiosqlite:///{tmp_path / 'fabrique.db'}" if request.param == "sqlite" else PG_URL
    if request.param == "postgresql":
        await drop_all(url)
    database = await Database(url).open()
    yield database
    await database.close()
    if request.param == "postgresql":
        await drop_all(url)

