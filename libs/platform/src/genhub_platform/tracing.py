"""OpenTelemetry tracer set-up. Trace context crosses Kafka in W3C `traceparent` headers
(FastStream's telemetry middleware on consume, the outbox row's captured headers on publish).

Without an exporter spans are not recorded (sampler ALWAYS_OFF): they would be built, filled
with attributes and thrown away on every request and message, which costs more CPU than a
small handler. Trace and span ids still exist, so logs carry them and `traceparent` still
crosses HTTP and Kafka (with the "not sampled" flag)."""

import importlib
import logging
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

log = logging.getLogger(__name__)


def setup_tracing(service: str, otlp_endpoint: str | None = None) -> TracerProvider:
    exporter = _otlp_exporter(otlp_endpoint) if otlp_endpoint else None
    provider = TracerProvider(
        resource=Resource.create({"service.name": f"genhub-{service}"}),
        # With a collector: the SDK's default sampler (OTEL_TRACES_SAMPLER, else every trace).
        sampler=None if exporter is not None else ALWAYS_OFF,
    )
    if exporter is not None:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return provider


def _otlp_exporter(otlp_endpoint: str) -> Any | None:
    # The OTLP exporter is an optional install: deployments with a collector add it.
    try:
        module = importlib.import_module("opentelemetry.exporter.otlp.proto.http.trace_exporter")
    except ImportError:
        log.warning("OTEL_EXPORTER_OTLP_ENDPOINT set but opentelemetry-exporter-otlp is missing")
        return None
    return module.OTLPSpanExporter(endpoint=f"{otlp_endpoint}/v1/traces")
