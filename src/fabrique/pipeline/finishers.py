"""The stages that close every request, once, whatever its outcome: served, refused or failed.

    8 meter    usage, cost, energy; settle the budget reservation      (pipeline.meter)
    9 record   one audit-ledger record                                 (as the ledger lands)

``finish`` runs them when the outcome is known and *before* the answer is acknowledged as
complete: before the body of a plain response is sent, before the final ``[DONE]`` of a
stream. A finisher that raises a ``FabriqueError`` there (a ledger that cannot be written,
with a fail-closed policy) turns the answer into that error: a plain response becomes an
error response, a stream ends with an error event and no ``[DONE]``. After the client has
seen the outcome (refusals, failed or cut streams), ``finish_quietly`` logs such errors
instead, since the answer can no longer change.
"""

from __future__ import annotations

import logging

from fabrique.errors import FabriqueError
from fabrique.pipeline.context import RequestContext, Stage
from fabrique.pipeline.meter import meter
from fabrique.pipeline.record import record

log = logging.getLogger("fabrique.pipeline")

# meter first: the audit record takes its figures (ctx.meter).
FINISHERS: tuple[Stage, ...] = (meter, record)


async def finish(ctx: RequestContext, status: int, outcome: str) -> None:
    """Set the request's final status and outcome ("ok", "done", an error code, "client_gone"
    …) and run every finisher in order."""
    ctx.status, ctx.outcome = status, outcome
    for stage in FINISHERS:
        await stage(ctx)


async def finish_quietly(ctx: RequestContext, status: int, outcome: str) -> None:
    """``finish`` for an answer already decided: errors are logged, never raised."""
    try:
        await finish(ctx, status, outcome)
    except FabriqueError as error:
        log.error("request %s: closing stages failed after the answer: %s", ctx.request_id,
                  error.message)
    except Exception:
        log.exception("request %s: closing stages failed after the answer", ctx.request_id)
