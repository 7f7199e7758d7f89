"""Use cases: each takes a unit of work (or a session) and plain input, calls the domain rules
and adapters, and publishes events through the outbox. HTTP handlers commit; Kafka handlers
leave committing to the platform's EventConsumer."""

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import orjson
from genhub_contracts import (
    AppOptions,
    Envelope,
    JobCancelRequested,
    JobRequested,
    JobSpec,
    JobStatus,
    Plan,
)
from genhub_contracts.events import JobCancelRequestedPayload, JobRequestedPayload
from genhub_platform.db import SessionFactory
from genhub_platform.errors import ApiError
from genhub_platform.uow import UnitOfWork
from sqlalchemy.exc import IntegrityError
from sqlmodel.ext.asyncio.session import AsyncSession

from genhub_gateway.adapters.catalog import ModelCatalog
from genhub_gateway.adapters.projection import write_deltas
from genhub_gateway.adapters.repositories import (
    AppRepository,
    IdempotencyRepository,
    JobRepository,
    KeyOwner,
)
from genhub_gateway.adapters.tables import ApiKeyRow, AppRow, IdempotencyKeyRow, JobRow, utcnow
from genhub_gateway.adapters.upstream import NotifierClient, StorageClient
from genhub_gateway.domain import idempotency as idem
from genhub_gateway.domain import readmodel
from genhub_gateway.domain.cursor import InvalidCursor, decode_cursor, encode_cursor
from genhub_gateway.domain.jobs import NewJob
from genhub_gateway.domain.keys import NewKey, generate_key
from genhub_gateway.schemas import (
    AppOptionsPatch,
    CreateAppRequest,
    GenerateRequest,
    JobErrorOut,
    JobOut,
    JobOutputOut,
    JobPageOut,
    JobTokensOut,
    UpdateAppRequest,
)

log = logging.getLogger(__name__)


def job_not_found() -> ApiError:
    return ApiError(404, "job_not_found", "No such job for this app.")


def user_not_found() -> ApiError:
    return ApiError(404, "user_not_found", "No such end user for this app.")


def app_not_found() -> ApiError:
    return ApiError(404, "app_not_found", "No such app.")


# --- admin ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CreatedApp:
    app: AppRow
    key: ApiKeyRow
    secret: NewKey
    webhook_secret: str


def _new_key_row(app_id: UUID) -> tuple[ApiKeyRow, NewKey]:
    new = generate_key()
    return ApiKeyRow(app_id=app_id, prefix=new.prefix, key_hash=new.hash), new


async def create_app(
    uow: UnitOfWork,
    notifier: NotifierClient,
    request: CreateAppRequest,
    *,
    default_rate_limit: int,
    default_user_rate_limit: int,
) -> CreatedApp:
    """Insert the app and its first key, then ask the notifier for the signing secret.

    The notifier call happens before the caller commits: if it fails nothing is created, and
    the admin can simply retry (a secret orphaned by a failed commit belongs to an app id that
    never exists).
    """
    slug = request.slug
    apps = AppRepository(uow.session)
    if await apps.slug_taken(slug):
        raise ApiError(409, "slug_taken", f"An app with slug {slug!r} already exists.")
    app = AppRow(
        name=request.name,
        slug=slug,
        plan=request.plan.value,
        webhook_url=str(request.webhook_url) if request.webhook_url else None,
        welcome_grant=request.welcome_grant,
        rate_limit_per_minute=request.rate_limit_per_minute or default_rate_limit,
        user_rate_limit_per_minute=request.user_rate_limit_per_minute or default_user_rate_limit,
        options=request.options.model_dump(mode="json"),
    )
    uow.session.add(app)
    try:
        # Flushed on its own: without ORM relationships the key row's insert is not ordered
        # after its app's, and the only constraint the app insert can break is the slug.
        await uow.session.flush()
    except IntegrityError as exc:  # a concurrent create won the slug
        raise ApiError(409, "slug_taken", f"An app with slug {slug!r} already exists.") from exc
    key, new = _new_key_row(app.id)
    uow.session.add(key)
    secret = await notifier.create_signing_secret(app.id)
    return CreatedApp(app=app, key=key, secret=new, webhook_secret=secret)


