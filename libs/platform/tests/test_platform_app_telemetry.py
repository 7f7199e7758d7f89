"""create_service_app's request spans: FastAPI's native request span only when the runtime's
tracer provider records spans (an exporter is configured) or the service asks for it; without
it every request still runs in a trace context of its own — the caller's `traceparent`
continued, or a new trace — so logs and outbox rows (`propagate.inject`) carry trace ids."""

from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from genhub_platform.runtime import (
    RequestTraceContext,
    Runtime,
    create_service_app,
    spans_recorded,
)
from genhub_platform.settings import PlatformSettings
from opentelemetry import propagate, trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"

router = APIRouter()


@router.get("/context")
async def current_context() -> dict[str, Any]:
    """What a handler sees: the current span and the headers an outbox row would carry."""
    span = trace.get_current_span()
    context = span.get_span_context()
    carried: dict[str, str] = {}
    propagate.inject(carried)
    return {
        "valid": context.is_valid,
        "trace_id": f"{context.trace_id:032x}",
        "span_id": f"{context.span_id:016x}",
        "recording": span.is_recording(),
        "traceparent": carried.get("traceparent"),
    }


def _app(provider: TracerProvider, request_spans: bool | None = None) -> FastAPI:
    # Only the settings and the tracer provider are used until the lifespan starts (which
    # httpx's ASGI transport does not run): no database, broker or relay is needed.
    runtime = Runtime(
        settings=PlatformSettings(service_name="telemetry_test"),
        engine=None,  # type: ignore[arg-type]
        sessions=None,  # type: ignore[arg-type]
        broker=None,  # type: ignore[arg-type]
        relay=None,  # type: ignore[arg-type]
        consumer=None,  # type: ignore[arg-type]
        tracer_provider=provider,
    )
    return create_service_app(
        runtime, title="telemetry test", routers=[router], request_spans=request_spans
    )


async def _get(app: FastAPI, headers: dict[str, str] | None = None) -> dict[str, Any]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get("/context", headers=headers or {})
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def _recording() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()  # the SDK's default sampler, as with a collector configured
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def test_only_the_sdk_provider_that_drops_every_span_counts_as_not_recording() -> None:
    assert not spans_recorded(TracerProvider(sampler=ALWAYS_OFF))
    assert spans_recorded(TracerProvider())
    assert spans_recorded(trace.NoOpTracerProvider())


def test_a_callers_traceparent_is_continued_with_a_new_span() -> None:
    context = RequestTraceContext().context_for([(b"traceparent", TRACEPARENT.encode())])
    span = trace.get_current_span(context).get_span_context()
    assert f"{span.trace_id:032x}" == CALLER_TRACE
    assert f"{span.span_id:016x}" != CALLER_SPAN and not span.is_remote
    assert not span.trace_flags.sampled  # nothing is recorded here
    assert not span.trace_flags.random_trace_id  # the caller did not say its id is random


def test_a_request_without_one_starts_a_new_trace() -> None:
    contexts = [RequestTraceContext().context_for([(b"x-other", b"1")]) for _ in range(2)]
    spans = [trace.get_current_span(c).get_span_context() for c in contexts]
    assert all(s.is_valid and not s.trace_flags.sampled for s in spans)
    assert all(s.trace_flags.random_trace_id for s in spans)  # as the SDK marks its own ids
    assert spans[0].trace_id != spans[1].trace_id


async def test_without_an_exporter_request_spans_are_off_and_the_trace_still_continues() -> None:
    app = _app(TracerProvider(sampler=ALWAYS_OFF))  # what setup_tracing makes without one
    assert app.state.request_spans is False
    seen = await _get(app, {"traceparent": TRACEPARENT})
    assert seen["valid"] and not seen["recording"]
    assert seen["trace_id"] == CALLER_TRACE and seen["span_id"] != CALLER_SPAN
    assert seen["traceparent"] == f"00-{CALLER_TRACE}-{seen['span_id']}-00"
    first, second = await _get(app), await _get(app)  # no traceparent: new traces
    assert first["valid"] and second["valid"]
    assert first["trace_id"] != second["trace_id"]
    # Not sampled; flag 02: the trace id is random (W3C trace context level 2), as the SDK's.
    assert first["traceparent"] == f"00-{first['trace_id']}-{first['span_id']}-02"


async def test_with_a_recording_provider_fastapi_records_the_request_span() -> None:
    provider, exporter = _recording()
    app = _app(provider)
    assert app.state.request_spans is True
    seen = await _get(app, {"traceparent": TRACEPARENT})
    assert seen["recording"] and seen["trace_id"] == CALLER_TRACE
    [server] = [s for s in exporter.get_finished_spans() if s.kind is trace.SpanKind.SERVER]
    assert server.name == "GET /context"
    assert server.parent is not None and f"{server.parent.span_id:016x}" == CALLER_SPAN
    # The handler ran inside FastAPI's span (or a child of it), not a context of our own.
    recorded = {f"{s.context.span_id:016x}" for s in exporter.get_finished_spans()}
    assert seen["span_id"] in recorded


@pytest.mark.parametrize("provider_records", [True, False])
async def test_a_service_can_turn_request_spans_off_whatever_the_provider(
    provider_records: bool,
) -> None:
    provider, exporter = _recording() if provider_records else (TracerProvider(), None)
    app = _app(provider, request_spans=False)
    assert app.state.request_spans is False
    seen = await _get(app, {"traceparent": TRACEPARENT})
    assert seen["trace_id"] == CALLER_TRACE and not seen["recording"]
    if exporter is not None:
        assert exporter.get_finished_spans() == ()
