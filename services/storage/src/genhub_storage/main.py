"""Composition root: settings → runtime, object store, use cases, handlers, HTTP app."""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

from fastapi import FastAPI
from genhub_platform.objectstore import ObjectStore, ObjectStoreSettings
from genhub_platform.runtime import Runtime, build_runtime, create_service_app

from genhub_storage.adapters.blobs import BlobStore
from genhub_storage.adapters.repository import ObjectRepository
from genhub_storage.config import Settings
from genhub_storage.domain.images import ImageLimits
from genhub_storage.handlers import http, kafka
from genhub_storage.services import FileQueries, OutputPolicy, OutputProcessor

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    runtime = build_runtime(settings)
    store = ObjectStore(ObjectStoreSettings())
    blobs = BlobStore(store)

    processor = OutputProcessor(
        blobs,
        OutputPolicy(
            limits=ImageLimits(
                max_bytes=settings.max_output_bytes, max_pixels=settings.max_image_pixels
            ),
            retention_days=settings.output_retention_days,
        ),
    )
    kafka.register(runtime, processor)

    @contextlib.asynccontextmanager
    async def readers() -> AsyncIterator[ObjectRepository]:
        async with runtime.sessions() as session:
            yield ObjectRepository(session)

    queries = FileQueries(readers, blobs, timedelta(seconds=settings.presign_ttl_s))
    _add_object_store_readiness(runtime, blobs)
    app = create_service_app(runtime, title="genhub storage", routers=[http.build_router(queries)])
    _ensure_bucket_on_startup(app, store, settings.startup_timeout_s)
    return app


def _add_object_store_readiness(runtime: Runtime, blobs: BlobStore) -> None:
    """/readyz also reports object storage: storage can do nothing useful without it."""
    base_check = runtime.check_ready

    async def check_ready() -> dict[str, bool]:
        checks = await base_check()
        checks["object_store"] = await blobs.ping()
        return checks

    runtime.check_ready = check_ready  # type: ignore[method-assign]


def _ensure_bucket_on_startup(app: FastAPI, store: ObjectStore, timeout_s: float) -> None:
    """Create the bucket before consumers start; wait a little for MinIO, then fail loudly."""
    platform_lifespan = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(app_: FastAPI) -> AsyncIterator[Any]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            try:
                await store.ensure_bucket()
                break
            except Exception:
                if loop.time() >= deadline:
                    raise
                log.warning("object storage not ready; retrying", exc_info=True)
                await asyncio.sleep(1.0)
        async with platform_lifespan(app_) as state:
            yield state

    app.router.lifespan_context = lifespan