async def issue_key(uow: UnitOfWork, app_id: UUID) -> tuple[ApiKeyRow, NewKey]:
    if await AppRepository(uow.session).get(app_id) is None:
        raise app_not_found()
    key, new = _new_key_row(app_id)
    uow.session.add(key)
    return key, new


async def revoke_key(uow: UnitOfWork, app_id: UUID, key_id: UUID) -> tuple[ApiKeyRow, bool]:
    """The key, and whether this call revoked it (False: it already was)."""
    key = await AppRepository(uow.session).get_key(app_id, key_id)
    if key is None:
        raise ApiError(404, "key_not_found", "No such key for this app.")
    if key.revoked_at is not None:
        return key, False
    key.revoked_at = utcnow()
    uow.session.add(key)
    return key, True


def merged_options(current: dict[str, Any], patch: AppOptionsPatch) -> AppOptions:
    """The app's job options after a partial change (validated as a whole)."""
    base = AppOptions.model_validate(current or {}).model_dump()
    return AppOptions.model_validate({**base, **patch.model_dump(exclude_unset=True)})


async def update_app(uow: UnitOfWork, app_id: UUID, change: UpdateAppRequest) -> AppRow:
    app = await AppRepository(uow.session).get(app_id)
    if app is None:
        raise app_not_found()
    fields = change.model_dump(exclude_unset=True)
    if fields.get("name") is not None:
        app.name = fields["name"]
    if change.plan is not None:
        app.plan = change.plan.value
    if fields.get("enabled") is not None:
        app.enabled = fields["enabled"]
    if "webhook_url" in fields:  # explicit null clears it
        app.webhook_url = str(change.webhook_url) if change.webhook_url else None
    for name in ("welcome_grant", "rate_limit_per_minute", "user_rate_limit_per_minute"):
        if fields.get(name) is not None:
            setattr(app, name, fields[name])
    if change.options is not None:
        app.options = merged_options(app.options, change.options).model_dump(mode="json")
    app.updated_at = utcnow()
    uow.session.add(app)
    return app


# --- jobs -------------------------------------------------------------------------------------


async def check_model(catalog: ModelCatalog, request: GenerateRequest) -> None:
    """422 unless the model exists, is enabled and makes that many outputs (cached catalog)."""
    model = await catalog.get(request.model)
    if model is None or not model.enabled:
        raise ApiError(422, "unknown_model", f"Model {request.model!r} is not available.")
    if model.max_outputs is not None and request.input.num_outputs > model.max_outputs:
        raise ApiError(
            422,
            "validation_error",
            "The request is not valid.",
            details=[
                {
                    "field": "body.input.num_outputs",
                    "message": f"model {model.name!r} makes at most {model.max_outputs} outputs",
                    "type": "less_than_equal",
                }
            ],
        )
    images = len(request.input.images)
    if model.max_input_images is not None and images > model.max_input_images:
        raise ApiError(
            422,
            "validation_error",
            "The request is not valid.",
            details=[
                {
                    "field": "body.input.images",
                    "message": f"model {model.name!r} takes at most {model.max_input_images} "
                    "input images",
                    "type": "too_long",
                }
            ],
        )


def new_job(
    caller: KeyOwner, user_id: str, request: GenerateRequest
) -> tuple[NewJob, JobRequested]:
    """The job's read-model row and its `job.requested` event (nothing written yet)."""
    webhook_url = request.webhook_url or caller.webhook_url
    spec = JobSpec(
        user_id=user_id,
        model=request.model,
        input=request.input,
        priority=request.priority,
        plan=Plan(caller.plan),
        webhook_url=str(webhook_url) if webhook_url else None,
        metadata=request.metadata,
        cache=request.cache,
        enhance_prompt=request.enhance_prompt,
        app=caller.options,  # a snapshot: later edits to the app do not change this job
    )
    job = NewJob(
        app_id=caller.app_id,
        user_id=user_id,
        model=request.model,
        status=JobStatus.QUEUED.value,
        priority=request.priority,
        spec_json=spec.model_dump_json(),
        metadata=request.metadata,
    )
    event = JobRequested.new(
        app_id=caller.app_id, job_id=job.job_id, payload=JobRequestedPayload(spec=spec)
    )
    return job, event


