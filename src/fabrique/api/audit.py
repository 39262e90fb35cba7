"""The audit ledger on the admin API (``/admin/audit``).

The admin token sees every tenant. A tenant's API key is accepted too, scoped to that
tenant: its own records, their proofs and payloads, erasure of its own subjects; never
another tenant's record, and not the whole-log export (which holds every tenant's).
Tree heads, consistency proofs and the public key name no tenant: any of the two may ask.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import orjson
from aiohttp import web

from fabrique.api.errors import error_response
from fabrique.api.openai import GATEWAY, new_request_id
from fabrique.errors import AuthenticationError, FabriqueError, InvalidField, NotFound, PermissionDenied
from fabrique.ledger.payload_crypto import PayloadUnreadable

Scoped = Callable[[web.Request, str | None], Awaitable[web.StreamResponse]]


def _json(data: object, status: int = 200) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(data), content_type="application/json")


def scoped(handler: Scoped) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """Authenticate as admin (tenant None) or as a tenant's key; render FabriqueErrors."""
    async def guarded(request: web.Request) -> web.StreamResponse:
        gateway = request.app[GATEWAY]
        authorization = request.headers.get("Authorization")
        try:
            try:
                gateway.admin_token.check(authorization)
                tenant = None
            except AuthenticationError:
                tenant = (await gateway.keys.authenticate(authorization)).tenant
            if not gateway.config.ledger.enabled:
                raise NotFound("The audit ledger is turned off (ledger.enabled).")
            return await handler(request, tenant)
        except FabriqueError as error:
            return error_response(error, {"x-fabrique-request-id": new_request_id()})
    return guarded


def _int(request: web.Request, name: str, default: int | None = None) -> int | None:
    raw = request.query.get(name, request.match_info.get(name))
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise InvalidField(f"{name}: expected an integer, got {raw!r}", param=name) from None


async def _own(request: web.Request, tenant: str | None, index: int) -> None:
    """NotFound unless record ``index`` exists and (for a tenant) is theirs: a tenant
    cannot even learn that another's record exists."""
    found = await request.app[GATEWAY].ledger.store.record(index)
    if found is None or (tenant is not None and found[0] != tenant):
        raise NotFound(f"No record {index}" + (" of this tenant." if tenant else "."))


@scoped
async def public_key(request: web.Request, tenant: str | None) -> web.StreamResponse:
    return _json(request.app[GATEWAY].ledger.public_key())


@scoped
async def tree_head(request: web.Request, tenant: str | None) -> web.StreamResponse:
    return _json((await request.app[GATEWAY].ledger.sign()).as_dict())


@scoped
async def list_records(request: web.Request, tenant: str | None) -> web.StreamResponse:
    """GET /admin/audit/records?after=INDEX&limit=N[&tenant=NAME (admin)]"""
    ledger = request.app[GATEWAY].ledger
    limit = min(_int(request, "limit", 100) or 100, 1000)
    after = _int(request, "after")
    start = 0 if after is None else after + 1
    who = tenant if tenant is not None else request.query.get("tenant")
    head = await ledger.store.head()
    data = []
    async for index, record in ledger.store.records(start, head.size, who, chunk=limit):
        data.append({"index": index, "record": orjson.loads(record) if record else None})
        if len(data) >= limit:
            break
    return _json({"object": "list", "data": data})


@scoped
async def inclusion(request: web.Request, tenant: str | None) -> web.StreamResponse:
    """GET /admin/audit/records/{index}/proof[?size=N], or /admin/audit/proof?request_id=ID"""
    ledger = request.app[GATEWAY].ledger
    index = _int(request, "index")
    if index is None:
        request_id = request.query.get("request_id")
        index = await ledger.store.find(request_id) if request_id else None
        if index is None:
            raise NotFound("No record of this request" if request_id else
                           "Give a record index, or ?request_id=")
    await _own(request, tenant, index)
    return _json(await ledger.inclusion(index, _int(request, "size")))


@scoped
async def consistency(request: web.Request, tenant: str | None) -> web.StreamResponse:
    """GET /admin/audit/consistency?first=M[&second=N]"""
    first = _int(request, "first")
    if first is None:
        raise InvalidField("first: the older size is required", param="first")
    return _json(await request.app[GATEWAY].ledger.consistency(first, _int(request, "second")))


@scoped
async def payload(request: web.Request, tenant: str | None) -> web.StreamResponse:
    index = _int(request, "index")
    assert index is not None
    await _own(request, tenant, index)
    try:
        return _json(await request.app[GATEWAY].ledger.payload(index))
    except PayloadUnreadable as exc:
        raise NotFound(f"{exc}.", code="payload_erased") from None


@scoped
async def erase(request: web.Request, tenant: str | None) -> web.StreamResponse:
    """DELETE /admin/audit/subjects/{subject}[?tenant=NAME]: a tenant erases its own only."""
    target = request.query.get("tenant")
    if tenant is not None and target not in (None, tenant):
        raise PermissionDenied("A tenant's key erases its own subjects only.")
    erased = await request.app[GATEWAY].ledger.erase(request.match_info["subject"], tenant or target)
    return _json({"erased": bool(erased), "tenants": erased})


@scoped
async def export(request: web.Request, tenant: str | None) -> web.StreamResponse:
    """GET /admin/audit/export[?since=ISO-or-age][&tenant=NAME]: JSON lines, streamed. The
    whole log for the admin; a tenant's own records with their proofs for a tenant's key
    (or the admin naming one)."""
    own = tenant if tenant is not None else request.query.get("tenant")
    since_ms = None
    if "since" in request.query:
        from fabrique.ledger.since import parse_since
        try:
            since_ms = parse_since(request.query["since"])
        except ValueError as exc:
            raise InvalidField(str(exc).removeprefix("--"), param="since") from None
    ledger = request.app[GATEWAY].ledger
    lines = ledger.export(since_ms) if own is None else ledger.tenant_export(own, since_ms)
    first = await anext(lines)  # errors before the first line still get an error response
    response = web.StreamResponse(headers={"Content-Type": "application/jsonl"})
    await response.prepare(request)
    await response.write(first)
    async for line in lines:
        await response.write(line)
    await response.write_eof()
    return response


def add_routes(app: web.Application) -> None:
    app.router.add_get("/admin/audit/public-key", public_key)
    app.router.add_get("/admin/audit/tree-head", tree_head)
    app.router.add_get("/admin/audit/records", list_records)
    app.router.add_get("/admin/audit/records/{index}/proof", inclusion)
    app.router.add_get("/admin/audit/proof", inclusion)
    app.router.add_get("/admin/audit/records/{index}/payload", payload)
    app.router.add_get("/admin/audit/consistency", consistency)
    app.router.add_delete("/admin/audit/subjects/{subject}", erase)
    app.router.add_get("/admin/audit/export", export)
