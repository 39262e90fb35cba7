"""Fuzz every endpoint: the gateway never answers 5xx, and every error is OpenAI's shape.

Each test starts one gateway and sends it many generated requests (hypothesis runs the
examples of an async test on the test's own event loop, so the gateway lives across them).
The invariant everywhere: no 5xx, no traceback, and any answer >= 400 is a JSON body of
exactly ``{"error": {"message": str, "type": str, "param": str|None, "code": str|None}}``.

A few requests are rejected by aiohttp's HTTP parser before any Fabrique code runs (a NUL
or raw non-UTF-8 byte in the request line, a header over 16 KiB, an invalid method or
Content-Length): aiohttp answers those 400 in text/plain, and ``test_http_parser_rejections``
checks only that they are 400, with no traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

ADMIN_TOKEN = "test-admin-token"
SMALL_LIMIT = 16 * 1024
SHAPE = {"message", "type", "param", "code"}

# One gateway per test, shared by its examples; timings vary on loaded machines.
_FUZZ = settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                       HealthCheck.too_slow,
                                                       HealthCheck.data_too_large])


def fuzz(examples: int) -> settings:
    return settings(_FUZZ, max_examples=examples)


# -- the invariant ------------------------------------------------------------------------


def check_answer(status: int, content_type: str, body: bytes, method: str = "POST") -> None:
    """Never 5xx, never a traceback; every error is exactly OpenAI's error object."""
    assert status < 500, f"{status}: {body[:600]!r}"
    assert b"Traceback" not in body and b'File "' not in body, body[:600]
    if status < 400 or method == "HEAD":
        return
    assert content_type.split(";")[0].strip() == "application/json", (status, content_type, body)
    data = json.loads(body)
    assert isinstance(data, dict) and set(data) == {"error"}, data
    error = data["error"]
    assert isinstance(error, dict) and set(error) == SHAPE, error
    assert isinstance(error["message"], str) and error["message"], error
    assert isinstance(error["type"], str) and error["type"], error
    assert error["param"] is None or isinstance(error["param"], str), error
    assert error["code"] is None or isinstance(error["code"], str), error


async def send(client: TestClient, method: str, path: str, body: bytes | None = None,
               headers: dict[str, str] | None = None, content_type: str | None = None) -> int:
    """One request through aiohttp's client; checks the answer and returns its status."""
    headers = dict(headers or {})
    skip = ()
    if content_type is None:
        skip = ("Content-Type",)
    else:
        headers["Content-Type"] = content_type
    resp = await client.request(method, path, data=body, headers=headers, skip_auto_headers=skip)
    try:
        data = await resp.read()
    finally:
        resp.release()
    check_answer(resp.status, resp.headers.get("Content-Type", ""), data, method)
    return resp.status


@dataclass
class RawAnswer:
    status: int
    headers: dict[str, str]
    body: bytes


async def send_raw(client: TestClient, request: bytes) -> RawAnswer:
    """Write ``request`` byte for byte on a fresh connection; read the one answer."""
    assert client.host is not None and client.port is not None
    reader, writer = await asyncio.open_connection(client.host, client.port)
    try:
        writer.write(request)
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        async with asyncio.timeout(10):
            head = await reader.readuntil(b"\r\n\r\n")
            status_line, *lines = head.decode("latin-1").rstrip("\r\n").split("\r\n")
            headers = {}
            for line in lines:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            # Read what the answer announces: the server may linger on an unread request body.
            if "content-length" in headers:
                body = await reader.readexactly(int(headers["content-length"]))
            elif headers.get("transfer-encoding") == "chunked":
                body = _dechunk(await reader.read())
            else:
                body = await reader.read()
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    return RawAnswer(int(status_line.split()[1]), headers, body)


def _dechunk(data: bytes) -> bytes:
    out = b""
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out, data = out + data[:size], data[size + 2:]
    return out


async def check_raw(client: TestClient, method: bytes, target: bytes, headers: dict[bytes, bytes],
                    body: bytes = b"") -> RawAnswer:
    lines = [method + b" " + target + b" HTTP/1.1", b"Host: fuzz", b"Connection: close"]
    lines += [name + b": " + value for name, value in headers.items()]
    if body or method == b"POST":
        lines.append(b"Content-Length: " + str(len(body)).encode())
    answer = await send_raw(client, b"\r\n".join(lines) + b"\r\n\r\n" + body)
    check_answer(answer.status, answer.headers.get("content-type", ""), answer.body,
                 method.decode("latin-1"))
    return answer


