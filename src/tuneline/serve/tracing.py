"""Optional OpenTelemetry spans: one per HTTP request, one per generation (serve.tracing)."""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from tuneline._optional import require

TRACER_NAME = "tuneline.serve"


def configure_tracing() -> None:
    """Install an SDK tracer provider unless the process already has one.

    Spans go to OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is set (and the OTLP exporter package is
    installed), else to stderr as JSON.
    """
    trace = require("opentelemetry.trace")
    if type(trace.get_tracer_provider()).__name__ != "ProxyTracerProvider":
        return  # the application (or a test) configured its own
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    provider = TracerProvider(resource=Resource.create({"service.name": "tuneline"}))
    exporter: Any = ConsoleSpanExporter(out=sys.stderr)
    if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)


def request_span(method: str, path: str, request_id: str) -> Any:
    """A span around one HTTP request (a context manager)."""
    trace = require("opentelemetry.trace")
    return trace.get_tracer(TRACER_NAME).start_as_current_span(
        f"{method} {path}", kind=trace.SpanKind.SERVER,
        attributes={"http.request.method": method, "url.path": path,
                    "tuneline.request_id": request_id})


def record_generation(started_perf: float, attributes: dict[str, Any]) -> None:
    """A finished span for one generation, from its start (a perf_counter reading) to now."""
    trace = require("opentelemetry.trace")
    now_ns = time.time_ns()
    start_ns = now_ns - int((time.perf_counter() - started_perf) * 1e9)
    span = trace.get_tracer(TRACER_NAME).start_span("generation", start_time=start_ns,
                                                     attributes=attributes)
    span.end(end_time=now_ns)
