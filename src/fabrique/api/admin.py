"""The admin REST API (``/admin``), protected by the admin token."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TypeVar

import orjson
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from fabrique.api import audit
from fabrique.api.errors import error_response
from fabrique.api.openai import GATEWAY, Handler, new_request_id, read_json
from fabrique.errors import FabriqueError, InvalidField

_ADMIN_BODY_LIMIT = 64 * 1024
_M = TypeVar("_M", bound=BaseModel)


class CreateKey(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tenant: str = Field(min_length=1, max_length=128)
    name: str | None = Field(None, max_length=128)
    expires_at: datetime | None = None
    expires_in_days: float | None = Field(None, gt=0)
    policy: str | None = Field(None, max_length=128)


class CreateTenant(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=128)
    policy: str | None = Field(None, max_length=128)


class TenantPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")
    policy: str | None = Field(max_length=128)


def _json(data: object, status: int = 200) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(data), content_type="application/json")


def admin(handler: Handler) -> Handler:
    """Check the admin token, render FabriqueErrors."""
    async def guarded(request: web.Request) -> web.StreamResponse:
        try:
            request.app[GATEWAY].admin_token.check(request.headers.get("Authorization"))
            response = await handler(request)
        except FabriqueError as error:
            return error_response(error, {"x-fabrique-request-id": new_request_id()})
        return response
    return guarded


async def _read(request: web.Request) -> dict[str, object]:
    # The server's own limit may be lower: aiohttp stops reading there.
    limit = min(_ADMIN_BODY_LIMIT, request.app[GATEWAY].config.server.max_body_bytes)
    return await read_json(request, limit)


def _parse(model: type[_M], body: dict[str, object]) -> _M:
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        param = ".".join(str(p) for p in err["loc"]) or None
        raise InvalidField(f"{param or 'body'}: {err['msg']}", param=param) from exc


@admin
async def create_key(request: web.Request) -> web.StreamResponse:
    spec = _parse(CreateKey, await _read(request))
    expires = spec.expires_at
    if expires is not None and expires.tzinfo is None:
        expires = expires.replace(tzinfo=UTC)
    if spec.expires_in_days is not None:
        try:
            expires = datetime.now(UTC) + timedelta(days=spec.expires_in_days)
        except OverflowError as exc:
            raise InvalidField("expires_in_days: the date would be after the year 9999",
                               param="expires_in_days") from exc
    _check_policy(request, spec.policy)
    info, key = await request.app[GATEWAY].keys.create_key(spec.tenant, name=spec.name,
                                                           expires_at=expires, policy=spec.policy)
    return _json({**info.as_dict(), "key": key}, status=201)


@admin
async def list_keys(request: web.Request) -> web.StreamResponse:
    keys = await request.app[GATEWAY].keys.list_keys(request.query.get("tenant"))
    return _json({"object": "list", "data": [k.as_dict() for k in keys]})


@admin
async def revoke_key(request: web.Request) -> web.StreamResponse:
    info = await request.app[GATEWAY].keys.revoke(request.match_info["key_id"])
    return _json(info.as_dict())


@admin
async def create_tenant(request: web.Request) -> web.StreamResponse:
    spec = _parse(CreateTenant, await _read(request))
    _check_policy(request, spec.policy)
    keys = request.app[GATEWAY].keys
    await keys.ensure_tenant(spec.name)
    tenant = await keys.set_tenant_policy(spec.name.strip(), spec.policy) if spec.policy else {
        "name": spec.name.strip(), "policy": None}
    return _json(tenant, status=201)


@admin
async def set_tenant_policy(request: web.Request) -> web.StreamResponse:
    """PUT /admin/tenants/{name}/policy {"policy": NAME or null}: null gives back config's."""
    spec = _parse(TenantPolicy, await _read(request))
    _check_policy(request, spec.policy)
    return _json(await request.app[GATEWAY].keys.set_tenant_policy(request.match_info["name"],
                                                                  spec.policy))


@admin
async def list_policies(request: web.Request) -> web.StreamResponse:
    sov = request.app[GATEWAY].sovereignty
    data = [{**policy.model_dump(mode="json"),
             "default": name == sov.config.default_policy} for name, policy in sov.policies.items()]
    return _json({"object": "list", "data": data})


def _check_policy(request: web.Request, name: str | None) -> None:
    known = request.app[GATEWAY].sovereignty.policies
    if name is not None and name not in known:
        raise InvalidField(f"policy: unknown policy {name!r} (declared in the config: "
                           f"{', '.join(sorted(known))})", param="policy")


@admin
async def list_tenants(request: web.Request) -> web.StreamResponse:
    return _json({"object": "list", "data": await request.app[GATEWAY].keys.list_tenants()})


@admin
async def usage_report(request: web.Request) -> web.StreamResponse:
    """GET /admin/usage?by=tenant|key|agent|deployment|model&since=7d[&tenant=NAME]"""
    from fabrique.metering.report import report, since

    gateway = request.app[GATEWAY]
    await gateway.metering.usage.flush()  # what this process has queued counts too
    query = request.query
    by = query.get("by", "tenant")
    rows = await report(gateway.db, by, since(query.get("since", "7d")), query.get("tenant"))
    return _json({"object": "list", "by": by, "data": rows})


@admin
async def budgets(request: web.Request) -> web.StreamResponse:
    """GET /admin/budgets?tenant=T[&key=K][&agent=A]: the budgets that apply to them now, with
    what is spent and reserved (in this process's counters, or Redis's when shared)."""
    from fabrique.metering.plan import MICRO, Who

    query = request.query
    if "tenant" not in query:
        raise InvalidField("tenant: required", param="tenant")
    control = request.app[GATEWAY].metering.control
    _, found = control.planner.plan(Who(query["tenant"], query.get("key", ""),
                                        query.get("agent"), ""), 0, 0.0)
    data = []
    for budget in found:
        spent, reserved = await control.spent(budget)
        scale = MICRO if budget.unit == "eur" else 1
        _, scope, ident, period, when = budget.key.split(":", 4)
        data.append({"scope": scope, "name": ident, "period": period, "current": when,
                     "unit": budget.unit, "limit": budget.limit / scale,
                     "spent": spent / scale, "reserved": reserved / scale})
    return _json({"object": "list", "data": data})


def add_routes(app: web.Application) -> None:
    app.router.add_post("/admin/keys", create_key)
    app.router.add_get("/admin/keys", list_keys)
    app.router.add_delete("/admin/keys/{key_id}", revoke_key)
    app.router.add_post("/admin/tenants", create_tenant)
    app.router.add_get("/admin/tenants", list_tenants)
    app.router.add_put("/admin/tenants/{name}/policy", set_tenant_policy)
    app.router.add_get("/admin/policies", list_policies)
    audit.add_routes(app)
    app.router.add_get("/admin/usage", usage_report)
    app.router.add_get("/admin/budgets", budgets)
