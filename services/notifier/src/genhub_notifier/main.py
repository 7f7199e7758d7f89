"""Composition root: settings → runtime, adapters, Kafka handlers, dispatcher loop, HTTP app."""

from datetime import timedelta

from fastapi import FastAPI
from genhub_platform.netguard.guard import UrlGuard
from genhub_platform.runtime import build_runtime, create_service_app

from genhub_notifier.adapters.secretbox import SecretBox
from genhub_notifier.adapters.storage_client import StorageClient
from genhub_notifier.adapters.webhook_sender import WebhookSender
from genhub_notifier.config import Settings
from genhub_notifier.domain.retry import RetrySchedule
from genhub_notifier.handlers import http, kafka
from genhub_notifier.services.dispatcher import DispatchConfig, Dispatcher


def dispatch_config(settings: Settings) -> DispatchConfig:
    return DispatchConfig(
        schedule=RetrySchedule.parse(settings.retry_schedule_s, settings.retry_jitter),
        max_in_flight=settings.max_in_flight,
        lease=timedelta(seconds=settings.lease_s),
        poll_s=settings.dispatch_poll_s,
        subscription_wait=timedelta(seconds=settings.subscription_wait_s),
        subscription_recheck=timedelta(seconds=settings.subscription_recheck_s),
    )


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    box = SecretBox.from_setting(settings.encryption_key)  # fails fast: no key, no start
    runtime = build_runtime(settings)
    kafka.register(runtime)
    dispatcher = Dispatcher(
        runtime.sessions,
        config=dispatch_config(settings),
        guard=UrlGuard(
            allow_private=settings.allow_private_webhooks, require_https=settings.require_https
        ),
        sender=WebhookSender(
            timeout_s=settings.webhook_timeout_s, max_connections=settings.max_in_flight
        ),
        storage=StorageClient(settings.storage_url),
        secrets=box,
    )
    runtime.background.append(dispatcher.run_forever)
    return create_service_app(runtime, title="genhub notifier", routers=[http.router(box)])
