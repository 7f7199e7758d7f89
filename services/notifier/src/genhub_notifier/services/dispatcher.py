"""The delivery loop: lease due deliveries, sign and send them in parallel, record each attempt.

No row lock is held while a webhook is in flight: a short transaction leases rows
(`FOR UPDATE SKIP LOCKED`, then `next_attempt_at = now + lease`), the send runs with no
database connection, and a second short transaction records the attempt and the new state —
only if the lease is still ours. Several replicas share the work; a killed replica's leased
rows become due again when the lease runs out.
"""

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

from genhub_platform.db import SessionFactory
from genhub_platform.netguard.guard import ResolutionFailed, UrlGuard, UrlRefused
from prometheus_client import Counter, Histogram

from genhub_notifier.adapters import repository as repo
from genhub_notifier.adapters.secretbox import ConfigError, SecretBox
from genhub_notifier.adapters.storage_client import StorageClient, StorageUnavailable
from genhub_notifier.adapters.tables import Delivery, DeliveryAttempt, JobSubscription
from genhub_notifier.adapters.webhook_sender import WebhookSender
from genhub_notifier.domain.body import WebhookData, build_body
from genhub_notifier.domain.delivery import (
    DeliveryStatus,
    Transition,
    WebhookEventType,
    resolve_waiting,
)
from genhub_notifier.domain.response import Outcome, decide, error_text
from genhub_notifier.domain.retry import RetrySchedule
from genhub_notifier.domain.signing import signed_headers

log = logging.getLogger(__name__)

ATTEMPTS = Counter("genhub_webhook_attempts_total", "Webhook delivery attempts", ["outcome"])
FINISHED = Counter(
    "genhub_webhook_deliveries_total", "Deliveries that reached a final state", ["status"]
)
LATENCY = Histogram(
    "genhub_webhook_latency_seconds",
    "Webhook endpoint response time",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15),
)


class _RetryLater(Exception):
    """A failure before the POST (no secret, storage, DNS) that a later attempt may not hit."""


@dataclass(frozen=True)
class DispatchConfig:
    schedule: RetrySchedule
    max_in_flight: int = 32
    lease: timedelta = timedelta(seconds=60)
    poll_s: float = 0.5
    subscription_wait: timedelta = timedelta(minutes=15)
    subscription_recheck: timedelta = timedelta(seconds=5)


