"""The admin REST API: the same key lifecycle as the CLI, behind the admin token."""

from __future__ import annotations

import stat

import pytest

ADMIN = {"Authorization": "Bearer test-admin-token"}
CHAT = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}


async def test_key_lifecycle_over_admin_api(client):
    resp = await client.post("/admin/keys", json={"tenant": "acme", "name": "ci"}, headers=ADMIN)
    assert resp.status == 201
    created = await resp.json()
    key = created["key"]
    assert key.startswith("fab-") and created["status"] == "active"
    user = {"Authorization": f"Bearer {key}"}
    assert (await client.post("/v1/chat/completions", json=CHAT, headers=user)).status == 200

    listed = (await (await client.get("/admin/keys?tenant=acme", headers=ADMIN)).json())["data"]
    assert [k["key_id"] for k in listed] == [created["key_id"]]
    assert all("key" not in k and "secret_hash" not in k for k in listed)

    resp = await client.delete(f"/admin/keys/{created['key_id']}", headers=ADMIN)
    assert (await resp.json())["status"] == "revoked"
    resp = await client.post("/v1/chat/completions", json=CHAT, headers=user)
    assert resp.status == 401  # this process applies its own revocation at once


async def test_expiry_over_admin_api(client):
    resp = await client.post("/admin/keys", json={"tenant": "acme", "expires_in_days": 1},
                             headers=ADMIN)
    assert (await resp.json())["expires_at"] is not None
    resp = await client.post("/admin/keys", json={"tenant": "acme",
                                                  "expires_at": "2001-01-01T00:00:00Z"},
                             headers=ADMIN)
    assert resp.status == 400


async def test_tenants(client):
    assert (await client.post("/admin/tenants", json={"name": "globex"}, headers=ADMIN)).status == 201
    data = (await (await client.get("/admin/tenants", headers=ADMIN)).json())["data"]
    assert [t["name"] for t in data] == ["globex"]


async def test_admin_needs_the_admin_token(client, api_key):
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Bearer {api_key}"}):
        resp = await client.get("/admin/keys", headers=headers)
        assert resp.status == 401
        assert (await resp.json())["error"]["code"] == "invalid_admin_token"


async def test_admin_rejects_bad_bodies(client):
    for body in ({}, {"tenant": ""}, {"tenant": "a", "surprise": 1}, {"tenant": 3}):
        resp = await client.post("/admin/keys", json=body, headers=ADMIN)
        assert resp.status == 400, body
        assert set((await resp.json())["error"]) == {"message", "type", "param", "code"}
    resp = await client.delete("/admin/keys/doesnotexist", headers=ADMIN)
    assert resp.status == 404


async def test_generated_admin_token_file_is_private(gateway_factory, tmp_path):
    from tests.conftest import make_config

    config = make_config(tmp_path, server={})
    client, _gw = await gateway_factory(config)
    path = config.resolved_data_dir() / "admin_token"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    token = path.read_text().strip()
    resp = await client.get("/admin/keys", headers={"Authorization": f"Bearer {token}"})
    assert resp.status == 200


async def test_admin_token_from_environment(gateway_factory, tmp_path, monkeypatch):
    from tests.conftest import make_config

    monkeypatch.setenv("FABRIQUE_ADMIN_TOKEN", "from-env-0123456789")
    client, _ = await gateway_factory(make_config(tmp_path, server={}))
    assert (await client.get("/admin/tenants",
                             headers={"Authorization": "Bearer from-env-0123456789"})).status == 200
    assert not (tmp_path / "data" / "admin_token").exists()


async def test_health_and_readiness(client):
    assert (await (await client.get("/healthz")).json()) == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status == 200
    assert (await ready.json())["database"] == "ok"


@pytest.mark.parametrize("token", ["   ", "short"])
async def test_an_empty_or_short_admin_token_is_refused_at_start(gateway_factory, tmp_path, token):
    from tests.conftest import make_config

    from fabrique.errors import ConfigError

    with pytest.raises(ConfigError, match="admin token"):
        await gateway_factory(make_config(tmp_path, server={"admin_token": token}))


async def test_an_empty_env_token_falls_back_to_the_file(gateway_factory, tmp_path, monkeypatch):
    from tests.conftest import make_config

    monkeypatch.setenv("FABRIQUE_ADMIN_TOKEN", "")
    client, _ = await gateway_factory(make_config(tmp_path, server={}))
    token = (tmp_path / "data" / "admin_token").read_text().strip()
    assert (await client.get("/admin/keys", headers={"Authorization": "Bearer"})).status == 401
    assert (await client.get("/admin/keys", headers={"Authorization": "Bearer "})).status == 401
    assert (await client.get("/admin/keys",
                             headers={"Authorization": f"Bearer {token}"})).status == 200


def test_replicas_starting_together_read_one_whole_token(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    from fabrique.admin_token import read_or_create

    for attempt in range(20):
        path = tmp_path / f"d{attempt}" / "admin_token"
        with ThreadPoolExecutor(8) as pool:
            tokens = set(pool.map(read_or_create, [path] * 8))
        assert len(tokens) == 1 and tokens.pop().startswith("fabadm-")