@pytest.fixture(autouse=True)
def _no_errors_logged(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """A request that made the gateway (or aiohttp) log an error or a traceback fails the test."""
    yield
    errors = [f"{r.name}: {r.getMessage()}" for r in caplog.get_records("call")
              if r.levelno >= logging.ERROR]
    assert not errors, errors


# -- the gateway under test ---------------------------------------------------------------


class Target:
    """The client, and Authorization header values by name (None: no header)."""

    def __init__(self, client: TestClient, auth: dict[str, str | None]) -> None:
        self.client, self.auth = client, auth

    def __repr__(self) -> str:  # hypothesis prints it with every failing example
        return "Target(...)"


@pytest.fixture
async def target(gateway_factory: Any) -> Target:
    """A gateway with a 16 KiB body limit, a live key and a revoked key."""
    client, gateway = await gateway_factory(server={"admin_token": ADMIN_TOKEN,
                                                    "max_body_bytes": SMALL_LIMIT})
    _, key = await gateway.keys.create_key("acme")
    info, revoked = await gateway.keys.create_key("acme", name="revoked")
    await gateway.keys.revoke(info.key_id)
    return Target(client, {
        "key": f"Bearer {key}",
        "admin": f"Bearer {ADMIN_TOKEN}",
        "revoked": f"Bearer {revoked}",
        "none": None,
        "empty": "",
        "scheme only": "Bearer",
        "scheme and space": "Bearer ",
        "no scheme": key,
        "basic": "Basic dXNlcjpwYXNz",
        "two spaces": f"Bearer  {key}",
        "key twice": f"Bearer {key} {key}",
        "wrong secret": f"Bearer {key[:-4]}AAAA",
        "well-formed unknown": "Bearer fab-aaaaaaaaaaaa_" + "b" * 43,
        "very long": "Bearer fab-" + "x" * 12_000,
        "long well-formed": "Bearer fab-aaaaaaaaaaaa_" + "c" * 200,
        "admin token as key": f"Bearer {ADMIN_TOKEN}",
        "key as admin token": f"Bearer {key}",
    })


ROUTES = [
    ("POST", "/v1/chat/completions"), ("POST", "/v1/completions"), ("POST", "/v1/embeddings"),
    ("GET", "/v1/models"), ("GET", "/v1/models/{id}"), ("GET", "/healthz"), ("GET", "/readyz"),
    ("POST", "/admin/keys"), ("GET", "/admin/keys"), ("DELETE", "/admin/keys/{id}"),
    ("POST", "/admin/tenants"), ("GET", "/admin/tenants"),
]
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"]
CONTENT_TYPES = [None, "application/json", "application/json; charset=utf-8", "text/plain",
                 "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
                 "application/octet-stream", "application/json; charset=latin-1", ";;;", "*/*",
                 "application/x-ndjson", "text/event-stream"]

# -- strategies ---------------------------------------------------------------------------

KEYS = st.sampled_from(["model", "messages", "prompt", "input", "stream", "max_tokens", "n",
                        "stream_options", "tools", "tool_choice", "role", "content", "tenant",
                        "name", "expires_at", "expires_in_days", "dimensions", "seed",
                        "include_usage", "function", "parameters", "properties", "type"])
SCALARS = (st.none() | st.booleans() | st.integers() | st.floats()
           | st.text(max_size=20) | st.sampled_from(["chat", "embed", "user", "acme", ""]))
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS | st.text(max_size=8),
                                                                inner, max_size=5),
    max_leaves=20)


def dumps(value: Any) -> bytes:
    # The standard library writes what orjson cannot: NaN, Infinity, lone surrogates
    # (escaped), integers of any size. The gateway must refuse those cleanly.
    return json.dumps(value).encode()


BODIES = st.one_of(
    JSON.map(dumps),
    st.dictionaries(KEYS, JSON, max_size=6).map(dumps),
    st.binary(max_size=200),
    st.text(max_size=100).map(lambda s: s.encode("utf-8", "surrogatepass")),
    st.just(b""),
)
PATHS = st.one_of(
    st.sampled_from([p for _, p in ROUTES]),
    st.sampled_from(["/", "/v1", "/v1/", "/v1/chat", "/v1/chat/completions/", "/admin",
                     "/admin/", "/admin/keys/", "/admin/keys/a/b", "/admin/tenants/x",
                     "/V1/MODELS", "/v1//models", "/v2/chat/completions", "/%2e%2e/etc"]),
    st.text(max_size=30).map(lambda s: "/" + quote(s.encode("utf-8", "surrogatepass"), safe="")),
)


