"""The record finisher through a real gateway: one record per request, whatever its
outcome; fail closed or open; payload policies; erasure that keeps the proof."""

from __future__ import annotations

import hashlib
import time

import orjson
import pytest

from fabrique.errors import NotFound
from fabrique.ledger.payload_crypto import PayloadUnreadable
from fabrique.ledger.verify import verify_export

CHAT = {"model": "chat", "messages": [{"role": "user", "content": "Email jean.dupont@example.fr"}],
        "max_tokens": 5}


async def _records(gw) -> list[dict]:
    lines = [line async for line in gw.ledger.export()]
    verify_export(lines, gw.ledger.signer.public)
    return [orjson.loads(line)["record"] for line in lines if b'"type":"record"' in line]


async def _client(gateway_factory, **ledger):
    client, gw = await gateway_factory(ledger=ledger) if ledger else await gateway_factory()
    _, key = await gw.keys.create_key("acme")
    return client, gw, {"Authorization": f"Bearer {key}", "x-fabrique-agent-id": "agent-7",
                        "x-fabrique-session-id": "s-1"}


async def test_every_request_gets_one_record_and_the_export_verifies(gateway_factory):
    client, gw, auth = await _client(gateway_factory)
    plain = await client.post("/v1/chat/completions", json=CHAT, headers=auth)
    assert plain.status == 200
    stream = await client.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=auth)
    assert (await stream.read()).endswith(b"data: [DONE]\n\n")
    missing = await client.post("/v1/chat/completions", json={**CHAT, "model": "nope"}, headers=auth)
    assert missing.status == 404
    served, streamed, refused = await _records(gw)
    assert served["request_id"] == plain.headers["x-fabrique-request-id"]
    assert (served["status"], served["outcome"], streamed["outcome"]) == (200, "ok", "done")
    assert (refused["status"], refused["outcome"], refused["model"]) == (404, "model_not_found", "nope")
    assert served["tenant"] == "acme" and served["key_id"] and served["agent_id"] == "agent-7"
    assert served["session_id"] == "s-1" and served["jurisdiction"] == "FR"
    assert served["deployment"] == plain.headers["x-fabrique-deployment"]
    assert served["entity_counts"] == {"EMAIL": 1} and served["data_class"] == "personal"
    assert any(d["stage"] == "decide" for d in served["decisions"])
    assert served["usage"]["total_tokens"] > 0 and streamed["usage"]["total_tokens"] > 0
    assert served["latency_us"]["total"] > 0 and served["payload"] is None
    # Never a value found in the prompt, nor the prompt.
    assert b"dupont" not in b"".join(orjson.dumps(r) for r in (served, streamed, refused))


async def test_a_ledger_that_cannot_write_fails_closed(gateway_factory, monkeypatch):
    client, gw, auth = await _client(gateway_factory)
    await client.post("/v1/chat/completions", json=CHAT, headers=auth)  # started

    async def broken(entries):
        raise OSError("disk full")

    monkeypatch.setattr(gw.ledger.commits, "_commit", broken)
    resp = await client.post("/v1/chat/completions", json=CHAT, headers=auth)
    assert resp.status == 503
    assert (await resp.json())["error"]["code"] == "ledger_unavailable"
    stream = await client.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=auth)
    body = await stream.read()
    assert b"ledger_unavailable" in body and b"[DONE]" not in body


async def test_a_fail_open_tenant_is_served_and_raises_the_alarm(gateway_factory, monkeypatch, caplog):
    client, gw, auth = await _client(gateway_factory, tenants={"acme": {"on_failure": "open"}})

    async def broken(entries):
        raise OSError("disk full")

    monkeypatch.setattr(gw.ledger.commits, "_commit", broken)
    resp = await client.post("/v1/chat/completions", json=CHAT, headers=auth)
    assert resp.status == 200
    assert gw.ledger.fail_open == 1 and "ALARM ledger" in caplog.text


async def test_hash_payloads_are_keyed_per_tenant(gateway_factory):
    client, gw, auth = await _client(gateway_factory, payloads="hash")
    await client.post("/v1/chat/completions", json=CHAT, headers=auth)
    [rec] = await _records(gw)
    body = orjson.dumps(CHAT, option=orjson.OPT_SORT_KEYS)
    assert rec["payload"]["mode"] == "hash" and len(rec["payload"]["request"]) == 64
    # An HMAC, not a plain hash anyone could brute-force.
    assert rec["payload"]["request"] != hashlib.sha256(body).hexdigest()
    import hmac
    expected = hmac.new(gw.ledger.tenant_secret("acme"), body, hashlib.sha256).hexdigest()
    assert rec["payload"]["request"] == expected


