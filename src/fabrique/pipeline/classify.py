"""Stage 2: find personal data in every text of the request; set its data class.

The class is the highest of: the policy's default class, the class the client declared
(``x-fabrique-data-class``, which can raise it, never lower it), the class of content
that cannot be read (images, token ids), and the class of each entity found.
"""

from __future__ import annotations

from collections import Counter

from fabrique.config import DATA_CLASSES
from fabrique.errors import InvalidField
from fabrique.pipeline.context import RequestContext
from fabrique.policy.fields import Slot, Uninspectable, walk
from fabrique.policy.residency import RANK, highest


async def classify(ctx: RequestContext) -> None:
    sov = ctx.gateway.sovereignty
    policy = ctx.policy = sov.policy_for(ctx.principal)
    floor: list[str] = [policy.default_class]
    if ctx.declared_class is not None:
        declared = ctx.declared_class.strip().lower()
        if declared not in DATA_CLASSES:
            raise InvalidField(f"The header x-fabrique-data-class must be one of "
                               f"{', '.join(DATA_CLASSES)} (got {ctx.declared_class[:40]!r}).",
                               param="x-fabrique-data-class", code="invalid_header")
        floor.append(declared)
    texts: list[str] = []
    unread: list[str] = []
    for item in walk(ctx.body):
        if isinstance(item, Slot):
            texts.append(item.text)
        elif isinstance(item, Uninspectable):
            unread.append(f"{item.what} in {item.where}")
    ctx.scans = await sov.scan_all(texts)
    if sov.entity_class:  # types the config made public or internal are neither counted nor replaced
        ctx.scans = [[e for e in found if sov.counts(e.type)] for found in ctx.scans]
    counts = Counter(e.type for found in ctx.scans for e in found)
    if unread:
        floor.append(policy.uninspectable)
    ctx.floor = highest(floor)
    ctx.data_class = highest([ctx.floor, *(sov.class_of(t) for t in counts)])
    ctx.entity_counts = dict(counts)
    found_text = ", ".join(f"{t}×{n}" for t, n in sorted(counts.items())) or "no entity"
    if ctx.declared_class is not None:
        found_text += f"; declared {floor[1]} by the client"
    if unread:
        found_text += f"; cannot inspect {unread[0]}" + (f" and {len(unread) - 1} more"
                                                         if len(unread) > 1 else "")
    ctx.decide("classify", ctx.data_class, found_text)
    ctx.class_reason = found_text if RANK[ctx.data_class] > RANK[policy.default_class] else ""
