"""The request path, in order. Each stage is ``async def stage(ctx: RequestContext) -> None``.

    1 validate   the body has what the endpoint needs; the model exists      → 400, 404
      admit      rate limits, budget reservation (fabrique.metering)          → 429
    2 classify   find personal data in every text; the request's data class  → 400 (bad header)
    3 decide     keep the deployments the tenant's residency policy allows   → 403 residency_policy
    4 protect    pseudonymize for deployments allowed only that way
    5 route      pick a deployment, call it; retry, fall back, break circuits → 429, 502-504
      capture    keep a stream's answer for the audit payload (tenants that keep payloads)
    6 relay      (pipeline.relay) write the answer: JSON, or SSE chunk by chunk
    7 restore    (pipeline.restore, inside route and relay) originals back into the answer
    8 meter      (pipeline.finishers) once per request, whatever its outcome, before the answer
    9 record      is acknowledged complete: before a body is sent, before a stream's [DONE]

Metering and the audit record are ``FINISHERS`` in ``pipeline.finishers``.
"""

from __future__ import annotations

from fabrique.pipeline.admit import admit
from fabrique.pipeline.capture import capture
from fabrique.pipeline.classify import classify
from fabrique.pipeline.context import Decision, RequestContext, Stage
from fabrique.pipeline.decide import decide
from fabrique.pipeline.finishers import FINISHERS, finish, finish_quietly
from fabrique.pipeline.protect import protect
from fabrique.pipeline.route import route
from fabrique.pipeline.validate import validate

STAGES: tuple[Stage, ...] = (validate, admit, classify, decide, protect, route, capture)


async def run(ctx: RequestContext) -> None:
    """Run every stage before the answer is relayed."""
    for stage in STAGES:
        await stage(ctx)


__all__ = ["FINISHERS", "STAGES", "Decision", "RequestContext", "Stage", "finish", "finish_quietly",
           "run"]
