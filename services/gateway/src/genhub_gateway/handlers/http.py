"""Public API for apps: `/v1/*`, authenticated by `X-API-Key`."""

import hashlib
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal
from uuid import UUID

import orjson
from fastapi import APIRouter, Header, Query, Request, Response, status
from fastapi.responses import JSONResponse
from genhub_contracts import JobStatus
from genhub_platform.deps import UowDep
from genhub_platform.errors import ApiError
from genhub_platform.runtime import Runtime
from genhub_platform.uow import UnitOfWork

from genhub_gateway import audit, services
from genhub_gateway.adapters.repositories import EndUserRepository, JobRepository, KeyOwner
from genhub_gateway.domain import idempotency as idem
from genhub_gateway.domain.identifiers import USER_ID_PATTERN, is_valid_user_id
from genhub_gateway.domain.ratelimit import Limit
from genhub_gateway.handlers.deps import (
    AppDep,
    Gateway,
    GatewayDep,
    RequestIdDep,
    RuntimeDep,
    UserIdHeader,
    admit,
    caller_limits,
    header_user_id,
    path_user_id,
)
from genhub_gateway.schemas import (
    GenerateRequest,
    GrantOut,
    GrantRequest,
    JobAccepted,
    JobOut,
    JobPageOut,
    JobTotalsOut,
    ModelListOut,
    ModelOut,
    UserOut,
)
from genhub_gateway.users import ensure_end_user

router = APIRouter(prefix="/v1", tags=["public"])

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        description="repeat a request safely: the same key and body return the first answer "
        "(kept 24 h); another body is 422, a request still in flight 409",
    ),
]


def billing_key(idempotency_key: str | None) -> str | None:
    """The key billing dedupes an app's grant by: namespaced (so it cannot collide with the
    gateway's own keys such as the welcome grant's) and hashed (billing allows 128 chars)."""
    if idempotency_key is None:
        return None
    return "app:" + hashlib.sha256(idempotency_key.encode()).hexdigest()[:48]


def _job_uuid(job_id: str) -> UUID:
    try:
        return UUID(job_id)
    except ValueError:
        raise services.job_not_found() from None


PreferHeader = Annotated[
    list[str] | None,
    Header(
        alias="Prefer",
        description="`wait=N` (0 < N <= 60): hold the answer until the job ends or N seconds pass",
    ),
]


def _prefer_wait(prefer: list[str] | None) -> float | None:
    try:
        return idem.parse_prefer_wait(prefer)
    except idem.InvalidPrefer as exc:
        raise ApiError(400, "invalid_prefer", f"Invalid Prefer header: {exc}.") from None


async def claim_key(
    runtime: Runtime, gateway: Gateway, caller: KeyOwner, key: str, request_hash: str
) -> services.Claim:
    settings = gateway.settings
    async with runtime.uow() as claim_uow:
        return await services.claim_idempotency_key(
            claim_uow,
            caller.app_id,
            key,
            request_hash,
            ttl=timedelta(seconds=settings.idempotency_ttl_s),
            lease=timedelta(seconds=settings.idempotency_lease_s),
        )


async def release_key(runtime: Runtime, caller: KeyOwner, claim: services.Claim | None) -> None:
    if claim is not None:
        async with runtime.uow() as release_uow:
            await services.release_idempotency_key(release_uow, caller.app_id, claim)


async def _job_answer(
    runtime: Runtime,
    gateway: Gateway,
    caller: KeyOwner,
    job_id: UUID,
    wait: float,
    headers: dict[str, str],
) -> Response:
    """After `Prefer: wait`: 200 with the job once it ended, 402 when it was refused for
    tokens, 202 while it still runs."""
    headers = {**headers, "Preference-Applied": idem.format_wait(wait)}
    job = await services.await_job(
        runtime.sessions, caller.app_id, job_id, wait, gateway.settings.wait_poll_interval_s
    )
    code = idem.waited_status(job.status, job.error_code)
    if code == status.HTTP_402_PAYMENT_REQUIRED:
        details = job.error_details or {}
        raise ApiError(
            402,
            "insufficient_tokens",
            job.error_message or "Not enough tokens for this job.",
            details=details,
            headers=headers,
            extra={
                "job_id": str(job.job_id),
                "balance": details.get("balance"),
                "required": details.get("required"),
            },
        )
    if code == status.HTTP_202_ACCEPTED:
        accepted = JobAccepted(job_id=job.job_id, status=JobStatus(job.status))
        return JSONResponse(accepted.model_dump(mode="json"), status_code=code, headers=headers)
    async with runtime.sessions() as session:
        view = await services.get_job(session, gateway.upstreams.storage, caller, job.job_id)
    return JSONResponse(view.model_dump(mode="json"), status_code=code, headers=headers)


