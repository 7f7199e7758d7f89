"""Composition root: settings → runtime, adapters, Kafka handlers, dispatcher loop, HTTP app."""

from datetime import timedelta

from fastapi import FastAPI
from genhub_platform.netguard.guard import UrlGuard
from genhub_platform.runtime import build_runtime, create_service_app

from genhub_notifier.adapters.http11 import Http11Sender
from genhub_notifier.adapters.repository import DUE_CHANNEL
from genhub_notifier.adapters.secretbox import SecretBox
from genhub_notifier.adapters.storage_client import StorageClient
from genhub_notifier.adapters.wakeup import listen_forever
from genhub_notifier.config import Settings
from genhub_notifier.domain.retry import RetrySchedule
from genhub_notifier.handlers import http, kafka
from genhub_notifier.services.dispatcher import DispatchConfig, Dispatcher
from genhub_notifier.services.endpoints import EndpointService
from genhub_notifier.services.events import EventRecorder
from genhub_notifier.services.fanout import FanoutConfig


def fanout_config(settings: Settings) -> FanoutConfig:
    schedule = RetrySchedule.parse(settings.retry_schedule, settings.retry_jitter)
    return FanoutConfig(
        subscription_wait=timedelta(seconds=settings.subscription_wait_s),
        settlement_wait=timedelta(seconds=settings.settlement_wait_s),
        recheck=timedelta(seconds=settings.subscription_recheck_s),
        first_attempt_delay=timedelta(seconds=schedule.initial_delay_s),
    )


def dispatch_config(settings: Settings) -> DispatchConfig:
    return DispatchConfig(
        schedule=RetrySchedule.parse(settings.retry_schedule, settings.retry_jitter),
        max_in_flight=settings.max_in_flight,
        max_in_flight_per_endpoint=settings.max_in_flight_per_endpoint,
        lease=timedelta(seconds=settings.lease_s),
        poll_s=settings.dispatch_poll_s,
        fanout=fanout_config(settings),
        disable_after=timedelta(seconds=settings.endpoint_disable_after_s),
    )


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    box = SecretBox.from_setting(settings.encryption_key)  # fails fast: no key, no start
    runtime = build_runtime(settings)
    guard = UrlGuard(
        allow_private=settings.allow_private_webhooks, require_https=settings.require_https
    )
    dispatcher = Dispatcher(
        runtime.sessions,
        config=dispatch_config(settings),
        guard=guard,
        sender=Http11Sender(
            timeout_s=settings.webhook_timeout_s,
            max_idle_per_host=settings.max_in_flight,
        ),
        storage=StorageClient(settings.storage_url),
        secrets=box,
    )
    # New deliveries are leased to this process when recorded and sent once committed.
    kafka.register(runtime, EventRecorder(fanout_config(settings), handoff=dispatcher))
    runtime.background.append(dispatcher.run_forever)

    async def listen_for_due_work() -> None:
        await listen_forever(settings.async_database_url, DUE_CHANNEL, dispatcher.wake)

    runtime.background.append(listen_for_due_work)
    rotation_grace = timedelta(seconds=settings.secret_rotation_grace_s)
    endpoints = EndpointService(box, guard, rotation_grace)
    return create_service_app(
        runtime,
        title="genhub notifier",
        routers=[http.router(box, endpoints, rotation_grace)],
    )
