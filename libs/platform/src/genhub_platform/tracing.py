"""OpenTelemetry tracer set-up. Trace context crosses Kafka in W3C `traceparent` headers
(FastStream's telemetry middleware on consume, the outbox row's captured headers on publish)."""

import importlib
import logging

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

log = logging.getLogger(__name__)


def setup_tracing(service: str, otlp_endpoint: str | None = None) -> TracerProvider:
    provider = TracerProvider(resource=Resource.create({"service.name": f"genhub-{service}"}))
    if otlp_endpoint:
        # The OTLP exporter is an optional install: deployments with a collector add it.
        try:
            module = importlib.import_module(
                "opentelemetry.exporter.otlp.proto.http.trace_exporter"
            )
            provider.add_span_processor(
                BatchSpanProcessor(module.OTLPSpanExporter(endpoint=f"{otlp_endpoint}/v1/traces"))
            )
        except ImportError:
            log.warning(
                "OTEL_EXPORTER_OTLP_ENDPOINT set but opentelemetry-exporter-otlp is missing"
            )
    trace.set_tracer_provider(provider)
    return provider