def resolve(path: str, key_id: str) -> str:
    return path.replace("{id}", quote(key_id, safe="") or "x")


# -- random requests at every endpoint ----------------------------------------------------


@fuzz(800)
@given(route=st.one_of(st.sampled_from(ROUTES), st.tuples(st.sampled_from(METHODS), PATHS)),
       body=st.none() | BODIES, who=st.sampled_from(["key", "admin", "none", "revoked", "empty",
                                                      "no scheme", "very long"]),
       content_type=st.sampled_from(CONTENT_TYPES), key_id=st.text(max_size=20))
async def test_random_requests_never_5xx(target: Target, route: tuple[str, str], body: bytes | None,
                                         who: str, content_type: str | None, key_id: str) -> None:
    method, path = route
    authorization = target.auth[who]
    headers = {} if authorization is None else {"Authorization": authorization}
    await send(target.client, method, resolve(path, key_id), body, headers, content_type)


# -- valid OpenAI requests with one field made wrong --------------------------------------

CHAT = {"model": "chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
BASES = {
    "chat": ("/v1/chat/completions", CHAT),
    "chat stream": ("/v1/chat/completions", {**CHAT, "stream": True}),
    "completion": ("/v1/completions", {"model": "chat", "prompt": "hi", "max_tokens": 4}),
    "completion stream": ("/v1/completions",
                          {"model": "chat", "prompt": "hi", "max_tokens": 4, "stream": True}),
    "embedding": ("/v1/embeddings", {"model": "embed", "input": "hi"}),
}
COUNTS = st.sampled_from([-1, 0, 1.5, 2.0, True, False, 2**31, 2**63 - 1, 2**64, 10**30, "10",
                          None, [], {}, -(2**63)])
DELETE = object()  # a mutation that removes the field
MUTATIONS: dict[str, st.SearchStrategy[Any]] = {
    "model": st.sampled_from([["chat"], 1, "", None, {}, True, "nope", "embed", "chat", " chat",
                              "x" * 5000, DELETE]),
    "messages": st.sampled_from([
        "hi", [], ["hi"], [1], [None], [[]], [{}], [{"role": 1, "content": "x"}],
        [{"role": None, "content": "x"}], [{"role": ["user"], "content": "x"}],
        [{"content": "x"}], [{"role": "user"}], [{"role": "user", "content": 1}],
        [{"role": "user", "content": [1, None, {"type": "text", "text": 2}]}],
        [{"role": "nobody", "content": {"a": 1}}], {"role": "user"}, DELETE,
    ]) | st.lists(st.fixed_dictionaries({"role": JSON, "content": JSON}), max_size=3),
    "prompt": st.sampled_from([1, [], [1, 2], [[1]], ["a", 1], {"a": 1}, None, "", [""], True,
                               DELETE]),
    "input": st.sampled_from([1, [], ["a", 1], [1, "a"], [[1], [2]], [[1], "a"], [{}], [True],
                              [None], None, "", [""], [[]], {"a": 1}, DELETE]),
    "stream": st.sampled_from(["yes", "true", 1, 0, None, [], {}, True, False]),
    "max_tokens": COUNTS,
    "max_completion_tokens": COUNTS,
    "n": COUNTS,
    "stream_options": st.sampled_from([[], "x", 1, {"include_usage": "yes"},
                                       {"include_usage": True}, {"include_usage": None}, {}]),
    "tools": st.sampled_from([
        "garbage", 1, [1], [{}], [None], [{"type": "function", "function": "x"}],
        [{"function": {"name": 1}}], [{"function": {"name": "f", "parameters": []}}],
        [{"function": {"name": "f", "parameters": {"properties": [1]}}}],
        [{"function": {"name": "f", "parameters": {"properties": "x"}}}],
        [{"function": {"name": "f", "parameters": {"properties": {"a": 1, "b": {"type": []}}}}}],
        [{"function": {"name": "f", "parameters": {
            "properties": {"a": {"type": ["string", "null"]}, "b": {"type": {"x": 1}}}}}}],
    ]) | JSON,
    "tool_choice": st.sampled_from(["required", "auto", "none", 1, [], {"function": 1},
                                    {"function": {"name": "f"}}, {"function": {"name": []}}]),
    "dimensions": st.sampled_from([0, -1, 10**6, "x", 1.5, True, [], 8192, 1]),
    "seed": JSON,
    "extra": JSON,
}
# tools only matter with a tool_choice that makes the simulator call one
TOOL_CHOICE = st.sampled_from([None, "required", {"function": {"name": "f"}}])


@fuzz(600)
@given(base=st.sampled_from(sorted(BASES)), mutation=st.sampled_from(sorted(MUTATIONS)),
       data=st.data(), tool_choice=TOOL_CHOICE)
async def test_mutated_openai_requests_never_5xx(target: Target, base: str, mutation: str,
                                                 data: st.DataObject, tool_choice: Any) -> None:
    path, body = BASES[base]
    value = data.draw(MUTATIONS[mutation], label=mutation)
    body = dict(body)
    if value is DELETE:
        body.pop(mutation, None)
    else:
        body[mutation] = value
    if mutation == "tools" and tool_choice is not None:
        body["tool_choice"] = tool_choice
    await send(target.client, "POST", path, dumps(body), {"Authorization": target.auth["key"]},
               "application/json")


# -- the admin API with wrong fields ------------------------------------------------------

DATES = st.sampled_from([
    "garbage", "", "2000-01-01T00:00:00Z", "2999-01-01T00:00:00Z", "2999-01-01T00:00:00",
    "9999-12-31T23:59:59Z", "9999-12-31T23:59:59-23:59", "9999-12-31T23:59:59+14:00",
    "0001-01-01T00:00:00+23:59", "0001-01-01T00:00:00Z", "2999-01-01T00:00:00+05:00",
    "2999-02-30T00:00:00Z", 0, -1, 1e20, 2**70, 4102444800, True, [], {}, None,
])
DAYS = st.sampled_from([0, -1, 1e-9, 1, 30, 1e5, 1e6, 3e6, 1e7, 1e9, 1e12, 1e300, 1.7e308,
                        "1", "x", True, [], None]) | st.floats(min_value=0)
NAMES = st.sampled_from(["", " ", "\t\n", "x" * 128, "x" * 129, "\u0000", "é" * 128, "a/b",
                         "'; DROP TABLE tenants; --", 1, None, [], {}, True]) | st.text(max_size=140)
ADMIN_BASES = {
    "key": ("/admin/keys", {"tenant": "acme", "name": "k"},
            {"tenant": NAMES, "name": NAMES, "expires_at": DATES, "expires_in_days": DAYS,
             "extra": JSON}),
    "tenant": ("/admin/tenants", {"name": "acme"}, {"name": NAMES, "extra": JSON}),
}


@fuzz(400)
@given(base=st.sampled_from(sorted(ADMIN_BASES)), data=st.data())
async def test_mutated_admin_requests_never_5xx(target: Target, base: str,
                                                data: st.DataObject) -> None:
    path, body, fields = ADMIN_BASES[base]
    body = dict(body)
    for name in data.draw(st.lists(st.sampled_from(sorted(fields)), min_size=1, max_size=3,
                                   unique=True), label="fields"):
        body[name] = data.draw(fields[name], label=name)
    status = await send(target.client, "POST", path, dumps(body),
                        {"Authorization": target.auth["admin"]}, "application/json")
    assert status in (201, 400), body


@fuzz(150)
@given(key_id=st.text(min_size=1, max_size=200), tenant=st.text(max_size=200))
async def test_admin_path_and_query_fuzz(target: Target, key_id: str, tenant: str) -> None:
    admin = {"Authorization": target.auth["admin"]}
    encoded = quote(key_id.encode("utf-8", "surrogatepass"), safe="")
    await send(target.client, "DELETE", f"/admin/keys/{encoded}", None, admin)
    query = quote(tenant.encode("utf-8", "surrogatepass"), safe="")
    await send(target.client, "GET", f"/admin/keys?tenant={query}", None, admin)


# -- authorization headers ----------------------------------------------------------------

LENIENT = {"two spaces"}  # may be accepted: the token is stripped
AUTHENTICATED = [("POST", "/v1/chat/completions"), ("POST", "/v1/completions"),
                 ("POST", "/v1/embeddings"), ("GET", "/v1/models"), ("GET", "/v1/models/chat"),
                 ("GET", "/admin/keys"),
                 ("POST", "/admin/keys"), ("DELETE", "/admin/keys/nope"),
                 ("GET", "/admin/tenants"), ("POST", "/admin/tenants")]
BODY_FOR = {"/v1/chat/completions": CHAT, "/v1/completions": BASES["completion"][1],
            "/v1/embeddings": BASES["embedding"][1], "/admin/keys": {"tenant": "fuzz"},
            "/admin/tenants": {"name": "fuzz"}}


@pytest.mark.parametrize(("method", "path"), AUTHENTICATED)
async def test_odd_authorization_headers(target: Target, method: str, path: str) -> None:
    body = dumps(BODY_FOR[path]) if path in BODY_FOR else None
    good = "admin" if path.startswith("/admin") else "key"
    for name, value in target.auth.items():
        if value == target.auth[good] and name != good:
            continue
        headers = {} if value is None else {"Authorization": value}
        status = await send(target.client, method, path, body, headers, "application/json")
        if name in LENIENT:
            continue
        if name == good:
            assert status < 400 or path.startswith("/admin/keys/"), (name, status)
            headers = {"Authorization": str(value).replace("Bearer", "bEaReR")}
            status = await send(target.client, method, path, body, headers, "application/json")
            assert status < 400 or path.startswith("/admin/keys/"), (name, status)
        else:
            assert status == 401, (name, status)
    # Non-ASCII and non-UTF-8 bytes, written as they are (aiohttp's client would not).
    key = target.auth["key"]
    assert key is not None
    key_id = key.removeprefix("Bearer fab-")[:12].encode()
    odd = [
        "Bearer fab-ééééééééééé_秘密".encode(), b"Bearer fab-" + key_id + b"_\xff\xfe",
        b"Bearer fab-abcdefghijk\xff_secret", b"Bearer \xff", b"\xff\xfe",
        "Bearer 🔑".encode(), b"Bearer " + ADMIN_TOKEN.encode() + b"\xc3", b"Bearer\tfab-x",
        "Bearer test-admin-tökén".encode(),
    ]
    for value in odd:
        answer = await check_raw(target.client, method.encode(), path.encode(),
                                 {b"Authorization": value}, body or b"")
        assert answer.status == 401, (value, answer)


@fuzz(250)
@given(value=st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=300),
       scheme=st.sampled_from(["", "Bearer ", "bearer ", "Bearer fab-", "BEARER  "]),
       route=st.sampled_from(AUTHENTICATED))
