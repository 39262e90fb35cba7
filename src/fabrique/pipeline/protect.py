"""Stage 4: when a deployment may receive the request only pseudonymized, prepare that copy.

Each personal value found by classify becomes a typed placeholder («IBAN_1»), the same for
the same value within the request (and within the session when the client sends
``x-fabrique-session-id``). The original body stays for deployments allowed in clear;
route sends each deployment the body its verdict allows.
"""

from __future__ import annotations

import orjson

from fabrique.pipeline.context import RequestContext
from fabrique.policy.fields import Reencode, Slot, walk


async def protect(ctx: RequestContext) -> None:
    if ctx.modes is None or "pseudonymized" not in ctx.modes.values():
        return
    vault = ctx.gateway.sovereignty.vault(ctx.principal, ctx.session)
    copy = orjson.loads(orjson.dumps(ctx.body))
    items = list(walk(copy))
    slots = [s for s in items if isinstance(s, Slot)]
    for slot in slots:  # before any placeholder is made: see Vault.avoid
        vault.avoid(slot.text)
    for slot, found in zip(slots, ctx.scans, strict=True):
        if found:
            slot.parent[slot.key] = vault.pseudonymize(slot.text, found)
    for item in items:  # JSON texts walked decoded (tool-call arguments): encode them again
        if isinstance(item, Reencode):
            item.write()
    ctx.protected_body, ctx.vault = copy, vault
    replaced = sum(len(found) for found in ctx.scans)
    ctx.decide("protect", "pseudonymized", f"{replaced} value(s) replaced by placeholders")
