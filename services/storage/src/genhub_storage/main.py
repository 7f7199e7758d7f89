"""Composition root: settings → runtime, object store, use cases, handlers, HTTP app."""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from fastapi import FastAPI
from genhub_platform.db import SessionFactory
from genhub_platform.netguard import UrlGuard
from genhub_platform.objectstore import ObjectStore, ObjectStoreSettings
from genhub_platform.runtime import Runtime, build_runtime, create_service_app

from genhub_storage.adapters.blobs import BlobStore
from genhub_storage.adapters.remote import RemoteFetcher
from genhub_storage.adapters.repository import ObjectRepository
from genhub_storage.config import Settings
from genhub_storage.domain.images import ImageLimits
from genhub_storage.handlers import http, kafka
from genhub_storage.services import (
    FileQueries,
    InputPolicy,
    InputStore,
    Lifecycle,
    OutputPolicy,
    OutputProcessor,
    SpecRecorder,
)
from genhub_storage.services.lifecycle import LifecyclePolicy

log = logging.getLogger(__name__)


def repositories(sessions: SessionFactory) -> Any:
    """`async with repos() as repo`: one session per use; writers call repo.commit()."""

    @contextlib.asynccontextmanager
    async def repos() -> AsyncIterator[ObjectRepository]:
        async with sessions() as session:
            yield ObjectRepository(session)

    return repos


def build_lifecycle(settings: Settings, sessions: SessionFactory, blobs: BlobStore) -> Lifecycle:
    return Lifecycle(
        repositories(sessions),
        blobs,
        LifecyclePolicy(staging_max_age=timedelta(hours=settings.staging_max_age_hours)),
    )


@dataclass
class _Wiring:
    store: ObjectStore
    blobs: BlobStore


def _object_storage() -> _Wiring:
    settings = ObjectStoreSettings()
    store = ObjectStore(settings)
    return _Wiring(store, BlobStore(store, settings))


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    runtime = build_runtime(settings)
    wiring = _object_storage()
    blobs = wiring.blobs
    repos = repositories(runtime.sessions)

    processor = OutputProcessor(
        blobs,
        OutputPolicy(
            limits=ImageLimits(
                max_bytes=settings.max_output_bytes, max_pixels=settings.max_image_pixels
            ),
            retention_days=settings.output_retention_days,
            spec_wait=timedelta(seconds=settings.spec_wait_s),
        ),
    )
    kafka.register(runtime, processor, SpecRecorder())

    queries = FileQueries(repos, blobs, timedelta(seconds=settings.presign_ttl_s))
    fetcher = RemoteFetcher(
        UrlGuard(allow_private=settings.allow_private_urls, require_https=settings.require_https),
        timeout_s=settings.fetch_timeout_s,
        max_redirects=settings.fetch_max_redirects,
    )
    inputs = InputStore(
        repos,
        blobs,
        fetcher,
        InputPolicy(
            limits=ImageLimits(
                max_bytes=settings.max_upload_bytes, max_pixels=settings.max_upload_pixels
            ),
            retention=timedelta(hours=settings.input_retention_hours),
        ),
    )
    lifecycle = build_lifecycle(settings, runtime.sessions, blobs)
    if settings.sweep_interval_s > 0:
        runtime.background.append(_every(settings.sweep_interval_s, lifecycle))
    _add_object_store_readiness(runtime, blobs)
    app = create_service_app(
        runtime,
        title="genhub storage",
        routers=[http.build_router(queries, inputs, lifecycle)],
    )
    _ensure_bucket_on_startup(app, wiring.store, settings.startup_timeout_s)
    return app


def _every(interval_s: float, lifecycle: Lifecycle) -> Any:
    async def loop() -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                await lifecycle.sweep()
            except Exception:  # the next pass tries again
                log.exception("sweep failed")

    return loop


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
