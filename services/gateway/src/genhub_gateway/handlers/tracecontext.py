"""The request's trace context when spans are not recorded (no OTLP exporter configured).

FastAPI's native request span would then be built, filled with attributes and dropped on every
request, which costs the hot path more than authenticating the request. With it turned off
(main.create_app), this gives each request what it still needs from tracing: a current span
context — the caller's `traceparent` continued, or a new trace — so logs carry trace ids and
the outbox rows (and so the Kafka events) carry `traceparent`, as the SDK's non-recording span
would, at a fraction of the cost.
"""

from collections.abc import Iterable

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags


def spans_recorded(provider: object) -> bool:
    """False when the SDK provider drops every span (the platform's set-up without an
    exporter); anything else (another provider, a real sampler) is taken to record."""
    return not (isinstance(provider, TracerProvider) and provider.sampler is ALWAYS_OFF)


class RequestTraceContext:
    def __init__(self, ids: IdGenerator | None = None) -> None:
        self._ids = ids or RandomIdGenerator()

    def context_for(self, headers: Iterable[tuple[bytes, bytes]]) -> Context:
        """A context whose current span is a new non-recording span: a child of the
        caller's `traceparent` (and `tracestate`) when sent, else the root of a new trace."""
        carrier = {
            name.decode("latin-1"): value.decode("latin-1")
            for name, value in headers
            if name in (b"traceparent", b"tracestate")
        }
        parent = propagate.extract(carrier) if carrier else Context()
        remote = trace.get_current_span(parent).get_span_context()
        if remote.is_valid:
            trace_id, random, state = (
                remote.trace_id,
                remote.trace_flags.random_trace_id,
                remote.trace_state,
            )
        else:
            trace_id, random, state = (
                self._ids.generate_trace_id(),
                self._ids.is_trace_id_random(),
                None,
            )
        flags = TraceFlags(TraceFlags.RANDOM_TRACE_ID if random else TraceFlags.DEFAULT)
        span = NonRecordingSpan(
            SpanContext(
                trace_id,
                self._ids.generate_span_id(),
                is_remote=False,
                trace_flags=flags,
                trace_state=state,
            )
        )
        return trace.set_span_in_context(span, parent)