@router.post(
    "/generate",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobAccepted,
    responses={
        200: {"model": JobOut, "description": "with `Prefer: wait`: the job ended in time"},
        402: {"description": "with `Prefer: wait`: refused for tokens (`balance`, `required`)"},
        409: {"description": "`idempotency_key_in_use`: the first request is still running"},
    },
)
async def generate(
    body: GenerateRequest,
    caller: AppDep,
    request: Request,
    x_user_id: UserIdHeader = None,
    idempotency_key: IdempotencyKey = None,
    prefer: PreferHeader = None,
) -> Response:
    """Accept a generation job for one of your end users (`X-User-ID`)."""
    # The hot path: adapters and ids come straight from the app and the request rather than
    # through sub-dependencies (FastAPI spends measurable time on each one).
    gateway: Gateway = request.app.state.gateway
    runtime: Runtime = request.app.state.runtime
    request_id = str(getattr(request.state, "request_id", ""))
    user_id = header_user_id(x_user_id)
    wait = _prefer_wait(prefer)
    request_hash = _request_hash(idempotency_key, user_id, body)
    try:
        await services.check_model(gateway.catalog, body)
        await _check_urls(gateway, caller, body)
        await first_use(runtime, gateway, caller, user_id, request_id)
    except ApiError:
        if idempotency_key is None or request_hash is None:
            raise
        # A retry answers as the first time did, even if the request would not pass today
        # (say the model was retired since).
        async with runtime.sessions() as session:
            recorded = await services.recorded_answer(
                session,
                caller.app_id,
                idempotency_key,
                request_hash,
                timedelta(seconds=gateway.settings.idempotency_ttl_s),
            )
        if recorded is None:
            raise
        return await _replay(runtime, gateway, caller, recorded, wait)
    return await _accept(request, caller, body, user_id, idempotency_key, request_hash, wait)


async def generate_unmetered(
    body: GenerateRequest,
    caller: KeyOwner,
    request: Request,
    *,
    x_user_id: str | None,
    idempotency_key: str | None,
    prefer: list[str] | None,
) -> Response:
    """`generate` for an authenticated caller whose call the rate limits have not counted
    yet (handlers/fastpath.py).

    An ordinary request — an end user this replica has seen welcomed, no URL or upload to
    check, a model the catalog has — passes every check of `generate` without a side effect,
    so whether the checks run before or after the rate limits cannot change its answer: it
    is counted and written in one group-committed statement. Anything else is counted first
    and then goes through `generate`, exactly as the route does."""
    gateway: Gateway = request.app.state.gateway
    limits = caller_limits(request, caller)
    wait = _plain_wait(gateway, caller, body, x_user_id, prefer)
    if x_user_id is not None and wait is not False and await _model_accepted(gateway, body):
        request_hash = _request_hash(idempotency_key, x_user_id, body)
        return await _accept(
            request, caller, body, x_user_id, idempotency_key, request_hash, wait, limits
        )
    admit(request, await gateway.limiter.hit(limits))
    return await generate(
        body, caller, request, x_user_id=x_user_id, idempotency_key=idempotency_key, prefer=prefer
    )


def _plain_wait(
    gateway: Gateway,
    caller: KeyOwner,
    body: GenerateRequest,
    x_user_id: str | None,
    prefer: list[str] | None,
) -> float | Literal[False] | None:
    """The request's `Prefer: wait` when its checks need no I/O with side effects (a valid
    header, a known end user, nothing to resolve or look up); False otherwise."""
    if (
        x_user_id is None
        or not is_valid_user_id(x_user_id)
        or (str(caller.app_id), x_user_id) not in gateway.known_users
        or body.webhook_url is not None
        or body.input.images
    ):
        return False
    try:
        return idem.parse_prefer_wait(prefer)
    except idem.InvalidPrefer:
        return False