async def test_random_authorization_values(target: Target, value: str, scheme: str,
                                           route: tuple[str, str]) -> None:
    method, path = route
    body = dumps(BODY_FOR[path]) if path in BODY_FOR else b""
    answer = await check_raw(target.client, method.encode(), path.encode(),
                             {b"Authorization": (scheme + value).encode()}, body)
    assert answer.status == 401, answer


# -- bodies: nesting, encodings, sizes, content types -------------------------------------


def nested(depth: int, kind: str) -> bytes:
    if kind == "array":
        return b"[" * depth + b"]" * depth
    return b'{"a":' * depth + b"1" + b"}" * depth


@pytest.mark.parametrize("kind", ["array", "object"])
@pytest.mark.parametrize("depth", [10_000, 1025, 1024, 300, 255, 254, 100])
async def test_deeply_nested_json(gateway_factory: Any, kind: str, depth: int) -> None:
    """orjson parses 1024 levels but writes only 254; anything deeper is a clean 400."""
    client, gateway = await gateway_factory()  # the default 8 MiB limit: nesting, not size
    _, key = await gateway.keys.create_key("acme")
    auth = {"Authorization": f"Bearer {key}"}
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    deep = nested(depth, kind)
    for path, headers in [("/v1/chat/completions", auth), ("/v1/completions", auth),
                          ("/v1/embeddings", auth), ("/admin/keys", admin),
                          ("/admin/tenants", admin)]:
        # As the whole body, and inside a field of an otherwise valid request.
        status = await send(client, "POST", path, deep, headers, "application/json")
        assert status == 400
        valid = BODY_FOR[path]
        inside = dumps(valid)[:-1] + b', "extra": ' + deep + b"}"
        status = await send(client, "POST", path, inside, headers, "application/json")
        if depth > 254:
            assert status == 400, (path, depth)


