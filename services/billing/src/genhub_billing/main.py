"""Composition root: settings → runtime → Kafka handlers, sweeps, internal HTTP API."""

from fastapi import FastAPI
from genhub_platform.runtime import build_runtime, create_service_app

from genhub_billing.config import Settings
from genhub_billing.handlers import http, kafka
from genhub_billing.handlers.background import hold_sweeper, lot_sweeper, plan_scheduler


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    runtime = build_runtime(settings)
    kafka.register(runtime, settings)
    runtime.background.extend(
        [
            hold_sweeper(runtime, settings),
            lot_sweeper(runtime, settings),
            plan_scheduler(runtime, settings),
        ]
    )
    return create_service_app(runtime, title="genhub billing", routers=[http.router])