async def submit_job(
    uow: UnitOfWork,
    catalog: ModelCatalog,
    caller: KeyOwner,
    user_id: str,
    request: GenerateRequest,
) -> JobRow:
    """Accept a job in the caller's unit of work: the read-model row and `job.requested` go
    in one transaction (the slow path; the hot path is adapters/accept.py)."""
    await check_model(catalog, request)
    new, event = new_job(caller, user_id, request)
    job = JobRow(
        job_id=new.job_id,
        app_id=new.app_id,
        user_id=new.user_id,
        model=new.model,
        status=new.status,
        priority=new.priority,
        spec=orjson.loads(new.spec_json),
        job_metadata=new.metadata,
    )
    uow.session.add(job)
    uow.publish(event)
    return job


def _stored_key(stored: IdempotencyKeyRow) -> idem.StoredKey:
    """What the idempotency rules need of a stored key."""
    return idem.StoredKey(
        request_hash=stored.request_hash,
        state=stored.state,
        created_at=stored.created_at,
        locked_until=stored.locked_until,
    )


async def recorded_answer(
    session: AsyncSession, app_id: UUID, key: str, request_hash: str, ttl: timedelta
) -> "Claim | None":
    """The first answer recorded for this key and this very request, if any (read only)."""
    stored = await IdempotencyRepository(session).get(app_id, key)
    if stored is None:
        return None
    decision = idem.decide(
        _stored_key(stored),
        request_hash,
        utcnow(),
        ttl,
    )
    if decision is not idem.Decision.REPLAY:
        return None
    return Claim(
        key=key,
        replay_status=stored.response_status,
        replay_body=stored.response_body,
        replay_job_id=stored.job_id,
    )


async def await_job(
    sessions: SessionFactory,
    app_id: UUID,
    job_id: UUID,
    timeout_s: float,
    poll_interval_s: float = 0.1,
) -> JobRow:
    """The job's read-model row once it is terminal, or as it is when `timeout_s` has passed.

    Polls the database: the event that ends the job may be projected by another replica.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        async with sessions() as session:
            job = await JobRepository(session).get(app_id, job_id)
        if job is None:
            raise job_not_found()
        remaining = deadline - loop.time()
        if JobStatus(job.status).is_terminal or remaining <= 0:
            return job
        await asyncio.sleep(min(poll_interval_s, remaining))


# --- idempotency keys ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Claim:
    """A request's hold on its Idempotency-Key, or the first request's recorded answer."""

    key: str
    owner: UUID | None = None
    replay_status: int | None = None
    replay_body: dict[str, Any] | None = None
    replay_job_id: UUID | None = None

    @property
    def is_replay(self) -> bool:
        return self.owner is None


async def claim_idempotency_key(
    uow: UnitOfWork,
    app_id: UUID,
    key: str,
    request_hash: str,
    *,
    ttl: timedelta,
    lease: timedelta,
) -> Claim:
    """Take the key for this request (committed at once, so every replica sees it in flight),
    or answer with the first request's response; 422 for another body, 409 while in flight."""
    keys = IdempotencyRepository(uow.session)
    for _ in range(3):  # a key pruned between insert and lock is simply tried again
        now = utcnow()
        owner = uuid4()
        fresh = IdempotencyKeyRow(
            app_id=app_id,
            key=key,
            request_hash=request_hash,
            state=idem.IN_PROGRESS,
            owner=owner,
            locked_until=now + lease,
            created_at=now,
        )
        if await keys.insert_if_absent(fresh):
            await uow.commit()
            return Claim(key=key, owner=owner)
        stored = await keys.lock(app_id, key)
        if stored is None:
            await uow.session.rollback()
            continue
        decision = idem.decide(
            _stored_key(stored),
            request_hash,
            now,
            ttl,
        )
        if decision is idem.Decision.MISMATCH:
            raise ApiError(
                422,
                "idempotency_key_reused",
                "This Idempotency-Key was already used for a different request.",
            )
        if decision is idem.Decision.IN_FLIGHT:
            raise ApiError(
                409,
                "idempotency_key_in_use",
                "A request with this Idempotency-Key is still in progress; retry shortly.",
                headers={"Retry-After": "1"},
            )
        if decision is idem.Decision.REPLAY:
            return Claim(
                key=key,
                replay_status=stored.response_status,
                replay_body=stored.response_body,
                replay_job_id=stored.job_id,
            )
        # Expired, or its holder died: this request takes the key over.
        stored.request_hash = request_hash
        stored.state = idem.IN_PROGRESS
        stored.owner = owner
        stored.locked_until = now + lease
        stored.created_at = now
        stored.response_status = None
        stored.response_body = None
        stored.job_id = None
        uow.session.add(stored)
        await uow.commit()
        return Claim(key=key, owner=owner)
    raise ApiError(409, "idempotency_key_in_use", "The Idempotency-Key is busy; retry shortly.")