async def test_deep_nesting_through_an_http_upstream(gateway_factory: Any, sim_server: Any) -> None:
    """A body orjson can read but not write back must not fail when relayed upstream."""
    url = await sim_server()
    client, gateway = await gateway_factory(
        providers=[{"name": "http", "type": "openai_compatible", "base_url": url}],
        models=[{"name": "chat", "deployments": [{"provider": "http", "model": "sim-chat"}]}])
    _, key = await gateway.keys.create_key("acme")
    for depth in (200, 253, 254, 255, 600, 1023):
        body = dumps(CHAT)[:-1] + b', "metadata": ' + nested(depth, "array") + b"}"
        status = await send(client, "POST", "/v1/chat/completions", body,
                            {"Authorization": f"Bearer {key}"}, "application/json")
        assert status == (200 if depth < 254 else 400), depth  # the body object is one more level


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/completions", "/v1/embeddings",
                                  "/admin/keys", "/admin/tenants"])
async def test_invalid_bytes_and_empty_bodies(target: Target, path: str) -> None:
    headers = {"Authorization": target.auth["admin" if path.startswith("/admin") else "key"]}
    valid = dumps(BODY_FOR[path])
    for body in [b"", b" ", b"\n", b"\xff\xfe", b'{"model": "\xff"}', b"\xef\xbb\xbf" + valid,
                 valid[:-1], valid + b"x", valid + valid, b"\x00" * 10, b"null", b"[]", b"1",
                 b'"x"', b"{}", b"{'a': 1}", b'{"a": NaN}', b'{"a": Infinity}', b'{"a": 1e400}',
                 b'{"a": "\\ud800"}', b'{"a": "\\udc00\\ud800"}', b'{"a": 1,}', b'{"a" 1}',
                 "{\"model\": \"chat\u2028\"}".encode(), b'{"a": 18446744073709551616}',
                 b'{"a": -9223372036854775809}', valid.replace(b'"', b"'"),
                 valid.decode().encode("utf-16"), valid.decode().encode("utf-32")]:
        status = await send(target.client, "POST", path, body, headers, "application/json")
        assert status == 400, body


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/completions", "/v1/embeddings",
                                  "/admin/keys", "/admin/tenants"])
