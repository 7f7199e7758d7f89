"""Public API for apps: `/v1/*`, authenticated by `X-API-Key`."""

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Header, Response, status
from genhub_platform.deps import UowDep

from genhub_gateway import services
from genhub_gateway.handlers.deps import AppDep, GatewayDep, UserIdDep, path_user_id
from genhub_gateway.schemas import (
    GenerateRequest,
    GrantOut,
    GrantRequest,
    JobAccepted,
    JobOut,
    ModelListOut,
    ModelOut,
    UserBalanceOut,
)

router = APIRouter(prefix="/v1", tags=["public"])

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        description="repeat a request safely: the same key returns the first result",
    ),
]


def _job_uuid(job_id: str) -> UUID:
    try:
        return UUID(job_id)
    except ValueError:
        raise services.job_not_found() from None


@router.post("/generate", status_code=status.HTTP_202_ACCEPTED, response_model=JobAccepted)
async def generate(
    body: GenerateRequest,
    caller: AppDep,
    user_id: UserIdDep,
    gateway: GatewayDep,
    uow: UowDep,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> JobAccepted:
    job, created = await services.submit_job(
        uow, gateway.catalog, caller, user_id, body, idempotency_key
    )
    if created:
        await uow.commit()
    else:
        response.headers["Idempotent-Replayed"] = "true"
    response.headers["Location"] = f"/v1/jobs/{job.job_id}"
    return JobAccepted(job_id=job.job_id, status=job.status)


@router.get("/jobs/{job_id}", response_model=JobOut)
async def get_job(job_id: str, caller: AppDep, gateway: GatewayDep, uow: UowDep) -> JobOut:
    return await services.get_job(uow.session, gateway.upstreams.storage, caller, _job_uuid(job_id))


@router.post("/jobs/{job_id}/cancel", status_code=status.HTTP_202_ACCEPTED, response_model=JobOut)
async def cancel_job(job_id: str, caller: AppDep, uow: UowDep) -> JobOut:
    job = await services.request_cancel(uow, caller, _job_uuid(job_id))
    await uow.commit()
    return services.render_job(job, None)


@router.get("/models", response_model=ModelListOut)
async def list_models(_: AppDep, gateway: GatewayDep) -> ModelListOut:
    models = await gateway.catalog.models()
    return ModelListOut(
        models=[
            ModelOut(name=m.name, enabled=m.enabled, max_outputs=m.max_outputs)
            for m in models.values()
        ]
    )


@router.get("/users/{external_id}", response_model=UserBalanceOut)
async def get_user(external_id: str, caller: AppDep, gateway: GatewayDep) -> UserBalanceOut:
    user_id = path_user_id(external_id)
    body = await gateway.upstreams.billing.balance(caller.app_id, user_id)
    return UserBalanceOut.model_validate({**body, "user_id": user_id})


@router.post(
    "/users/{external_id}/tokens", status_code=status.HTTP_201_CREATED, response_model=GrantOut
)
async def grant_tokens(
    external_id: str,
    grant: GrantRequest,
    caller: AppDep,
    gateway: GatewayDep,
    idempotency_key: IdempotencyKey = None,
) -> GrantOut:
    user_id = path_user_id(external_id)
    body = await gateway.upstreams.billing.grant(
        caller.app_id, user_id, grant.amount, grant.reason, idempotency_key
    )
    transfer_id = body.get("transfer_id")
    return GrantOut.model_validate(
        {**body, "user_id": user_id, "transfer_id": str(transfer_id) if transfer_id else None}
    )