async def _model_accepted(gateway: Gateway, body: GenerateRequest) -> bool:
    try:
        await services.check_model(gateway.catalog, body)
    except Exception:
        return False
    return True


def _request_hash(idempotency_key: str | None, user_id: str, body: GenerateRequest) -> str | None:
    if idempotency_key is None:
        return None
    return idem.fingerprint("POST /v1/generate", user_id, body.model_dump(mode="json"))


async def _accept(
    request: Request,
    caller: KeyOwner,
    body: GenerateRequest,
    user_id: str,
    idempotency_key: str | None,
    request_hash: str | None,
    wait: float | None,
    limits: Sequence[Limit] = (),
) -> Response:
    """Write the checked job (counted against `limits` in the same statement, if any)."""
    gateway: Gateway = request.app.state.gateway
    runtime: Runtime = request.app.state.runtime
    # Hot path: the job, its event and the key's answer in one group-committed statement
    # (adapters/accept.py).
    job, event = services.new_job(caller, user_id, body)
    accepted = JobAccepted(job_id=job.job_id, status=JobStatus(job.status)).model_dump(mode="json")
    recorded_as = (
        (idempotency_key, request_hash, status.HTTP_202_ACCEPTED, accepted)
        if idempotency_key is not None and request_hash is not None
        else None
    )
    job_id = job.job_id
    outcome = await gateway.acceptor.accept(job, event, idempotency=recorded_as, limits=limits)
    if limits:
        admit(request, outcome.usages)  # 429 when refused (then nothing was written)
    if outcome.written:
        runtime.relay.wake()
    elif idempotency_key is not None and request_hash is not None:
        # The app used this key before: replay, 422, 409, or take over an expired key.
        claim = await claim_key(runtime, gateway, caller, idempotency_key, request_hash)
        if claim.is_replay:
            return await _replay(runtime, gateway, caller, claim, wait)
        try:
            async with runtime.uow() as uow:
                row = await services.submit_job(uow, gateway.catalog, caller, user_id, body)
                accepted = JobAccepted(job_id=row.job_id, status=JobStatus(row.status)).model_dump(
                    mode="json"
                )
                await services.record_idempotent_response(
                    uow,
                    caller.app_id,
                    claim,
                    status=status.HTTP_202_ACCEPTED,
                    body=accepted,
                    job_id=row.job_id,
                )
                await uow.commit()
            job_id = row.job_id
        except Exception:
            await release_key(runtime, caller, claim)
            raise
    headers = {"Location": f"/v1/jobs/{job_id}"}
    if wait is not None:
        return await _job_answer(runtime, gateway, caller, job_id, wait, headers)
    # The bytes JSONResponse would send (compact, UTF-8), serialized by orjson.
    return Response(
        orjson.dumps(accepted),
        status_code=status.HTTP_202_ACCEPTED,
        headers=headers,
        media_type="application/json",
    )


async def _replay(
    runtime: Runtime, gateway: Gateway, caller: KeyOwner, claim: services.Claim, wait: float | None
) -> Response:
    """The first request's answer again (with `Prefer: wait`, waiting on its job again)."""
    headers = {"Idempotent-Replayed": "true"}
    if claim.replay_job_id is not None:
        headers["Location"] = f"/v1/jobs/{claim.replay_job_id}"
        if wait is not None:
            return await _job_answer(runtime, gateway, caller, claim.replay_job_id, wait, headers)
    return JSONResponse(claim.replay_body, status_code=claim.replay_status or 200, headers=headers)


async def first_use(
    runtime: Runtime, gateway: Gateway, caller: KeyOwner, user_id: str, request_id: str
) -> None:
    """Create the end user (and apply the welcome grant) the first time the app names them."""
    pair = (str(caller.app_id), user_id)
    if pair in gateway.known_users:
        return
    await ensure_end_user(runtime.uow, gateway.upstreams.billing, caller, user_id, request_id)
    gateway.known_users.add(pair)


