"""What one request used and cost: ``Meter``, set on ``ctx.meter`` by the meter finisher.

Times are seconds from the request's arrival (``ctx.received``):

- ``ttft_s``: to the first event of the answering stream (streams only);
- ``tpot_s``: mean time between output tokens after the first (streams of 2+ tokens);
- ``latency_s``: to the end of the answer, when metering runs (before ``[DONE]``);
- ``queue_s``: spent in Fabrique before the answering call was sent, upstream calls that
  failed excluded (authentication, admission, scanning, retry back-off).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

import orjson

from fabrique.metering import tokens

if TYPE_CHECKING:
    from fabrique.pipeline.context import RequestContext


@dataclass(slots=True)
class Meter:
    input_tokens: int = 0
    output_tokens: int = 0
    estimated: bool = False  # counts are Fabrique's estimate (metering.tokens), not upstream's
    latency_s: float = 0.0
    ttft_s: float | None = None
    tpot_s: float | None = None
    queue_s: float | None = None
    cost_eur: float = 0.0
    energy_wh: float = 0.0
    co2e_g: float = 0.0
    embodied_g: float = 0.0  # manufacturing share, kept apart from co2e_g (operational)
    energy_source: str = ""  # "measured", "model", "ecologits", or "" when none is known
    region: str = ""

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def as_record(self) -> dict[str, Any]:
        """Every figure, for the audit ledger's record of the request (``asdict`` deep-copies
        and costs ten times more)."""
        return {name: getattr(self, name) for name in _FIELDS}

    def usage_fields(self) -> dict[str, Any]:
        """Extra fields for the answer's ``usage`` object (OpenAI clients ignore them)."""
        out: dict[str, Any] = {"cost_eur": round(self.cost_eur, 8)}
        if self.energy_source:
            out.update(energy_wh=round(self.energy_wh, 6), co2e_g=round(self.co2e_g, 6),
                       energy_source=self.energy_source)
        if self.estimated:
            out["estimated"] = True
        return out

    def headers(self) -> dict[str, str]:
        out = {"x-fabrique-cost-eur": f"{self.cost_eur:.8f}"}
        if self.energy_source:
            out["x-fabrique-energy-wh"] = f"{self.energy_wh:.6f}"
            out["x-fabrique-co2e-g"] = f"{self.co2e_g:.6f}"
            out["x-fabrique-energy-source"] = self.energy_source
        if self.estimated:
            out["x-fabrique-usage-estimated"] = "true"
        return out


_FIELDS = tuple(f.name for f in fields(Meter))


def measure(ctx: RequestContext) -> Meter:
    """Tokens and timings of a finished request (cost and energy are added by the caller)."""
    now = time.perf_counter()
    meter = Meter(latency_s=now - ctx.received)
    if ctx.deployment is None or not ctx.attempts:
        return meter  # refused or failed before any answer: nothing was generated
    answering = ctx.attempts[-1].seconds
    meter.queue_s = max(0.0, ctx.upstream_started - ctx.received - (ctx.upstream_s - answering))
    usage = ctx.usage
    if usage and isinstance(usage.get("prompt_tokens"), int):
        meter.input_tokens = usage["prompt_tokens"]
        completion = usage.get("completion_tokens")
        meter.output_tokens = completion if isinstance(completion, int) else 0
    else:
        meter.estimated = True
        meter.input_tokens = tokens.input_tokens(ctx.endpoint, ctx.body)
        meter.output_tokens = ctx.chunks if ctx.stream else _answer_tokens(ctx)
    if ctx.stream:
        first = ctx.upstream_started + answering
        meter.ttft_s = first - ctx.received
        if meter.output_tokens > 1:
            meter.tpot_s = (now - first) / (meter.output_tokens - 1)
    return meter


def _answer_tokens(ctx: RequestContext) -> int:
    body = ctx.upstream.body if ctx.upstream is not None else None
    if not body or ctx.endpoint == "embeddings":
        return 0
    try:
        return tokens.answer_tokens(orjson.loads(body))
    except orjson.JSONDecodeError:
        return 0
