"""The composition root every service starts from: settings → engine, broker, outbox relay.

A service's entry module calls `build_runtime(settings)`, registers its Kafka handlers on
`runtime.consumer`, and hands its HTTP routers to `create_service_app`.
"""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from fastapi import APIRouter, FastAPI
from faststream.kafka import KafkaBroker
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from genhub_platform.db import SessionFactory, make_engine, make_session_factory
from genhub_platform.errors import install_error_handlers
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
    setup_tracing(settings.service_name, settings.otel_exporter_otlp_endpoint)
    engine = make_engine(settings)
    sessions = make_session_factory(engine)
    broker = make_broker(settings)
    relay = OutboxRelay(
        sessions,
        BrokerPublisher(broker, topic_prefix=settings.kafka_topic_prefix, direct=True),
        poll_interval_s=settings.outbox_poll_interval_s,
    )
    runtime = Runtime(settings, engine, sessions, broker, relay, consumer=None)  # type: ignore[arg-type]
    runtime.consumer = EventConsumer(
        broker,
        group_id=settings.service_name,
        uow_factory=runtime.uow,
        max_attempts=settings.kafka_max_handler_attempts,
        topic_prefix=settings.kafka_topic_prefix,
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


def create_service_app(
    runtime: Runtime, *, title: str, routers: Sequence[APIRouter] = (), version: str = "0.1.0"
) -> FastAPI:
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

    app = FastAPI(title=title, version=version, lifespan=lifespan)
    app.state.runtime = runtime
    install_error_handlers(app)
    install_metrics(app, runtime.settings.service_name)
    app.include_router(probes_router(runtime.check_ready))
    for router in routers:
        app.include_router(router)
    return app