async def _check_urls(gateway: Gateway, caller: KeyOwner, body: GenerateRequest) -> None:
    """SSRF rules for the webhook URL; input images are https URLs (SSRF rules) or keys of
    this app's uploads (which must exist)."""
    if body.webhook_url is not None:
        await gateway.urls.webhook(str(body.webhook_url), "body.webhook_url")
    for i, image in enumerate(body.input.images):
        field = f"body.input.images.{i}"
        if "://" in image:
            await gateway.urls.image(image, field)
        elif not await gateway.upstreams.storage.upload_exists(caller.app_id, image):
            raise ApiError(
                422,
                "unknown_upload",
                f"{field} is neither an https URL nor one of your uploads.",
                details=[{"field": field, "message": "no such upload", "type": "unknown_upload"}],
            )


@router.get("/jobs", response_model=JobPageOut)
async def list_jobs(
    caller: AppDep,
    uow: UowDep,
    job_status: Annotated[
        JobStatus | None, Query(alias="status", description="only jobs in this status")
    ] = None,
    user_id: Annotated[
        str | None, Query(pattern=USER_ID_PATTERN, description="only this end user's jobs")
    ] = None,
    model: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
    created_after: Annotated[
        datetime | None, Query(description="ISO 8601, inclusive (no offset = UTC)")
    ] = None,
    created_before: Annotated[
        datetime | None, Query(description="ISO 8601, exclusive (no offset = UTC)")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[
        str | None, Query(description="`next_cursor` of the previous page (opaque)")
    ] = None,
) -> JobPageOut:
    """The app's jobs, newest first. Outputs have `url: null`: no storage call per job, so
    the list stays cheap; `GET /v1/jobs/{id}` gives fresh presigned URLs."""
    filters = services.JobFilters(
        status=job_status,
        user_id=user_id,
        model=model,
        created_after=created_after,
        created_before=created_before,
    )
    return await services.list_jobs(uow.session, caller, filters, limit=limit, cursor=cursor)


@router.get("/jobs/{job_id}", response_model=JobOut)
async def get_job(job_id: str, caller: AppDep, gateway: GatewayDep, uow: UowDep) -> JobOut:
    return await services.get_job(uow.session, gateway.upstreams.storage, caller, _job_uuid(job_id))


@router.post("/jobs/{job_id}/cancel", status_code=status.HTTP_202_ACCEPTED, response_model=JobOut)
async def cancel_job(job_id: str, caller: AppDep, uow: UowDep) -> JobOut:
    job = await services.request_cancel(uow, caller, _job_uuid(job_id))
    await uow.commit()
    return services.render_job(job, None)


@router.get("/models", response_model=ModelListOut)
async def list_models(caller: AppDep, gateway: GatewayDep) -> ModelListOut:
    """The models this app may use (enabled ones), with this app's token price per output."""
    models = await gateway.catalog.models()
    prices = await gateway.prices.for_app(caller.app_id)
    return ModelListOut(
        models=[
            ModelOut(
                name=m.name,
                enabled=m.enabled,
                max_outputs=m.max_outputs,
                display_name=m.display_name,
                capabilities=list(m.capabilities),
                max_input_images=m.max_input_images,
                aspect_ratios=list(m.aspect_ratios),
                tokens_per_output=prices.get(m.name),
            )
            for m in models.values()
            if m.enabled
        ]
    )


async def known_user(gateway: Gateway, uow: UnitOfWork, caller: KeyOwner, user_id: str) -> None:
    """404 unless this app has named the end user (a job, a grant or a registration): another
    app's user of the same id is invisible, and reads never create users."""
    pair = (str(caller.app_id), user_id)
    if pair in gateway.known_users:
        return
    if not await EndUserRepository(uow.session).exists(caller.app_id, user_id):
        raise services.user_not_found()
    gateway.known_users.add(pair)


async def user_summary(
    gateway: Gateway, uow: UnitOfWork, caller: KeyOwner, user_id: str
) -> UserOut:
    body = await gateway.upstreams.billing.balance(caller.app_id, user_id)
    totals = await JobRepository(uow.session).user_totals(caller.app_id, user_id)
    jobs = JobTotalsOut(
        total=sum(n for n, _ in totals.values()),
        by_status={s: n for s, (n, _) in totals.items()},
        tokens_charged=sum(t for _, t in totals.values()),
    )
    return UserOut.model_validate({**body, "user_id": user_id, "jobs": jobs})


@router.get(
    "/users/{external_id}",
    response_model=UserOut,
    tags=["users"],
    responses={404: {"description": "this app never named the user (`user_not_found`)"}},
)
async def get_user(external_id: str, caller: AppDep, gateway: GatewayDep, uow: UowDep) -> UserOut:
    """The end user's balance, reserved tokens and free quota (from billing) and job totals
    (from the gateway's read-model). Users are per app: an id this app never named (by a job,
    a grant or `PUT /v1/users/{id}`) is 404 `user_not_found`."""
    user_id = path_user_id(external_id)
    await known_user(gateway, uow, caller, user_id)
    return await user_summary(gateway, uow, caller, user_id)


@router.put("/users/{external_id}", response_model=UserOut, tags=["users"])
async def register_user(
    external_id: str,
    caller: AppDep,
    gateway: GatewayDep,
    runtime: RuntimeDep,
    uow: UowDep,
    request_id: RequestIdDep,
) -> UserOut:
    """Register an end user before their first job (idempotent): the app's welcome grant is
    applied exactly once, whichever of this call, a job or a grant names the user first."""
    user_id = path_user_id(external_id)
    await first_use(runtime, gateway, caller, user_id, request_id)
    return await user_summary(gateway, uow, caller, user_id)


@router.post(
    "/users/{external_id}/tokens", status_code=status.HTTP_201_CREATED, response_model=GrantOut
)
async def grant_tokens(
    external_id: str,
    grant: GrantRequest,
    caller: AppDep,
    gateway: GatewayDep,
    runtime: RuntimeDep,
    request_id: RequestIdDep,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Grant tokens to an end user (recorded in the audit log)."""
    user_id = path_user_id(external_id)
    request = grant.model_dump(mode="json")

    async def apply() -> tuple[dict[str, Any], list[tuple[str, dict[str, Any]]]]:
        # Billing dedupes grants by the key as well, so a retry after a lost answer is safe.
        body = await gateway.upstreams.billing.grant(
            caller.app_id, user_id, grant.amount, grant.reason, billing_key(idempotency_key)
        )
        transfer_id = body.get("transfer_id")
        out = GrantOut.model_validate(
            {**body, "user_id": user_id, "transfer_id": str(transfer_id) if transfer_id else None}
        ).model_dump(mode="json")
        return out, [(user_id, {**request, **out})]

    return await idempotent_grants(
        runtime,
        gateway,
        caller,
        request_id,
        idempotency_key,
        idem.fingerprint("POST /v1/users/{id}/tokens", user_id, request),
        [user_id],
        apply,
    )


GrantCall = Callable[[], Awaitable[tuple[dict[str, Any], list[tuple[str, dict[str, Any]]]]]]


async def idempotent_grants(
    runtime: Runtime,
    gateway: Gateway,
    caller: KeyOwner,
    request_id: str,
    idempotency_key: str | None,
    request_hash: str,
    user_ids: list[str],
    apply: GrantCall,
) -> Response:
    """Grants with Idempotency-Key semantics: claim the key (or replay the first answer),
    create new end users (welcome grant), let billing apply the grants (`apply` returns the
    answer and one (user, audit `after`) per grant), then audit each grant and record the
    answer in one transaction. A failure gives the key back."""
    claim: services.Claim | None = None
    if idempotency_key is not None:
        claim = await claim_key(runtime, gateway, caller, idempotency_key, request_hash)
        if claim.is_replay:
            return JSONResponse(
                claim.replay_body,
                status_code=claim.replay_status or status.HTTP_201_CREATED,
                headers={"Idempotent-Replayed": "true"},
            )
    try:
        for user_id in dict.fromkeys(user_ids):
            await first_use(runtime, gateway, caller, user_id, request_id)
        out, audited = await apply()
        async with runtime.uow() as record_uow:
            for user_id, after in audited:
                audit.record(
                    record_uow.session,
                    actor=caller.actor,
                    request_id=request_id,
                    action="tokens.grant",
                    target_type="user",
                    target_id=user_id,
                    app_id=caller.app_id,
                    after=after,
                )
            if claim is not None:
                await services.record_idempotent_response(
                    record_uow, caller.app_id, claim, status=status.HTTP_201_CREATED, body=out
                )
            await record_uow.commit()
    except Exception:
        await release_key(runtime, caller, claim)
        raise
    return JSONResponse(out, status_code=status.HTTP_201_CREATED)