async def test_bodies_over_the_limit_are_413(target: Target, path: str) -> None:
    headers = {"Authorization": target.auth["admin" if path.startswith("/admin") else "key"]}
    padded = {**BODY_FOR[path], "pad": "x" * SMALL_LIMIT}
    big = dumps(padded)

    async def chunks(data: bytes) -> AsyncIterator[bytes]:  # no Content-Length: checked on read
        for start in range(0, len(data), 4096):
            yield data[start:start + 4096]

    for body in (big, b"x" * (SMALL_LIMIT + 1), b" " * 10 * SMALL_LIMIT):
        assert await send(target.client, "POST", path, body, headers, "application/json") == 413
        resp = await target.client.post(path, data=chunks(body), headers=headers)
        data = await resp.read()
        check_answer(resp.status, resp.headers.get("Content-Type", ""), data)
        assert resp.status == 413, data
    # Exactly at the limit is fine as far as size goes.
    at_limit = dumps({**BODY_FOR[path], "pad": ""})
    at_limit = at_limit[:-1] + b" " * (SMALL_LIMIT - len(at_limit)) + b"}"
    assert len(at_limit) == SMALL_LIMIT
    status = await send(target.client, "POST", path, at_limit, headers, "application/json")
    assert status != 413
    # A Content-Length that lies about a huge body is refused before it is read.
    answer = await send_raw(target.client, b"POST " + path.encode() + b" HTTP/1.1\r\nHost: x\r\n"
                            b"Connection: close\r\nContent-Length: 999999999999\r\n"
                            b"Authorization: " + str(headers["Authorization"]).encode()
                            + b"\r\n\r\n{}")
    check_answer(answer.status, answer.headers.get("content-type", ""), answer.body)
    assert answer.status == 413


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/admin/tenants"])
async def test_compressed_bodies(target: Target, path: str,
                                 caplog: pytest.LogCaptureFixture) -> None:
    # aiohttp closes the connection after a body it cannot decode: do not reuse it.
    headers = {"Authorization": str(target.auth["admin" if path.startswith("/admin") else "key"]),
               "Content-Encoding": "gzip", "Connection": "close"}
    valid = dumps(BODY_FOR[path])
    assert await send(target.client, "POST", path, gzip.compress(valid), headers,
                      "application/json") < 300
    # Garbage that claims to be compressed, and a small body that inflates past the limit.
    for encoding, body, ok in [("gzip", b"hello", False), ("deflate", b"hello", False),
                               ("gzip", gzip.compress(valid)[:20], False),
                               ("gzip", gzip.compress(valid)[:-8], True),  # zlib lets a lost trailer go
                               ("x-unknown", valid, True)]:
        status = await send(target.client, "POST", path, body,
                            {**headers, "Content-Encoding": encoding}, "application/json")
        assert status == 400 or (ok and status < 300), (encoding, status)
    bomb = gzip.compress(b"[" + b" " * (50 * SMALL_LIMIT) + b"]")
    assert len(bomb) < SMALL_LIMIT
    assert await send(target.client, "POST", path, bomb, headers, "application/json") == 413
    # After answering, aiohttp drains the rest of the body it could not decode, and logs that
    # as an "Unhandled exception" before closing the connection: nothing the client sees.
    assert {r.name for r in caplog.get_records("call") if r.levelno >= logging.ERROR} <= {
        "aiohttp.server"}
    caplog.clear()