class Dispatcher:
    def __init__(
        self,
        sessions: SessionFactory,
        *,
        config: DispatchConfig,
        guard: UrlGuard,
        sender: WebhookSender,
        storage: StorageClient,
        secrets: SecretBox,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._sessions = sessions
        self._config = config
        self._guard = guard
        self._sender = sender
        self._storage = storage
        self._secrets = secrets
        self._clock = clock
        self._rand = rand
        self._token = uuid4()  # this process's lease mark
        self._in_flight: dict[asyncio.Task[None], str] = {}

    async def run_forever(self) -> None:
        try:
            while True:
                try:
                    claimed = await self._fill_slots()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("claiming deliveries failed; retrying")
                    claimed = 0
                if len(self._in_flight) >= self._config.max_in_flight:
                    await asyncio.wait(
                        self._in_flight,
                        timeout=self._config.poll_s,
                        return_when=asyncio.FIRST_COMPLETED,
                    )
                elif claimed == 0:
                    await asyncio.sleep(self._config.poll_s)
        except asyncio.CancelledError:
            await self._shutdown()
            raise

    async def drain(self) -> int:
        """Claim and finish everything due now (tests and one-off runs); returns rows handled."""
        handled = 0
        while claimed := await self._fill_slots():
            handled += claimed
            await asyncio.gather(*self._in_flight)
        return handled

    async def aclose(self) -> None:
        await self._sender.aclose()
        await self._storage.aclose()

    async def _fill_slots(self) -> int:
        free = self._config.max_in_flight - len(self._in_flight)
        if free <= 0:
            return 0
        now = self._clock()
        async with self._sessions() as session, session.begin():
            rows = await repo.claim_due(session, now, free, now + self._config.lease, self._token)
        for row in rows:
            task = asyncio.create_task(self._process(row))
            self._in_flight[task] = row.id
            task.add_done_callback(self._in_flight.pop)
        return len(rows)

    async def _shutdown(self) -> None:
        ids = list(self._in_flight.values())
        for task in list(self._in_flight):
            task.cancel()
        await asyncio.gather(*self._in_flight, return_exceptions=True)
        if ids:
            with contextlib.suppress(Exception):
                async with self._sessions() as session, session.begin():
                    await repo.release_claims(session, self._token, ids, self._clock())
        with contextlib.suppress(Exception):
            await self.aclose()

    async def _process(self, delivery: Delivery) -> None:
        try:
            await self._process_unguarded(delivery)
        except asyncio.CancelledError:
            raise
        except Exception:
            # The lease runs out and the row is retried; the receiver dedupes on webhook-id.
            log.exception("delivery %s failed unexpectedly", delivery.id)

    async def _process_unguarded(self, delivery: Delivery) -> None:
        async with self._sessions() as session:
            subscription = await repo.get_subscription(session, delivery.app_id, delivery.job_id)
            secret_row = await repo.get_secret(session, delivery.app_id)
            encrypted_secret = secret_row.secret_encrypted if secret_row else None

        if delivery.status == DeliveryStatus.WAITING_SUBSCRIPTION:
            now = self._clock()
            step = resolve_waiting(
                subscription_known=subscription is not None,
                webhook_url=subscription.webhook_url if subscription else None,
                created_at=delivery.created_at,
                now=now,
                max_wait=self._config.subscription_wait,
                recheck=self._config.subscription_recheck,
            )
            if step.status is not DeliveryStatus.PENDING:
                error = "no job.requested seen in time" if subscription is None else None
                await self._save(delivery, step, now, last_error=error)
                return
        if subscription is None or not subscription.webhook_url:
            await self._save(delivery, Transition(DeliveryStatus.NO_ENDPOINT, None), self._clock())
            return
        await self._attempt(delivery, subscription, encrypted_secret)

    async def _attempt(
        self, delivery: Delivery, subscription: JobSubscription, encrypted_secret: str | None
    ) -> None:
        url = subscription.webhook_url or ""
        attempt_no = delivery.attempt_count + 1
        started = self._clock()
        latency_ms: int | None = None
        excerpt: str | None = None
        send_error: str | None = None
        try:
            target = await self._guard.check(url)
            if encrypted_secret is None:
                raise _RetryLater("no signing secret for this app")
            try:
                secret = self._secrets.decrypt(encrypted_secret)
            except ConfigError as exc:  # key removed from NOTIFIER_ENCRYPTION_KEY: fixable
                raise _RetryLater(
                    "signing secret cannot be decrypted with the configured keys"
                ) from exc
            body = await self._body(delivery, subscription)
            headers = signed_headers(secret, delivery.id, int(started.timestamp()), body)
            result = await self._sender.post(target, headers, body)
            latency_ms, excerpt, send_error = (
                result.latency_ms,
                result.response_excerpt,
                result.error,
            )
            LATENCY.observe(result.latency_ms / 1000)
            outcome = Outcome(status_code=result.status_code, retry_after=result.retry_after)
        except UrlRefused as exc:
            outcome, send_error = Outcome(refused=True), f"{exc.code}: {exc.message}"
        except (_RetryLater, ResolutionFailed, StorageUnavailable) as exc:
            outcome, send_error = Outcome(), str(exc)

        now = self._clock()
        decision = decide(outcome, attempt_no, self._config.schedule, now, self._rand)
        status_code = outcome.status_code
        error = error_text(outcome, decision, send_error)
        step = Transition(decision.status, decision.next_attempt_at)
        attempt = DeliveryAttempt(
            delivery_id=delivery.id,
            attempt_no=attempt_no,
            url=url,
            started_at=started,
            status_code=status_code,
            latency_ms=latency_ms,
            response_excerpt=excerpt,
            error=error,
        )
        ATTEMPTS.labels(decision.attempt_outcome.value).inc()
        log.info(
            "webhook attempt",
            extra={
                "delivery_id": delivery.id,
                "job_id": str(delivery.job_id),
                "app_id": str(delivery.app_id),
                "attempt": attempt_no,
                "status_code": status_code,
                "latency_ms": latency_ms,
                "outcome": decision.attempt_outcome.value,
                "next_status": step.status.value,
                "reason": decision.reason.value,
            },
        )
        await self._save(
            delivery,
            step,
            now,
            attempt=attempt,
            attempt_count=attempt_no,
            last_error=error,
            url=url,
        )

    async def _body(self, delivery: Delivery, subscription: JobSubscription) -> bytes:
        event_type = WebhookEventType(delivery.event_type)
        data = delivery.event_data
        outputs = (
            await self._storage.job_files(delivery.app_id, delivery.job_id)
            if event_type is WebhookEventType.SUCCEEDED
            else []
        )
        return build_body(
            event_type,
            datetime.fromisoformat(data["occurred_at"]),
            WebhookData(
                job_id=str(delivery.job_id),
                user_id=str(data.get("user_id") or subscription.user_id),
                model=subscription.model,
                outputs=outputs,
                error=data.get("error"),
                metadata=subscription.job_metadata,
            ),
        )

    async def _save(
        self,
        delivery: Delivery,
        step: Transition,
        now: datetime,
        *,
        attempt: DeliveryAttempt | None = None,
        attempt_count: int | None = None,
        last_error: str | None = None,
        url: str | None = None,
    ) -> None:
        token: UUID = delivery.claim_token or self._token
        async with self._sessions() as session, session.begin():
            if attempt is not None:
                repo.add_attempt(session, attempt)
            kept = await repo.finish_claim(
                session,
                delivery.id,
                token,
                step,
                now,
                attempt_count=attempt_count,
                last_error=last_error,
                target_url=url,
            )
        if not kept:
            log.warning("lease on delivery %s expired before it finished", delivery.id)
        elif step.status.is_terminal:
            FINISHED.labels(step.status.value).inc()
