"""OpenTelemetry spans with the GenAI semantic conventions' attributes, exported over
OTLP/HTTP in batches; made only when ``metering.telemetry.otlp_endpoint`` is set.

One span per request, made when it ends (its start is back-dated to the arrival), so the
request path carries no span object. Never message content: that is opt-in and personal.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

from fabrique.config import TelemetryConfig

if TYPE_CHECKING:
    from fabrique.metering.meter import Meter
    from fabrique.pipeline.context import RequestContext

_OPERATION = {"chat/completions": "chat", "completions": "text_completion",
              "embeddings": "embeddings"}


class Tracing:
    def __init__(self, config: TelemetryConfig) -> None:
        assert config.otlp_endpoint is not None
        self.provider = TracerProvider(resource=Resource.create(
            {"service.name": config.service_name}))
        # Bounded: spans beyond the queue are dropped, never held in memory.
        self.provider.add_span_processor(BatchSpanProcessor(
            OTLPSpanExporter(endpoint=config.otlp_endpoint, timeout=5), max_queue_size=4096,
            schedule_delay_millis=1000))
        self.tracer = self.provider.get_tracer("fabrique")
        # perf_counter → epoch nanoseconds, fixed once.
        self._offset_ns = time.time_ns() - int(time.perf_counter() * 1e9)

    def span(self, ctx: RequestContext, meter: Meter) -> None:
        operation = _OPERATION.get(ctx.endpoint, ctx.endpoint)
        start = self._offset_ns + int(ctx.received * 1e9)
        dep = ctx.deployment
        attributes: dict[str, str | int | float | bool] = {
            "gen_ai.operation.name": operation, "gen_ai.request.model": ctx.model or "",
            "gen_ai.provider.name": dep.provider.name if dep is not None else "",
            "gen_ai.usage.input_tokens": meter.input_tokens,
            "gen_ai.usage.output_tokens": meter.output_tokens,
            "fabrique.request_id": ctx.request_id, "fabrique.tenant": ctx.principal.tenant,
            "fabrique.outcome": ctx.outcome, "fabrique.cost_eur": meter.cost_eur,
            "fabrique.usage_estimated": meter.estimated, "http.response.status_code": ctx.status,
        }
        if dep is not None:
            attributes["fabrique.deployment"] = dep.name
            attributes["gen_ai.response.model"] = dep.upstream_model
        if isinstance(ctx.body.get("max_tokens"), int):
            attributes["gen_ai.request.max_tokens"] = ctx.body["max_tokens"]
        if meter.energy_source:
            attributes.update({"fabrique.energy_wh": meter.energy_wh,
                               "fabrique.co2e_g": meter.co2e_g,
                               "fabrique.energy_source": meter.energy_source})
        if meter.ttft_s is not None:
            attributes["gen_ai.server.time_to_first_token"] = meter.ttft_s
        span = self.tracer.start_span(f"{operation} {ctx.model}".strip(), kind=SpanKind.SERVER,
                                      start_time=start, attributes=attributes)
        if ctx.status >= 400 or ctx.outcome not in ("ok", "done"):
            span.set_attribute("error.type", ctx.outcome)
            span.set_status(Status(StatusCode.ERROR))
        span.end(end_time=start + int(meter.latency_s * 1e9))

    def close(self) -> None:
        self.provider.shutdown()
