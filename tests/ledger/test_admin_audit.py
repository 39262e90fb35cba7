"""/admin/audit: the admin sees every tenant; a tenant's key sees only its own records."""

from __future__ import annotations

import orjson
import pytest

from fabrique.ledger import merkle
from fabrique.ledger.signing import parse_public_key
from fabrique.ledger.tenant_export import verify_tenant_export
from fabrique.ledger.verify import ExportInvalid, verify_export

CHAT = {"model": "chat", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 3}
ADMIN = {"Authorization": "Bearer test-admin-token"}


async def _setup(gateway_factory, **ledger):
    client, gw = await gateway_factory(ledger=ledger) if ledger else await gateway_factory()
    keys = {}
    for tenant in ("acme", "globex"):
        _, key = await gw.keys.create_key(tenant)
        keys[tenant] = {"Authorization": f"Bearer {key}"}
        for _ in range(2):
            assert (await client.post("/v1/chat/completions", json=CHAT,
                                      headers=keys[tenant])).status == 200
    return client, gw, keys


async def test_export_and_proofs_verify_with_the_published_key(gateway_factory):
    client, _gw, keys = await _setup(gateway_factory)
    published = await (await client.get("/admin/audit/public-key", headers=ADMIN)).text()
    key = parse_public_key(published)  # the answer as saved: {"public_key": …, "key_id": …}
    raw = parse_public_key(orjson.loads(published)["public_key"]).public_bytes_raw()
    assert key.public_bytes_raw() == raw
    resp = await client.get("/admin/audit/export", headers=ADMIN)
    assert resp.status == 200
    assert verify_export((await resp.read()).splitlines(), key).records == 4
    proof = await (await client.get("/admin/audit/records/2/proof", headers=ADMIN)).json()
    head = proof["tree_head"]
    assert merkle.verify_inclusion(2, head["size"], bytes.fromhex(proof["leaf_hash"]),
                                   [bytes.fromhex(h) for h in proof["proof"]],
                                   bytes.fromhex(head["root_hash"]))
    cons = await (await client.get("/admin/audit/consistency?first=1", headers=keys["acme"])).json()
    assert merkle.verify_consistency(1, head["size"], bytes.fromhex(cons["first_root"]),
                                     bytes.fromhex(cons["second_root"]),
                                     [bytes.fromhex(h) for h in cons["proof"]])


async def test_a_tenant_sees_only_its_own_records(gateway_factory):
    client, _gw, keys = await _setup(gateway_factory)
    own = await (await client.get("/admin/audit/records", headers=keys["acme"])).json()
    assert [r["record"]["tenant"] for r in own["data"]] == ["acme", "acme"]
    everyone = await (await client.get("/admin/audit/records", headers=ADMIN)).json()
    assert len(everyone["data"]) == 4
    other = next(r["index"] for r in everyone["data"] if r["record"]["tenant"] == "globex")
    resp = await client.get(f"/admin/audit/records/{other}/proof", headers=keys["acme"])
    assert resp.status == 404 and (await resp.json())["error"]["code"] == "not_found"
    asked = await client.get("/admin/audit/records?tenant=globex", headers=keys["acme"])
    assert {r["record"]["tenant"] for r in (await asked.json())["data"]} == {"acme"}
    resp = await client.get("/admin/audit/export", headers=keys["acme"])
    lines = (await resp.read()).splitlines()
    own_export = verify_tenant_export(lines, _gw.ledger.signer.public)
    assert (own_export.tenant, own_export.records) == ("acme", 2)
    assert b"globex" not in b"".join(lines)
    resp = await client.get("/admin/audit/records", headers={"Authorization": "Bearer nope"})
    assert resp.status == 401 and set((await resp.json())["error"]) == {"message", "type", "param", "code"}


async def test_a_proof_by_request_id(gateway_factory):
    client, _gw, keys = await _setup(gateway_factory)
    resp = await client.post("/v1/chat/completions", json=CHAT, headers=keys["globex"])
    request_id = resp.headers["x-fabrique-request-id"]
    proof = await (await client.get(f"/admin/audit/proof?request_id={request_id}",
                                    headers=keys["globex"])).json()
    assert proof["record"]["request_id"] == request_id and proof["index"] == 4
    bad = await client.get("/admin/audit/records/x/proof", headers=ADMIN)
    assert bad.status == 400 and (await bad.json())["error"]["param"] == "index"


async def test_erasure_over_the_api(gateway_factory):
    client, gw, keys = await _setup(gateway_factory, payloads="encrypted")
    assert (await client.get("/admin/audit/records/0/payload", headers=keys["acme"])).status == 200
    # The default subject is the tenant itself.
    resp = await client.delete("/admin/audit/subjects/acme?tenant=globex", headers=keys["acme"])
    assert resp.status == 403
    resp = await client.delete("/admin/audit/subjects/acme", headers=keys["acme"])
    assert (await resp.json()) == {"erased": True, "tenants": ["acme"]}
    gone = await client.get("/admin/audit/records/0/payload", headers=keys["acme"])
    assert gone.status == 404 and (await gone.json())["error"]["code"] == "payload_erased"
    export = await (await client.get("/admin/audit/export", headers=ADMIN)).read()
    assert verify_export(export.splitlines(), gw.ledger.signer.public).records == 4
    assert orjson.loads(export.splitlines()[1])["record"]["payload"]["mode"] == "encrypted"


async def test_a_tenant_export_names_a_changed_or_foreign_record(gateway_factory):
    client, gw, keys = await _setup(gateway_factory)
    lines = (await (await client.get("/admin/audit/export?tenant=globex",
                                     headers=ADMIN)).read()).splitlines()
    public = gw.ledger.signer.public
    assert verify_tenant_export(lines, public).records == 2
    line = orjson.loads(lines[2])
    line["record"]["status"] = 500
    with pytest.raises(ExportInvalid) as exc:
        verify_tenant_export([*lines[:2], orjson.dumps(line)], public)
    assert (exc.value.index, exc.value.kind) == (line["index"], "modified")
    acme = (await (await client.get("/admin/audit/export", headers=keys["acme"])).read()).splitlines()
    with pytest.raises(ExportInvalid, match="not a record of tenant 'globex'"):
        verify_tenant_export([lines[0], acme[1]], public)  # a proven record, of someone else
