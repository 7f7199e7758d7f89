"""Composition root: settings → runtime, upstream clients, caches, Kafka handlers, routers."""

import asyncio
from datetime import timedelta

import httpx
from fastapi import FastAPI
from genhub_platform import gctune
from genhub_platform.kafka import BrokerPublisher
from genhub_platform.runtime import Runtime, build_runtime, create_service_app

from genhub_gateway import openapi_examples, services
from genhub_gateway.adapters.accept import JobAcceptor
from genhub_gateway.adapters.catalog import ModelCatalog, PriceCache
from genhub_gateway.adapters.keystore import KeyStore, admin_token_loader, db_loader
from genhub_gateway.adapters.pgpool import PgPool
from genhub_gateway.adapters.relay import PgOutboxRelay
from genhub_gateway.adapters.upstream import Upstreams
from genhub_gateway.adapters.urls import UrlChecker
from genhub_gateway.config import Settings
from genhub_gateway.handlers import admin, admin_proxies, fastpath, http, kafka, proxies
from genhub_gateway.handlers.deps import Gateway
from genhub_gateway.handlers.middleware import GatewayMiddleware


def build_gateway(
    settings: Settings, runtime: Runtime, transport: httpx.AsyncBaseTransport | None = None
) -> Gateway:
    upstreams = Upstreams.create(
        billing_url=settings.billing_url,
        orchestrator_url=settings.orchestrator_url,
        storage_url=settings.storage_url,
        notifier_url=settings.notifier_url,
        timeout_s=settings.upstream_timeout_s,
        transport=transport,
    )
    pool = PgPool(settings.async_database_url, max_size=settings.db_pool_size)
    # Rate-limit hits and job writes of concurrent requests share one group-committed
    # statement per micro-batch (adapters/accept.py).
    acceptor = JobAcceptor(pool)
    return Gateway(
        settings=settings,
        pool=pool,
        upstreams=upstreams,
        catalog=ModelCatalog(upstreams.orchestrator, ttl_s=settings.models_cache_ttl_s),
        prices=PriceCache(upstreams.billing, ttl_s=settings.models_cache_ttl_s),
        keys=KeyStore(db_loader(runtime.sessions), ttl_s=settings.auth_cache_ttl_s),
        admin_tokens=KeyStore(
            admin_token_loader(runtime.sessions), ttl_s=settings.auth_cache_ttl_s
        ),
        limiter=acceptor,
        acceptor=acceptor,
        urls=UrlChecker(allow_private=settings.allow_private_urls),
    )


def create_app(
    settings: Settings | None = None, *, upstream_transport: httpx.AsyncBaseTransport | None = None
) -> FastAPI:
    """`upstream_transport` lets tests answer for billing, orchestrator, storage and notifier."""
    settings = settings or Settings()  # the environment supplies GENHUB_ADMIN_TOKEN
    runtime = build_runtime(settings)
    if settings.project_events:
        kafka.register(runtime)
    gateway = build_gateway(settings, runtime, upstream_transport)
    # The relay reads the outbox on the accept path's asyncpg pool (adapters/relay.py) and
    # hands the rows straight to the Kafka producer (no per-message FastStream middleware:
    # the rows carry their trace context already), under the deployment's topic prefix.
    runtime.relay = PgOutboxRelay(
        gateway.pool,
        runtime.sessions,
        BrokerPublisher(runtime.broker, topic_prefix=settings.kafka_topic_prefix, direct=True),
        poll_interval_s=settings.outbox_poll_interval_s,
    )

    async def close_pools() -> None:
        # Runs for the app's lifetime; cancelled at shutdown, when it gives back the leased
        # rate-limit units and closes the HTTP and database pools.
        try:
            await asyncio.Event().wait()
        finally:
            await gateway.upstreams.http.aclose()
            await gateway.acceptor.stop()
            await gateway.pool.close()

    async def prune_idempotency_keys() -> None:
        # Expired keys are already ignored when claimed; this only keeps the table small.
        ttl = timedelta(seconds=settings.idempotency_ttl_s)
        while True:
            async with runtime.uow() as uow:
                pruned = await services.prune_idempotency_keys(uow, ttl, limit=1000)
            await asyncio.sleep(1 if pruned >= 1000 else 300)

    async def tune_gc() -> None:
        # Once: the app has started (imports, routes, pools, caches) when background loops run.
        gctune.tune_for_serving()

    runtime.background.append(tune_gc)
    runtime.background.append(close_pools)
    runtime.background.append(prune_idempotency_keys)
    runtime.background.append(gateway.acceptor.return_idle_leases_forever)
    # Without an exporter FastAPI's request spans are off and the platform gives each request
    # its trace context (genhub_platform.runtime): outbox rows still carry `traceparent`.
    app = create_service_app(
        runtime,
        title="genhub gateway",
        routers=[http.router, proxies.router, admin.router, admin_proxies.router],
    )
    app.state.gateway = gateway

    def body_limit(path: str) -> int:
        if path.startswith("/v1/uploads"):
            return settings.max_upload_bytes
        return settings.max_body_bytes

    app.add_middleware(GatewayMiddleware, limit_for=body_limit)
    # Ahead of the whole middleware stack: POST /v1/generate does what the layers do itself
    # and skips FastAPI's routing and dependency solving; anything unusual still goes
    # through the stack to the route (handlers/fastpath.py).
    route = fastpath.generate_route(http.router.routes)
    fastpath.install(app, route=route, max_body=lambda: body_limit(route.path))
    openapi_examples.install(app)
    return app
