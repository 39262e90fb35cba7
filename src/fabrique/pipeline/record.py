"""Stage 9: one audit-ledger record per request, committed before the answer completes.

A finisher (``pipeline.finishers``): it runs once whatever the outcome, after metering,
before a plain body is sent and before a stream's ``[DONE]``. The record says who asked
what, where it went and why, what it cost and how it ended; never a prompt or a value
found in one (only counts by type). What it keeps of the payload follows the tenant's
policy (``ledger.payloads``). If the record cannot be committed, the tenant's
``on_failure`` decides: 503 ledger_unavailable (closed), or serve and count an alarm (open).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson

from fabrique.errors import LedgerUnavailable
from fabrique.ledger import payload_crypto
from fabrique.ledger.canonical import canonical_unchecked, decimal
from fabrique.ledger.service import Ledger
from fabrique.ledger.store import Entry
from fabrique.pipeline.capture import Captured
from fabrique.pipeline.context import RequestContext

log = logging.getLogger("fabrique.ledger")
_DAY_MS = 86_400_000
VERSION = 1


async def record(ctx: RequestContext) -> None:
    gateway = ctx.gateway
    config = gateway.config.ledger
    if not config.enabled:
        return
    ledger = gateway.ledger
    tenant = ctx.principal.tenant
    mode, on_failure = config.tenant(tenant)
    try:
        entry = await build_entry(ctx, ledger, mode)
        await _commit(ledger, entry, config.commit_timeout_s)
    except Exception as exc:
        if on_failure == "open":
            ledger.fail_open += 1
            log.error("ALARM ledger: request %s of tenant %s served without its audit record "
                      "(fail-open policy; %d so far): %s", ctx.request_id, tenant,
                      ledger.fail_open, _why(exc))
            return
        log.error("ledger: request %s refused, its audit record could not be written: %s",
                  ctx.request_id, _why(exc))
        raise LedgerUnavailable("The audit ledger could not record this request, so it was not "
                                f"completed; retry later (request {ctx.request_id}).") from exc


async def _commit(ledger: Ledger, entry: Entry, timeout_s: float) -> None:
    async with asyncio.timeout(timeout_s):
        await ledger.append(entry)


def _why(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300]


async def build_entry(ctx: RequestContext, ledger: Ledger, mode: str) -> Entry:
    """The record's canonical bytes, and the encrypted payload when the policy keeps one."""
    now_ms = time.time_ns() // 1_000_000
    fields = build(ctx, now_ms)
    payload: tuple[str, bytes, int] | None = None
    if mode == "hash":
        secret = ledger.tenant_secret(ctx.principal.tenant)
        fields["payload"] = {"mode": "hash", "hmac": "sha256",
                             **{k: payload_crypto.keyed_hash(secret, v) if v is not None else None
                                for k, v in _payload_parts(ctx).items()}}
    elif mode == "encrypted":
        tenant = ctx.principal.tenant
        ref = payload_crypto.subject_ref(ledger.tenant_secret(tenant), ctx.subject or tenant)
        key = await ledger.subject_key(tenant, ref)
        plain = orjson.dumps({k: None if v is None else orjson.Fragment(v)
                              for k, v in _payload_parts(ctx).items()})
        blob = payload_crypto.encrypt(key, plain, ctx.request_id.encode())
        fields["payload"] = {"mode": "encrypted", "cipher": "AES-256-GCM", "subject": ref,
                             "sha256": hashlib.sha256(blob).hexdigest()}
        days = ledger.config.retention.payloads_days
        payload = (ref, blob, now_ms + days * _DAY_MS)
    return Entry(canonical_unchecked(fields), now_ms, ctx.principal.tenant, ctx.request_id, payload)


def _payload_parts(ctx: RequestContext) -> dict[str, bytes | None]:
    """The request as received (keys sorted), and the answer: the JSON body as sent, or a
    stream's events as the deployment sent them (``pipeline.capture``), as a JSON list of
    their data strings."""
    upstream = ctx.upstream
    answer = None
    if upstream is not None and not ctx.stream:
        answer = upstream.body
    elif upstream is not None and isinstance(upstream.events, Captured):
        answer = orjson.dumps([c.decode("utf-8", "replace") for c in upstream.events.chunks])
    return {"request": orjson.dumps(ctx.body, option=orjson.OPT_SORT_KEYS), "response": answer}


def build(ctx: RequestContext, now_ms: int) -> dict[str, Any]:
    """The record as a dict of canonical values (integers, strings; no floats)."""
    dep = ctx.deployment
    total_us = int((time.perf_counter() - ctx.received) * 1e6)
    return {
        "v": VERSION,
        "time": datetime.fromtimestamp(now_ms / 1000, UTC).isoformat(timespec="milliseconds")
        .replace("+00:00", "Z"),
        "request_id": ctx.request_id,
        "tenant": ctx.principal.tenant,
        "key_id": ctx.principal.key_id,
        "agent_id": ctx.agent,
        "session_id": ctx.session,
        "endpoint": ctx.endpoint,
        "stream": ctx.stream,
        "model": ctx.model or _str(ctx.body.get("model")),
        "deployment": dep.name if dep is not None else None,
        "jurisdiction": dep.residency.jurisdiction if dep is not None else None,
        "pseudonymized": ctx.pseudonymized,
        "data_class": ctx.data_class or None,
        "entity_counts": dict(ctx.entity_counts),
        "decisions": [{"stage": d.stage, "outcome": d.outcome, "reason": d.reason}
                      for d in ctx.decisions],
        "attempts": [{"deployment": a.deployment, "outcome": a.outcome, "us": int(a.seconds * 1e6)}
                     for a in ctx.attempts],
        "usage": plain(ctx.usage) if ctx.usage else None,
        "latency_us": {"total": total_us, "upstream_wait": int(ctx.upstream_s * 1e6),
                       "gateway": max(0, total_us - int(ctx.upstream_s * 1e6)) if not ctx.stream
                       else None},
        # Filled by metering (ctx.meter: cost, energy, carbon, TTFT …) when it runs first.
        "meter": _meter(ctx),
        "status": ctx.status,
        "outcome": ctx.outcome,
        "payload": None,
    }


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _meter(ctx: RequestContext) -> Any:
    meter = ctx.meter
    if meter is None:
        return None
    as_record = getattr(meter, "as_record", None)
    return plain(as_record() if callable(as_record) else meter)


def plain(value: Any) -> Any:
    """``value`` with floats as decimal strings and only ASCII string keys: canonical."""
    if isinstance(value, float | Decimal):
        return decimal(value)
    if isinstance(value, dict):
        return {str(k).encode("ascii", "backslashreplace").decode(): plain(v)
                for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 2**53 - 1:
        return str(value)
    if value is None or isinstance(value, bool | int | str):
        return value
    return str(value)
