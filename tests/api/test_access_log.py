"""One access-log line per request, with who/what/where, and never a prompt or a secret."""

from __future__ import annotations

import logging


async def test_access_log_lines(client, api_key, auth, caplog):
    caplog.set_level(logging.INFO, logger="fabrique.access")
    secret_prompt = "my IBAN is FR7630006000011234567890189"
    body = {"model": "chat", "messages": [{"role": "user", "content": secret_prompt}]}
    await client.post("/v1/chat/completions", json=body, headers=auth)
    await (await client.post("/v1/chat/completions", json={**body, "stream": True},
                             headers=auth)).read()
    await client.post("/v1/chat/completions", json={**body, "model": "nope"}, headers=auth)
    await client.post("/v1/chat/completions", json=body)
    lines = [r.getMessage() for r in caplog.records if r.name == "fabrique.access"]
    assert len(lines) == 4
    assert "tenant=acme" in lines[0] and "model=chat" in lines[0] and "status=200" in lines[0]
    assert "deployment=sim/sim-chat" in lines[0] and "outcome=ok" in lines[0]
    assert "stream=yes" in lines[1] and "outcome=done" in lines[1]
    assert "status=404" in lines[2] and "outcome=model_not_found" in lines[2]
    assert "status=401" in lines[3]
    for line in lines:
        assert secret_prompt not in line and api_key not in line
    assert api_key[4:16] in lines[0]  # the key id, which is not secret


async def test_access_log_can_be_turned_off(gateway_factory, caplog):
    caplog.set_level(logging.INFO, logger="fabrique.access")
    client, gw = await gateway_factory(server={"admin_token": "test-admin-token", "access_log": False})
    _, key = await gw.keys.create_key("acme")
    await client.post("/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                      json={"model": "chat", "messages": [{"role": "user", "content": "x"}]})
    assert not [r for r in caplog.records if r.name == "fabrique.access"]