async def record_idempotent_response(
    uow: UnitOfWork,
    app_id: UUID,
    claim: Claim,
    *,
    status: int,
    body: dict[str, Any],
    job_id: UUID | None = None,
) -> None:
    """Store the answer in the caller's transaction (with the job it created, if any)."""
    if claim.owner is None:
        return
    recorded = await IdempotencyRepository(uow.session).complete(
        app_id, claim.key, claim.owner, status=status, body=body, job_id=job_id
    )
    if not recorded:  # our lease ran out and another request took the key over
        raise ApiError(
            409,
            "idempotency_key_in_use",
            "Another request with this Idempotency-Key took over; retry to get its answer.",
        )


async def release_idempotency_key(uow: UnitOfWork, app_id: UUID, claim: Claim) -> None:
    """Give the key back after a failed attempt, so a retry runs the request again."""
    if claim.owner is None:
        return
    try:
        await IdempotencyRepository(uow.session).release(app_id, claim.key, claim.owner)
        await uow.commit()
    except Exception:  # the lease expires on its own
        log.exception("could not release idempotency key")


async def prune_idempotency_keys(uow: UnitOfWork, ttl: timedelta, limit: int = 1000) -> int:
    pruned = await IdempotencyRepository(uow.session).prune(utcnow() - ttl, limit)
    await uow.commit()
    return pruned


async def request_cancel(uow: UnitOfWork, caller: KeyOwner, job_id: UUID) -> JobRow:
    job = await JobRepository(uow.session).get(caller.app_id, job_id)
    if job is None:
        raise job_not_found()
    if JobStatus(job.status).is_terminal:
        raise ApiError(409, "job_finished", f"The job has already ended ({job.status}).")
    uow.publish(
        JobCancelRequested.new(
            app_id=caller.app_id,
            job_id=job.job_id,
            payload=JobCancelRequestedPayload(user_id=job.user_id),
        )
    )
    return job


async def get_job(
    session: AsyncSession, storage: StorageClient, caller: KeyOwner, job_id: UUID
) -> JobOut:
    job = await JobRepository(session).get(caller.app_id, job_id)
    if job is None:
        raise job_not_found()
    files: list[dict[str, Any]] | None = None
    if job.status == JobStatus.SUCCEEDED:
        # URLs are presigned and expire, so they come fresh from storage on every read.
        files = await storage.job_files(caller.app_id, job.job_id)
    return render_job(job, files)


@dataclass(frozen=True)
class JobFilters:
    status: JobStatus | None = None
    user_id: str | None = None
    model: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None


