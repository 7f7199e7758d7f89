"""The delivery loop: fan out waiting messages, lease due deliveries, sign and send them in
parallel (bounded per endpoint), record each attempt and the endpoint's health.

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
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

from genhub_platform.aio import wait_event
from genhub_platform.db import SessionFactory
from genhub_platform.netguard.guard import ResolutionFailed, UrlGuard, UrlRefused
from prometheus_client import Counter, Histogram
from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction
from sqlmodel.ext.asyncio.session import AsyncSession

from genhub_notifier.adapters import repository as repo
from genhub_notifier.adapters.repository import (
    AttemptRow,
    DeliveryContext,
    DueDelivery,
    MessageRow,
    SignerRow,
)
from genhub_notifier.adapters.secretbox import ConfigError, SecretBox
from genhub_notifier.adapters.storage_client import StorageClient, StorageUnavailable
from genhub_notifier.adapters.webhook_sender import Sender
from genhub_notifier.domain.body import WebhookData, build_body
from genhub_notifier.domain.delivery import DeliveryStatus, Transition, WebhookEventType
from genhub_notifier.domain.endpoints import disable_reason, signing_secrets
from genhub_notifier.domain.exhaustion import Exhaustion
from genhub_notifier.domain.response import Decision, Outcome, Reason, decide, error_text
from genhub_notifier.domain.retry import RetrySchedule
from genhub_notifier.domain.signing import signed_headers
from genhub_notifier.services.fanout import (
    FanoutConfig,
    announce_disabled,
    announce_exhausted,
    resolve_many,
)

log = logging.getLogger(__name__)

# How long shutdown waits for the outcomes of finished sends to be recorded.
SHUTDOWN_WRITE_S = 5.0

ATTEMPTS = Counter("genhub_webhook_attempts_total", "Webhook delivery attempts", ["outcome"])
FINISHED = Counter(
    "genhub_webhook_deliveries_total", "Deliveries that reached a final state", ["status"]
)
EXHAUSTED = Counter(
    "genhub_webhook_exhausted_total", "Deliveries dead-lettered after the last scheduled attempt"
)
DISABLED = Counter("genhub_webhook_endpoints_disabled_total", "Endpoints disabled", ["reason"])
LATENCY = Histogram(
    "genhub_webhook_latency_seconds",
    "Webhook endpoint response time",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15),
)


class _RetryLater(Exception):
    """A failure before the POST (no secret, storage, DNS) that a later attempt may not hit."""


@dataclass
class _Result:
    """One finished send waiting for the writer."""

    claim: "repo.ClaimResult"
    attempt: AttemptRow | None
    endpoint: SignerRow | None
    decision: Decision | None
    exhausted: Exhaustion | None
    done: "asyncio.Future[bool]"


@dataclass(frozen=True)
class DispatchConfig:
    schedule: RetrySchedule
    max_in_flight: int = 32
    max_in_flight_per_endpoint: int = 4
    lease: timedelta = timedelta(seconds=60)
    poll_s: float = 0.5
    fanout: FanoutConfig = field(default_factory=FanoutConfig)
    disable_after: timedelta = timedelta(days=5)
    message_batch: int = 200


class Dispatcher:
    def __init__(
        self,
        sessions: SessionFactory,
        *,
        config: DispatchConfig,
        guard: UrlGuard,
        sender: Sender,
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
        self._in_flight: dict[asyncio.Task[None], DueDelivery] = {}
        self._per_target: dict[str, int] = {}  # in flight or reserved by a hand-off
        self._reserved = 0  # slots held for handed-off rows whose transaction is still open
        self._wakeup = asyncio.Event()
        self._resolve_wakeup = asyncio.Event()
        # The due-time watermark: the earliest time this process knows a pending row may be
        # claimable (None: nothing known). The loop claims only when it has passed, when a
        # send to a target whose due rows were held back by the bound ends (`_held_back`),
        # or at the safety poll (`poll_s`) that covers whatever no one told this process.
        self._due_at: datetime | None = None
        self._held_back: frozenset[str] = frozenset()
        self._next_poll = 0.0  # loop time of the next safety poll
        self._results: list[_Result] = []
        self._finished_count = 0
        self._writer: asyncio.Task[None] | None = None

    def wake(self) -> None:
        """New or replayed work is due (a NOTIFY from any replica, or this process)."""
        self._note_due(self._clock())
        self._resolve_wakeup.set()

    def _note_due(self, at: datetime) -> None:
        """Something may be claimable from `at` on: lower the watermark (and let the loop
        recompute its wait if that moved it earlier)."""
        if self._due_at is None or at < self._due_at:
            self._due_at = at
            self._wakeup.set()

    def _free(self) -> int:
        return self._config.max_in_flight - len(self._in_flight) - self._reserved

    async def run_forever(self) -> None:
        # Waiting messages are resolved by a loop of their own: a backlog of them (another
        # app's jobs, rejections racing their job.requested) never delays a due first attempt.
        resolver = asyncio.create_task(self._resolve_forever())
        loop = asyncio.get_running_loop()
        poll_s = self._config.poll_s
        self._next_poll = loop.time()  # the first round claims whatever is due at start
        try:
            while True:
                self._wakeup.clear()
                if self._free() <= 0:
                    # Full: a finished send wakes this when something is due or the poll is.
                    await wait_event(self._wakeup, poll_s)
                    continue
                polled = loop.time() >= self._next_poll
                if polled or (self._due_at is not None and self._due_at <= self._clock()):
                    if polled:
                        self._next_poll = loop.time() + poll_s
                    try:
                        await self._fill_slots()
                    except asyncio.CancelledError:
                        raise
                    except Exception:
                        log.exception("claiming deliveries failed; retrying")
                        self._due_at = self._due_at or self._clock()
                        self._next_poll = loop.time() + poll_s
                        await asyncio.sleep(poll_s)
                        continue
                wait = self._next_poll - loop.time()
                if self._due_at is not None and self._free() > 0:
                    wait = min(wait, (self._due_at - self._clock()).total_seconds())
                if wait > 0:
                    await wait_event(self._wakeup, wait)
        except asyncio.CancelledError:
            resolver.cancel()
            await asyncio.gather(resolver, return_exceptions=True)
            await self._shutdown()
            raise

    async def _resolve_forever(self) -> None:
        while True:
            self._resolve_wakeup.clear()
            try:
                resolved = await self._resolve_waiting()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("resolving waiting messages failed; retrying")
                resolved = 0
            if resolved < self._config.message_batch:
                await wait_event(self._resolve_wakeup, self._config.poll_s)

    async def drain(self) -> int:
        """Fan out and send everything due now (tests and one-off runs); returns rows handled."""
        handled = 0
        while True:
            finished = self._finished_count  # sends that end during the claim free slots too
            resolved = await self._resolve_waiting()
            claimed = await self._fill_slots()
            handled += claimed
            if self._in_flight:
                await asyncio.wait(self._in_flight, return_when=asyncio.FIRST_COMPLETED)
            elif not claimed and not resolved and finished == self._finished_count:
                return handled

    async def aclose(self) -> None:
        await self._sender.aclose()
        await self._storage.aclose()

    async def _resolve_waiting(self) -> int:
        now = self._clock()
        async with self._sessions() as session, session.begin():
            messages = await repo.claim_waiting_messages(session, now, self._config.message_batch)
            return await resolve_many(session, messages, self._config.fanout, now, self)

    async def _fill_slots(self) -> int:
        free = self._free()
        if free <= 0:
            return 0
        now = self._clock()
        # This claim takes care of everything due now; what is noted while it runs is kept.
        self._due_at = None
        async with self._sessions() as session, session.begin():
            rows = await repo.claim_due(
                session,
                now,
                free,
                now + self._config.lease,
                self._token,
                per_target=self._per_target,
                target_limit=self._config.max_in_flight_per_endpoint,
            )
            # What the sends need, for the whole batch at once (no read per delivery).
            context = await repo.delivery_context(session, rows) if rows else None
            # A short claim leaves nothing claimable now but rows held back by a target's
            # bound; learn when the next row comes due (retry, lease end) and which targets
            # those held-back rows belong to. A full claim may have left more due rows.
            outlook = await repo.due_outlook(session, now) if len(rows) < free else None
        if outlook is None:
            self._note_due(now)
            self._held_back = frozenset()
        else:
            self._held_back = outlook.held_back
            if outlook.next_due_at is not None:
                self._note_due(outlook.next_due_at)
        for row in rows:
            assert context is not None
            self._per_target[row.target_key] = self._per_target.get(row.target_key, 0) + 1
            task = asyncio.create_task(self._process(row, context))
            self._in_flight[task] = row
            task.add_done_callback(self._finished)
        return len(rows)

    def lease_new(
        self,
        session: AsyncSession,
        rows: list[dict[str, Any]],
        messages: dict[str, MessageRow],
        endpoints: dict[UUID, SignerRow],
        app_secrets: dict[UUID, SignerRow],
    ) -> int:
        """`fanout.Handoff`: lease the new deliveries this process has room for (both bounds
        count them at once) in the transaction that inserts them; once it commits they are
        sent from here with the rows at hand (no claim, no context reads). If it rolls back,
        the room is given back. Rows for jobs' own URLs are signed with `app_secrets` (an app
        without one goes the claim way, which retries until it has one). Rows not due yet and
        rows beyond the bounds are left to the claim loop: once committed, the watermark
        learns when they are due."""
        now = self._clock()
        limit = self._config.max_in_flight_per_endpoint
        taken: list[DueDelivery] = []
        left_due: datetime | None = None
        for row in rows:
            key = row["target_key"]
            endpoint_id = row["endpoint_id"]
            signer = (
                endpoints.get(endpoint_id)
                if endpoint_id is not None
                else app_secrets.get(row["app_id"])
            )
            if (
                self._free() <= 0
                or signer is None
                or row["message_id"] not in messages
                or row["next_attempt_at"] > now
                or self._per_target.get(key, 0) >= limit
            ):
                at = row["next_attempt_at"]
                left_due = at if left_due is None else min(left_due, at)
                continue
            self._per_target[key] = self._per_target.get(key, 0) + 1
            self._reserved += 1
            row["next_attempt_at"] = now + self._config.lease
            row["claim_token"] = self._token
            taken.append(
                DueDelivery(
                    row["id"],
                    row["message_id"],
                    row["app_id"],
                    row["job_id"],
                    endpoint_id,
                    key,
                    row["event_type"],
                    row["target_url"],
                    0,
                    0,
                    self._token,
                )
            )
        if taken or left_due is not None:
            context = DeliveryContext(messages, endpoints, app_secrets)
            self._after_transaction(session.sync_session, taken, context, left_due)
        return len(taken)

    def _after_transaction(
        self,
        session: Session,
        taken: list[DueDelivery],
        context: DeliveryContext,
        left_due: datetime | None,
    ) -> None:
        loop = asyncio.get_running_loop()
        state = {"committed": False, "settled": False}

        def committed(_: Session) -> None:
            state["committed"] = True

        def ended(_: Session, transaction: SessionTransaction) -> None:
            if transaction.parent is not None or state["settled"]:
                return  # a savepoint, or already handled
            state["settled"] = True
            if state["committed"]:
                loop.call_soon(self._launch, taken, context)
                if left_due is not None:
                    loop.call_soon(self._note_due, left_due)
            else:
                self._release(taken)

        event.listen(session, "after_commit", committed)
        event.listen(session, "after_transaction_end", ended)

    def _launch(self, rows: list[DueDelivery], context: DeliveryContext) -> None:
        for row in rows:
            self._reserved -= 1
            task = asyncio.create_task(self._process(row, context))
            self._in_flight[task] = row
            task.add_done_callback(self._finished)

    def _release(self, rows: list[DueDelivery]) -> None:
        for row in rows:
            self._reserved -= 1
            self._unreserve(row.target_key)

    def _unreserve(self, key: str) -> None:
        left = self._per_target.get(key, 1) - 1
        if left > 0:
            self._per_target[key] = left
        else:
            self._per_target.pop(key, None)

    def _finished(self, task: "asyncio.Task[None]") -> None:
        self._finished_count += 1
        row = self._in_flight.pop(task)
        self._unreserve(row.target_key)
        # A freed slot matters to the loop only if something is known to be waiting for it.
        if row.target_key in self._held_back:
            self._note_due(self._clock())
        elif (
            self._due_at is not None and self._due_at <= self._clock()
        ) or asyncio.get_running_loop().time() >= self._next_poll:
            self._wakeup.set()

    async def _shutdown(self) -> None:
        """Stop sending, record the outcomes of sends that already got their answer (another
        replica would send those again), and hand the unfinished rows back at once."""
        ids = [row.id for row in self._in_flight.values()]
        for task in list(self._in_flight):
            task.cancel()
        await asyncio.gather(*self._in_flight, return_exceptions=True)
        await self._finish_writing()
        if ids:  # rows recorded above are no longer leased: releasing them changes nothing
            with contextlib.suppress(Exception):
                async with self._sessions() as session, session.begin():
                    await repo.release_claims(session, self._token, ids, self._clock())
        with contextlib.suppress(Exception):
            await self.aclose()

    async def _process(self, delivery: DueDelivery, context: DeliveryContext) -> None:
        try:
            await self._process_unguarded(delivery, context)
        except asyncio.CancelledError:
            raise
        except Exception:
            # The lease runs out and the row is retried; the receiver dedupes on webhook-id.
            # A claim now learns when that lease ends (the watermark's outlook).
            log.exception("delivery %s failed unexpectedly", delivery.id)
            self._note_due(self._clock())

    async def _process_unguarded(self, delivery: DueDelivery, context: DeliveryContext) -> None:
        message = context.messages.get(delivery.message_id)
        if message is None or message.app_id != delivery.app_id:
            raise RuntimeError(f"delivery {delivery.id} has no message")
        endpoint: SignerRow | None = None
        app_secret: SignerRow | None = None
        if delivery.endpoint_id is not None:
            endpoint = context.endpoints.get(delivery.endpoint_id)
            if endpoint is not None and endpoint.app_id != delivery.app_id:
                endpoint = None  # never another tenant's endpoint
            if endpoint is None or not endpoint.enabled:
                gone = "endpoint_deleted" if endpoint is None else "endpoint_disabled"
                await self._save(delivery, Transition(DeliveryStatus.FAILED, None), last_error=gone)
                return
        else:
            app_secret = context.app_secrets.get(delivery.app_id)
        url = endpoint.url if endpoint is not None else delivery.target_url or ""
        await self._attempt(delivery, message, url, endpoint or app_secret, endpoint)

    def _signing_keys(self, source: SignerRow | None, now: datetime) -> list[str]:
        if source is None:
            raise _RetryLater("no signing secret for this app")
        try:
            current = self._secrets.decrypt(source.secret_encrypted)
            previous = (
                self._secrets.decrypt(source.previous_secret_encrypted)
                if source.previous_secret_encrypted
                else None
            )
        except ConfigError as exc:  # key removed from NOTIFIER_ENCRYPTION_KEY: fixable
            raise _RetryLater(
                "signing secret cannot be decrypted with the configured keys"
            ) from exc
        return signing_secrets(current, previous, source.previous_expires_at, now)

    async def _attempt(
        self,
        delivery: DueDelivery,
        message: MessageRow,
        url: str,
        secret_source: SignerRow | None,
        endpoint: SignerRow | None,
    ) -> None:
        attempt_no = delivery.attempt_count + 1
        started = self._clock()
        latency_ms: int | None = None
        excerpt: str | None = None
        send_error: str | None = None
        try:
            target = await self._guard.check(url)
            keys = self._signing_keys(secret_source, started)
            body = await self._body(message)
            headers = signed_headers(keys, message.id, int(started.timestamp()), body)
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
        # The schedule restarts after a replay: count attempts since then.
        decision = decide(
            outcome, attempt_no - delivery.schedule_offset, self._config.schedule, now, self._rand
        )
        error = error_text(outcome, decision, send_error)
        step = Transition(decision.status, decision.next_attempt_at)
        attempt = AttemptRow(
            delivery_id=delivery.id,
            attempt_no=attempt_no,
            url=url,
            started_at=started,
            status_code=outcome.status_code,
            latency_ms=latency_ms,
            response_excerpt=excerpt,
            error=error,
        )
        ATTEMPTS.labels(decision.attempt_outcome.value).inc()
        log.info(
            "webhook attempt",
            extra={
                "delivery_id": delivery.id,
                "webhook_id": message.id,
                "job_id": str(delivery.job_id),
                "app_id": str(delivery.app_id),
                "endpoint_id": str(delivery.endpoint_id),
                "attempt": attempt_no,
                "status_code": outcome.status_code,
                "latency_ms": latency_ms,
                "outcome": decision.attempt_outcome.value,
                "next_status": step.status.value,
                "reason": decision.reason.value,
            },
        )
        if (
            step.status in (DeliveryStatus.FAILED, DeliveryStatus.DEAD_LETTERED)
            and error
            and not error.startswith(decision.reason.value)
        ):
            error = f"{decision.reason.value}: {error}"  # dead-lettered, and why
        exhausted = (
            Exhaustion(
                delivery_id=delivery.id,
                webhook_id=message.id,
                app_id=delivery.app_id,
                endpoint_id=delivery.endpoint_id,
                url=url,
                event_type=WebhookEventType(delivery.event_type),
                job_id=delivery.job_id,
                attempts=attempt_no,
                last_error=error,
                at=now,
            )
            if decision.reason is Reason.RETRIES_EXHAUSTED
            else None
        )
        await self._save(
            delivery,
            step,
            attempt=attempt,
            attempt_count=attempt_no,
            last_error=error,
            url=url,
            endpoint=endpoint,
            decision=decision,
            exhausted=exhausted,
        )

    async def _body(self, message: MessageRow) -> bytes:
        event_type = WebhookEventType(message.event_type)
        data = message.event_data
        if not event_type.is_job_event:
            return build_body(event_type, message.occurred_at, data)
        outputs = (
            await self._storage.job_files(message.app_id, message.job_id)
            if event_type is WebhookEventType.SUCCEEDED and message.job_id is not None
            else []
        )
        return build_body(
            event_type,
            message.occurred_at,
            WebhookData(
                job_id=str(message.job_id),
                user_id=str(data.get("user_id") or ""),
                model=str(data.get("model") or ""),
                outputs=outputs,
                error=data.get("error"),
                metadata=data.get("metadata") or {},
                tokens_charged=data.get("tokens_charged"),
                tokens_refunded=data.get("tokens_refunded"),
                requested_at=data.get("requested_at"),
                completed_at=data.get("completed_at"),
            ),
        )

    async def _save(
        self,
        delivery: DueDelivery,
        step: Transition,
        *,
        attempt: AttemptRow | None = None,
        attempt_count: int | None = None,
        last_error: str | None = None,
        url: str | None = None,
        endpoint: SignerRow | None = None,
        decision: Decision | None = None,
        exhausted: Exhaustion | None = None,
    ) -> None:
        """Queue the outcome for the writer, which records everything finished meanwhile in
        one transaction (one commit for many sends instead of one each)."""
        result = _Result(
            repo.ClaimResult(
                delivery.id,
                delivery.claim_token,
                step,
                attempt_count,
                last_error,
                url,
            ),
            attempt,
            endpoint,
            decision,
            exhausted,
            asyncio.get_running_loop().create_future(),
        )
        self._results.append(result)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_results())
        kept = await result.done
        if not kept:
            log.warning("lease on delivery %s expired before it finished", delivery.id)
            return
        if step.status.is_terminal:
            FINISHED.labels(step.status.value).inc()
        if exhausted is not None:
            EXHAUSTED.inc()
            log.warning(
                "delivery exhausted its schedule; dead-lettered",
                extra={"delivery_id": delivery.id, "app_id": str(delivery.app_id)},
            )

    async def _finish_writing(self) -> None:
        """Let the writer record every queued outcome (bounded: a database that does not
        answer leaves those rows to their lease, as a crash would)."""
        if self._results and (self._writer is None or self._writer.done()):
            self._writer = asyncio.create_task(self._write_results())
        if self._writer is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._writer), SHUTDOWN_WRITE_S)
        except TimeoutError:
            log.warning("outcomes not recorded at shutdown; their leases will run out")
            self._writer.cancel()
            await asyncio.gather(self._writer, return_exceptions=True)

    async def _write_results(self) -> None:
        while self._results:
            batch, self._results = self._results, []
            try:
                kept = await self._write(batch)
            except Exception as exc:  # each waiter logs it; the leases run out and retry
                for r in batch:
                    if not r.done.done():
                        r.done.set_exception(exc)
                self._note_due(self._clock())  # a claim learns when those leases end
                continue
            for r in batch:
                if not r.done.done():
                    r.done.set_result(r.claim.delivery_id in kept)
                step = r.claim.transition
                if (
                    r.claim.delivery_id in kept
                    and step.status is DeliveryStatus.PENDING
                    and step.next_attempt_at is not None
                ):
                    self._note_due(step.next_attempt_at)  # a retry this process scheduled

    async def _write(self, batch: list["_Result"]) -> set[str]:
        now = self._clock()
        async with self._sessions() as session, session.begin():
            kept = await repo.finish_claims(
                session,
                [r.claim for r in batch],
                [r.attempt for r in batch if r.attempt is not None],
                now,
            )
            for r in batch:
                if r.claim.delivery_id in kept and r.endpoint and r.decision:
                    await self._endpoint_health(session, r.endpoint, r.decision, now)
            # Dead letters the app hears about, committed with the state that made them.
            exhausted = [r.exhausted for r in batch if r.exhausted and r.claim.delivery_id in kept]
            if exhausted:
                await announce_exhausted(session, self._config.fanout, exhausted, now)
        return kept

    async def _endpoint_health(
        self, session: AsyncSession, endpoint: SignerRow, decision: Decision, now: datetime
    ) -> None:
        ok = decision.reason is Reason.DELIVERED
        if ok and endpoint.failing_since is None:
            return  # healthy and staying so: no write on the hot path
        assert endpoint.id is not None  # an endpoint's row, not an app secret
        failing_since = await repo.record_endpoint_result(
            session, endpoint.app_id, endpoint.id, ok=ok, now=now
        )
        reason = disable_reason(decision, failing_since, now, self._config.disable_after)
        if reason is None:
            return
        disabled = await repo.disable_endpoint(
            session, endpoint.app_id, endpoint.id, reason.value, now
        )
        if disabled is not None:  # this attempt disabled it: tell the app's other endpoints
            DISABLED.labels(reason.value).inc()
            log.warning(
                "endpoint disabled",
                extra={"endpoint_id": str(endpoint.id), "reason": reason.value},
            )
            await announce_disabled(session, self._config.fanout, disabled, now)
