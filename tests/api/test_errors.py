"""Every error status in OpenAI's shape, and the headers every answer carries."""

from __future__ import annotations

import pytest

from fabrique import errors

SHAPE = {"message", "type", "param", "code"}
CHAT = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}


async def assert_error(resp, status: int, code: str | None = None) -> dict:
    assert resp.status == status, await resp.text()
    assert resp.content_type == "application/json"
    body = await resp.json()
    assert set(body) == {"error"} and set(body["error"]) == SHAPE
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    if code is not None:
        assert body["error"]["code"] == code
    assert resp.headers["x-fabrique-request-id"].startswith("req_")
    return body["error"]


async def test_malformed_json_is_400(client, auth):
    resp = await client.post("/v1/chat/completions", data=b"{not json", headers=auth)
    await assert_error(resp, 400, "invalid_json")


async def test_non_object_json_is_400(client, auth):
    resp = await client.post("/v1/chat/completions", data=b"[1, 2]", headers=auth)
    await assert_error(resp, 400, "invalid_json")


@pytest.mark.parametrize(("path", "body", "param"), [
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}]}, "model"),
    ("/v1/chat/completions", {"model": "chat"}, "messages"),
    ("/v1/completions", {"model": "chat"}, "prompt"),
    ("/v1/embeddings", {"model": "embed"}, "input"),
])
async def test_missing_field_is_400(client, auth, path, body, param):
    error = await assert_error(await client.post(path, json=body, headers=auth), 400,
                               "missing_required_parameter")
    assert error["param"] == param


@pytest.mark.parametrize(("field", "value"), [
    ("messages", "hello"), ("messages", []), ("messages", [1]), ("stream", "yes"),
    ("max_tokens", -1), ("max_tokens", 1.5), ("n", 0), ("model", ["chat"]),
])
async def test_wrong_type_is_400(client, auth, field, value):
    error = await assert_error(
        await client.post("/v1/chat/completions", json={**CHAT, field: value}, headers=auth), 400)
    assert error["type"] == "invalid_request_error"


async def test_missing_key_is_401(client):
    await assert_error(await client.post("/v1/chat/completions", json=CHAT), 401, "invalid_api_key")


async def test_wrong_secret_is_401(client, api_key):
    forged = api_key[:-4] + ("aaaa" if not api_key.endswith("aaaa") else "bbbb")
    resp = await client.post("/v1/chat/completions", json=CHAT,
                             headers={"Authorization": f"Bearer {forged}"})
    await assert_error(resp, 401, "invalid_api_key")


async def test_revoked_key_is_401(gateway, api_key, auth):
    client, gw = gateway
    assert (await client.post("/v1/chat/completions", json=CHAT, headers=auth)).status == 200
    await gw.keys.revoke(api_key)
    resp = await client.post("/v1/chat/completions", json=CHAT, headers=auth)
    await assert_error(resp, 401, "revoked_api_key")


async def test_unknown_model_is_404(client, auth):
    resp = await client.post("/v1/chat/completions", json={**CHAT, "model": "nope"}, headers=auth)
    await assert_error(resp, 404, "model_not_found")


async def test_unknown_path_is_404(client, auth):
    await assert_error(await client.get("/v1/nothing", headers=auth), 404, "not_found")


async def test_wrong_method_is_405(client, auth):
    await assert_error(await client.get("/v1/chat/completions", headers=auth), 405,
                       "method_not_allowed")
    resp = await client.put("/admin/keys", headers={"Authorization": "Bearer test-admin-token"})
    assert resp.status == 405
    assert "use GET or POST" in (await resp.json())["error"]["message"]


async def test_unknown_admin_path_is_404(client):
    for method in ("GET", "POST"):
        resp = await client.request(method, "/admin/nope",
                                    headers={"Authorization": "Bearer test-admin-token"})
        assert resp.status == 404


async def test_body_over_limit_is_413(gateway_factory, tmp_path):
    client, gw = await gateway_factory(server={"admin_token": "test-admin-token", "max_body_bytes": 2048})
    _, key = await gw.keys.create_key("acme")
    big = {**CHAT, "messages": [{"role": "user", "content": "x" * 4096}]}
    resp = await client.post("/v1/chat/completions", json=big,
                             headers={"Authorization": f"Bearer {key}"})
    await assert_error(resp, 413, "request_too_large")


async def test_upstream_overload_is_429_with_retry_after(gateway_factory):
    client, gw = await gateway_factory(
        routing={"retries": 1, "backoff_base_s": 0.001},
        providers=[{"name": "sim", "type": "simulated", "faults": {"rate_limit_rate": 1.0}}],
        models=[{"name": "chat", "deployments": [{"provider": "sim"}]}])
    _, key = await gw.keys.create_key("acme")
    resp = await client.post("/v1/chat/completions", json=CHAT,
                             headers={"Authorization": f"Bearer {key}"})
    await assert_error(resp, 429, "rate_limit_exceeded")
    assert int(resp.headers["Retry-After"]) >= 1


@pytest.mark.parametrize(("status", "code"), [(502, "upstream_error"), (503, "upstream_unavailable"),
                                              (504, "upstream_timeout")])
def test_upstream_statuses_have_codes(status, code):
    cls = {502: errors.UpstreamError, 503: errors.UpstreamUnavailable,
           504: errors.UpstreamTimeout}[status]
    assert (cls.status, cls.code) == (status, code)


async def test_every_error_class_renders_the_shape():
    from fabrique.api.errors import error_response
    for cls in _all_subclasses(errors.FabriqueError):
        resp = error_response(cls("boom", param="p"))
        assert resp.status == cls.status
        import orjson
        assert set(orjson.loads(resp.body)["error"]) == SHAPE


def _all_subclasses(cls):
    out = [cls]
    for sub in cls.__subclasses__():
        out += _all_subclasses(sub)
    return out
