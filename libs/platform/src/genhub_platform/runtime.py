"""The composition root every service starts from: settings → engine, broker, outbox relay.

A service's entry module calls `build_runtime(settings)`, registers its Kafka handlers on
`runtime.consumer`, and hands its HTTP routers to `create_service_app`.

Request spans: FastAPI's native OpenTelemetry request span is built, filled with attributes
and dropped on every request when nothing records it (the platform's set-up without an OTLP
exporter, tracing.py), which costs a small handler more than its own work. So
`create_service_app` turns it on only when the runtime's tracer provider records spans (or
as the caller says), and otherwise gives each request what it still needs from tracing
(`RequestTraceContextMiddleware`): a current span context — the caller's `traceparent`
continued, or a new trace — so logs carry trace ids and outbox rows (and so Kafka events)
carry `traceparent`, as the SDK's non-recording span would.
"""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field

from fastapi import APIRouter, FastAPI
from faststream.kafka import KafkaBroker
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.types import ASGIApp, Receive, Scope, Send

from genhub_platform.db import SessionFactory, make_engine, make_session_factory
from genhub_platform.errors import install_error_handlers
from genhub_platform.fetchpace import FetchTuning
from genhub_platform.http import install_metrics, probes_router
from genhub_platform.kafka import BrokerPublisher, EventConsumer, ensure_topics, make_broker
from genhub_platform.logging import setup_logging
from genhub_platform.outbox import OutboxRelay
from genhub_platform.settings import PlatformSettings
from genhub_platform.tracing import setup_tracing
from genhub_platform.uow import UnitOfWork

log = logging.getLogger(__name__)

BackgroundLoop = Callable[[], Awaitable[None]]


@dataclass
class Runtime:
    settings: PlatformSettings
    engine: AsyncEngine
    sessions: SessionFactory
    broker: KafkaBroker
    relay: OutboxRelay
    consumer: EventConsumer
    background: list[BackgroundLoop] = field(default_factory=list)
    # What `setup_tracing` made of the settings; None: the global provider.
    tracer_provider: trace.TracerProvider | None = None

    def uow(self) -> UnitOfWork:
        return UnitOfWork(self.sessions, on_commit=self.relay.wake)

    async def check_ready(self) -> dict[str, bool]:
        checks = {"database": False, "kafka": False}
        with contextlib.suppress(Exception):
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
            checks["database"] = True
        with contextlib.suppress(Exception):
            checks["kafka"] = await self.broker.ping(timeout=2.0)
        return checks


def build_runtime(settings: PlatformSettings) -> Runtime:
    setup_logging(settings.service_name, settings.log_level, settings.log_format)
    tracer_provider = setup_tracing(settings.service_name, settings.otel_exporter_otlp_endpoint)
    engine = make_engine(settings)
    sessions = make_session_factory(engine)
    broker = make_broker(settings)
    relay = OutboxRelay(
        sessions,
        BrokerPublisher(broker, topic_prefix=settings.kafka_topic_prefix, direct=True),
        poll_interval_s=settings.outbox_poll_interval_s,
    )
    runtime = Runtime(
        settings,
        engine,
        sessions,
        broker,
        relay,
        consumer=None,  # type: ignore[arg-type]
        tracer_provider=tracer_provider,
    )
    runtime.consumer = EventConsumer(
        broker,
        group_id=settings.service_name,
        uow_factory=runtime.uow,
        max_attempts=settings.kafka_max_handler_attempts,
        topic_prefix=settings.kafka_topic_prefix,
        fetch=FetchTuning(settings.kafka_fetch_min_bytes, settings.kafka_fetch_max_wait_ms),
        busy_from_per_s=settings.kafka_fetch_busy_from_per_s,
    )
    return runtime


async def _supervise(name: str, loop: BackgroundLoop) -> None:
    """Keep a background loop alive: log and restart it if it crashes."""
    while True:
        try:
            await loop()
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("background loop %s crashed; restarting", name)
            await asyncio.sleep(1.0)


def spans_recorded(provider: object) -> bool:
    """False when the provider is the SDK's with the ALWAYS_OFF sampler (what `setup_tracing`
    sets up without an exporter: every span dropped); anything else (another provider, a real
    sampler) is taken to record."""
    return not (isinstance(provider, TracerProvider) and provider.sampler is ALWAYS_OFF)


class RequestTraceContext:
    """The trace context of a request when no request span is made."""

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


class RequestTraceContextMiddleware:
    """Plain ASGI: each HTTP request runs in `RequestTraceContext`'s context (unless a span is
    already current)."""

    def __init__(self, app: ASGIApp, *, contexts: RequestTraceContext | None = None) -> None:
        self.app = app
        self.contexts = contexts or RequestTraceContext()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or trace.get_current_span().get_span_context().is_valid:
            await self.app(scope, receive, send)
            return
        token = otel_context.attach(self.contexts.context_for(scope["headers"]))
        try:
            await self.app(scope, receive, send)
        finally:
            otel_context.detach(token)


def create_service_app(
    runtime: Runtime,
    *,
    title: str,
    routers: Sequence[APIRouter] = (),
    version: str = "0.1.0",
    request_spans: bool | None = None,
) -> FastAPI:
    """The service's FastAPI app: lifespan (topics, broker, relay, background loops), error
    handlers, metrics, probes, `routers`.

    `request_spans`: FastAPI's native request spans. None (the default): on exactly when the
    runtime's tracer provider records spans (an OTLP exporter is configured). Off: each
    request runs in a trace context of its own instead (`RequestTraceContextMiddleware`,
    outermost of the platform's layers). The choice is on `app.state.request_spans`.
    """
    provider = runtime.tracer_provider or trace.get_tracer_provider()
    if request_spans is None:
        request_spans = spans_recorded(provider)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await ensure_topics(
            runtime.settings.kafka_bootstrap_servers, prefix=runtime.settings.kafka_topic_prefix
        )
        runtime.consumer.bind()
        await runtime.broker.start()
        loops = [runtime.relay.run_forever, *runtime.background]
        tasks = [asyncio.create_task(_supervise(fn.__qualname__, fn)) for fn in loops]
        log.info("%s started", runtime.settings.service_name)
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await runtime.broker.stop()
            await runtime.engine.dispose()

    app = FastAPI(
        title=title,
        version=version,
        lifespan=lifespan,
        # FastAPI's own OpenTelemetry metrics and logs stay off: the services' metrics are
        # Prometheus' (genhub_platform.http) and their logs go through `logging`, and with
        # them on FastAPI looks up the global meter and logger providers on every request.
        telemetry={
            "tracing": request_spans,
            "tracer_provider": provider,
            "metrics": False,
            "logs": False,
        },
    )
    app.state.runtime = runtime
    app.state.request_spans = request_spans
    install_error_handlers(app)
    install_metrics(app, runtime.settings.service_name)
    if not request_spans:
        app.add_middleware(RequestTraceContextMiddleware)
    app.include_router(probes_router(runtime.check_ready))
    for router in routers:
        app.include_router(router)
    return app