def _aware(value: datetime | None) -> datetime | None:
    # A timestamp without an offset is taken as UTC.
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


async def list_jobs(
    session: AsyncSession,
    caller: KeyOwner,
    filters: JobFilters,
    *,
    limit: int,
    cursor: str | None,
) -> JobPageOut:
    """One page of the caller's jobs, newest first. No storage calls: outputs have no URL."""
    after = None
    if cursor is not None:
        try:
            after = decode_cursor(cursor)
        except InvalidCursor:
            raise ApiError(422, "invalid_cursor", "The cursor is not valid.") from None
    # One row more than asked tells whether another page follows.
    rows = await JobRepository(session).page(
        caller.app_id,
        limit=limit + 1,
        after=after,
        status=filters.status.value if filters.status is not None else None,
        user_id=filters.user_id,
        model=filters.model,
        created_after=_aware(filters.created_after),
        created_before=_aware(filters.created_before),
    )
    page = rows[:limit]
    next_cursor = encode_cursor(page[-1].created_at, page[-1].job_id) if len(rows) > limit else None
    return JobPageOut(
        jobs=[render_job(job, None, with_urls=False) for job in page], next_cursor=next_cursor
    )


def render_job(
    job: JobRow, files: list[dict[str, Any]] | None, *, with_urls: bool = True
) -> JobOut:
    by_index: dict[int, dict[str, Any]] = {int(o["index"]): dict(o) for o in job.outputs}
    for f in files or []:
        if "index" in f:
            by_index.setdefault(int(f["index"]), {}).update(f)
    outputs = [
        JobOutputOut(
            index=i,
            url=o.get("url") if with_urls else None,
            content_type=o.get("content_type"),
            width=o.get("width"),
            height=o.get("height"),
            bytes=o.get("bytes"),
        )
        for i, o in sorted(by_index.items())
    ]
    error = (
        JobErrorOut(code=job.error_code, message=job.error_message or "", details=job.error_details)
        if job.error_code
        else None
    )
    return JobOut(
        job_id=job.job_id,
        status=JobStatus(job.status),
        model=job.model,
        user_id=job.user_id,
        created_at=job.created_at,
        updated_at=job.updated_at,
        outputs=outputs,
        error=error,
        tokens=JobTokensOut(
            reserved=job.tokens_reserved or 0,
            charged=job.tokens_charged or 0,
            refunded=job.tokens_refunded or 0,
        ),
        provider=job.provider,
        attempts=job.attempts,
        metadata=job.job_metadata,
    )


# --- read-model projection ----------------------------------------------------------------------


async def project(uow: UnitOfWork, event: Envelope[Any], step: readmodel.Step) -> None:
    """Apply one saga event to the job's read-model row."""
    await project_many(uow, [(event, step)])


async def project_many(
    uow: UnitOfWork, changes: list[tuple[Envelope[Any], readmodel.Step]]
) -> None:
    """Apply saga events, in delivery order, to their jobs' read-model rows: each job's events
    are folded into one delta (domain rules) and the batch is written in one statement."""
    steps: dict[tuple[UUID, UUID], list[readmodel.Step]] = {}
    first_type: dict[tuple[UUID, UUID], str] = {}
    for event, step in changes:
        if event.job_id is None:
            log.warning("%s without job_id ignored", event.type)
            continue
        key = (event.app_id, event.job_id)
        if key in steps:
            steps[key].append(step)
        else:
            steps[key] = [step]
            first_type[key] = event.type
    deltas = {key: readmodel.fold(job_steps) for key, job_steps in steps.items()}
    missing = await write_deltas(uow.session, deltas, utcnow())
    if missing:
        # Only the gateway creates jobs, in the same transaction as job.requested, so these
        # are another environment's events or a wiped database: nothing to project onto.
        # One line per batch: a flood of them must not cost a log line each.
        first = missing[0]
        log.warning(
            "%d event(s) for unknown jobs ignored (first: %s %s)",
            sum(len(steps[key]) for key in missing),
            first_type[first],
            first[1],
        )
