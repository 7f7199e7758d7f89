"""Composition root: settings → runtime, object storage, providers, worker, handlers, app."""

from fastapi import FastAPI
from genhub_platform.objectstore import ObjectStore, ObjectStoreSettings
from genhub_platform.runtime import build_runtime, create_service_app

from genhub_orchestrator.adapters.providers import build_providers
from genhub_orchestrator.config import Settings
from genhub_orchestrator.handlers import http, kafka
from genhub_orchestrator.services.worker import RunWorker, WorkerOptions


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    runtime = build_runtime(settings)
    worker = RunWorker(
        runtime.uow,
        ObjectStore(ObjectStoreSettings()),
        build_providers(settings),
        WorkerOptions.from_settings(settings),
    )
    kafka.register(runtime, worker)
    runtime.background.append(worker.run_forever)  # ensures the bucket, then claims runs
    app = create_service_app(runtime, title="genhub orchestrator", routers=[http.router])
    app.state.worker = worker
    return app