async def test_erasing_a_subject_makes_its_payloads_unreadable_and_keeps_the_proof(gateway_factory):
    client, gw, auth = await _client(gateway_factory, payloads="encrypted")
    for subject in ("patient-1", "patient-2"):
        resp = await client.post("/v1/chat/completions", json=CHAT,
                                 headers={**auth, "x-fabrique-subject-id": subject})
        assert resp.status == 200
    first, second = await _records(gw)
    assert first["payload"]["subject"] != second["payload"]["subject"]
    assert first["payload"]["mode"] == "encrypted"
    assert "patient" not in orjson.dumps(first).decode()  # the subject id is an HMAC
    payload = await gw.ledger.payload(0)
    assert payload["request"] == CHAT and payload["response"]["choices"]
    assert await gw.ledger.erase("patient-1") == ["acme"]
    with pytest.raises(PayloadUnreadable):
        await gw.ledger.payload(0)
    assert (await gw.ledger.payload(1))["request"] == CHAT  # another subject's stays
    await _records(gw)  # a fresh export still verifies
    # New requests of the erased subject get a new key.
    await client.post("/v1/chat/completions", json=CHAT,
                      headers={**auth, "x-fabrique-subject-id": "patient-1"})
    assert (await gw.ledger.payload(2))["request"] == CHAT
    # Payload retention (30 days) drops the ciphertexts; the records and the tree stay.
    done = await gw.ledger.purge(now=int(time.time() * 1000) + 31 * 86_400_000)
    assert done == {"payloads": 3, "records": 0}
    with pytest.raises(NotFound):
        await gw.ledger.payload(1)
    assert len(await _records(gw)) == 3


async def test_the_ledger_can_be_turned_off(gateway_factory):
    client, gw, auth = await _client(gateway_factory, enabled=False)
    assert (await client.post("/v1/chat/completions", json=CHAT, headers=auth)).status == 200
    assert (await gw.ledger.store.head()).size == 0


async def test_a_streams_answer_is_kept_in_its_encrypted_payload(gateway_factory):
    client, gw, auth = await _client(gateway_factory, payloads="encrypted")
    resp = await client.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=auth)
    body = await resp.read()
    assert body.endswith(b"data: [DONE]\n\n")
    payload = await gw.ledger.payload(0)
    events = [orjson.loads(e) for e in payload["response"]]
    text = "".join(c["delta"].get("content") or "" for e in events for c in e.get("choices", []))
    sent = "".join(c["delta"].get("content") or "" for line in body.split(b"\n\n")
                   if line.startswith(b"data: {")
                   for c in orjson.loads(line[6:]).get("choices", []))
    assert text and text == sent


@pytest.mark.postgres
async def test_an_unreachable_postgresql_fails_closed_then_recovers(gateway_factory, tmp_path):
    from ..conftest import PG_URL, make_config
    from .conftest import drop_ledger
    from .test_processes import _forget

    await drop_ledger(PG_URL)
    tenant = f"ledger-down-{id(tmp_path)}"
    try:
        client, gw = await gateway_factory(make_config(tmp_path, database={"url": PG_URL},
                                                       ledger={"commit_timeout_s": 2}))
        _, key = await gw.keys.create_key(tenant)
        auth = {"Authorization": f"Bearer {key}"}
        assert (await client.post("/v1/chat/completions", json=CHAT, headers=auth)).status == 200
        writer = gw.ledger.store._pg
        dsn = writer._dsn
        await writer.close()
        writer._dsn = "postgresql://postgres@127.0.0.1:1/nowhere"  # connection refused
        resp = await client.post("/v1/chat/completions", json=CHAT, headers=auth)
        assert resp.status == 503 and (await resp.json())["error"]["code"] == "ledger_unavailable"
        writer._dsn = dsn  # the database is back: the next append reconnects
        assert (await client.post("/v1/chat/completions", json=CHAT, headers=auth)).status == 200
        assert len(await _records(gw)) == 2
    finally:
        await _forget(tenant)
        await drop_ledger(PG_URL)


async def test_metering_figures_go_into_the_record(gateway_factory):
    """Metering's finisher runs before ``record``: the record carries its figures (tokens,
    times, €, Wh …), floats as decimal strings (canonical JSON has no floats)."""
    client, gw = await gateway_factory(metering={"deployments": {"sim/sim-chat": {
        "price": {"input_eur_per_1m": 1.5, "output_eur_per_1m": 3}}}})
    _, key = await gw.keys.create_key("acme")
    auth = {"Authorization": f"Bearer {key}"}
    answer = await client.post("/v1/chat/completions", json=CHAT, headers=auth)
    assert answer.status == 200
    stream = await client.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=auth)
    assert (await stream.read()).endswith(b"[DONE]\n\n")
    plain, streamed = await _records(gw)
    usage = (await answer.json())["usage"]
    expected = (usage["prompt_tokens"] * 1.5 + usage["completion_tokens"] * 3) / 1e6
    assert plain["meter"]["input_tokens"] == usage["prompt_tokens"]
    assert plain["meter"]["output_tokens"] == usage["completion_tokens"]
    assert float(plain["meter"]["cost_eur"]) == pytest.approx(expected)
    assert isinstance(plain["meter"]["cost_eur"], str)
    assert streamed["meter"]["ttft_s"] is not None and plain["meter"]["ttft_s"] is None