async def test_content_types_do_not_matter(target: Target) -> None:
    for content_type in CONTENT_TYPES:
        for path, who in [("/v1/chat/completions", "key"), ("/v1/completions", "key"),
                          ("/v1/embeddings", "key"), ("/admin/tenants", "admin"),
                          ("/admin/keys", "admin")]:
            status = await send(target.client, "POST", path, dumps(BODY_FOR[path]),
                                {"Authorization": str(target.auth[who])}, content_type)
            assert status < 300, (path, content_type, status)


# -- paths and methods --------------------------------------------------------------------


ALLOWED: dict[str, set[str]] = {}
for _method, _path in ROUTES:
    ALLOWED.setdefault(_path, set()).update({_method, "HEAD"} if _method == "GET" else {_method})


async def test_wrong_methods_and_unknown_paths(target: Target) -> None:
    for path in [*ALLOWED, "/nope", "/v1/nope", "/admin/nope", "/v1/chat/completions/x"]:
        for method in [*METHODS, "TRACE", "PROPFIND", "MKCOL", "PURGE"]:
            if method in ALLOWED.get(path, ()):
                continue
            who = "admin" if path.startswith("/admin") else "key"
            status = await send(target.client, method, resolve(path, "nope"), dumps({}),
                                {"Authorization": str(target.auth[who])}, "application/json")
            expected = {405} if path in ALLOWED else {404}
            if "{id}" in path and not path.startswith("/admin"):
                expected = {404, 405}  # /v1/models/nope: either answer is right
            assert status in expected, (method, path, status)


async def test_http_parser_rejections(target: Target, caplog: pytest.LogCaptureFixture) -> None:
    """aiohttp refuses these before routing: a 400 in text/plain, never a 5xx or a traceback."""
    key = str(target.auth["key"]).encode()
    for request in [
        b"GET /v1/\xff\xfe HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"GET /admin/keys?tenant=\xff HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \x00\r\n\r\n",
        b"GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + b"a" * 20_000 + b"\r\n\r\n",
        b"G@T /v1/models HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n"
        b"Content-Length: 2\r\n\r\n{}",
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: " + key
        + b"\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
        # Brotli or zstd when their optional packages are not installed: aiohttp refuses them
        # as it parses the headers (with them installed, garbage is a JSON 400 as for gzip).
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: " + key
        + b"\r\nContent-Encoding: br\r\nContent-Length: 5\r\n\r\nhello",
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: " + key
        + b"\r\nContent-Encoding: zstd\r\nContent-Length: 5\r\n\r\nhello",
    ]:
        answer = await send_raw(target.client, request)
        assert answer.status == 400, (request[:80], answer)
        assert b"Traceback" not in answer.body
    # aiohttp logs each as "Error handling request" (with the parser's exception).
    assert {r.name for r in caplog.get_records("call") if r.levelno >= logging.ERROR} <= {
        "aiohttp.server"}
    caplog.clear()


async def test_valid_requests_still_work_after_garbage(target: Target) -> None:
    """Garbage must not trip breakers or poison the key cache: a normal request still works."""
    for _ in range(20):
        await send(target.client, "POST", "/v1/chat/completions", b"\xff",
                   {"Authorization": str(target.auth["key"])})
    assert await send(target.client, "GET", "/readyz") == 200
    assert await send(target.client, "POST", "/v1/chat/completions", dumps(CHAT),
                      {"Authorization": str(target.auth["key"])}, "application/json") == 200
