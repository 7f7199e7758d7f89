"""Public API faces of resources other services own (docs/internal-apis.md): uploads and
files (storage), webhook endpoints and deliveries (notifier), batch grants and the ledger
(billing). Each handler authenticates, scopes the call to the caller's app, and forwards; the
owner's 4xx answers come back unchanged in code and field details."""

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Header, Path, Query, Request, Response, status
from fastapi.responses import JSONResponse, RedirectResponse
from genhub_platform.deps import UowDep
from genhub_platform.errors import ApiError

from genhub_gateway import services
from genhub_gateway.adapters.repositories import JobRepository
from genhub_gateway.domain import idempotency as idem
from genhub_gateway.domain.uploads import InvalidUpload, read_upload
from genhub_gateway.handlers.deps import (
    AppDep,
    GatewayDep,
    RequestIdDep,
    RuntimeDep,
    path_user_id,
)
from genhub_gateway.handlers.http import IdempotencyKey, billing_key, idempotent_grants, known_user
from genhub_gateway.schemas import (
    BatchGrantOut,
    BatchGrantRequest,
    ReplayRequest,
    UploadOut,
    WebhookEndpointPatch,
    WebhookEndpointRequest,
)

router = APIRouter(prefix="/v1")

# The notifier's delivery ids are opaque strings (not UUIDs).
DeliveryId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]


def _answer(code: int, body: dict[str, Any]) -> Response:
    if not body and code == status.HTTP_204_NO_CONTENT:
        return Response(status_code=code)
    return JSONResponse(body, status_code=code)


# --- storage: uploads and files -----------------------------------------------------------------


@router.post(
    "/uploads",
    tags=["uploads"],
    status_code=status.HTTP_201_CREATED,
    response_model=UploadOut,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {"file": {"type": "string", "format": "binary"}},
                        "required": ["file"],
                    }
                },
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
                "image/png": {"schema": {"type": "string", "format": "binary"}},
            },
        }
    },
)
async def create_upload(
    request: Request,
    caller: AppDep,
    gateway: GatewayDep,
    filename: Annotated[str | None, Query(max_length=200)] = None,
    x_user_id: Annotated[
        str | None,
        Header(alias="X-User-ID", description="optional: the end user it belongs to (erasure)"),
    ] = None,
) -> Response:
    """Upload an input image (PNG, JPEG or WEBP) as a raw body or as the multipart field
    `file`; use the returned `key` in `input.images`. Bodies over the upload limit are 413."""
    user_id = path_user_id(x_user_id) if x_user_id else None
    body = await request.body()
    try:
        upload = read_upload(request.headers.get("content-type"), body)
    except InvalidUpload as exc:
        raise ApiError(
            422,
            "invalid_upload",
            f"The upload could not be read: {exc}.",
            details=[{"field": "body", "message": str(exc), "type": "invalid_upload"}],
        ) from None
    code, answer = await gateway.upstreams.storage.upload(
        caller.app_id, upload.data, filename or upload.filename, user_id
    )
    return JSONResponse(answer, status_code=code)


@router.get("/uploads/{key:path}", tags=["uploads"], response_model=UploadOut)
async def get_upload(key: str, caller: AppDep, gateway: GatewayDep) -> dict[str, Any]:
    """One of this app's uploads (`404 upload_not_found` for any other key)."""
    return await gateway.upstreams.storage.get_upload(caller.app_id, key)


@router.get(
    "/files/{job_id}/{index}",
    tags=["jobs"],
    status_code=status.HTTP_302_FOUND,
    response_class=RedirectResponse,
    responses={
        302: {
            "description": "redirect to a short-lived presigned URL of the output",
            "headers": {"Location": {"schema": {"type": "string"}}},
        },
        404: {"description": "`job_not_found` or `not_found` (no such output)"},
        410: {"description": "`expired`: the output's retention has ended"},
    },
)
async def get_file(
    job_id: str,
    index: int,
    caller: AppDep,
    gateway: GatewayDep,
    uow: UowDep,
    download: Annotated[
        bool, Query(description="1: the URL answers with Content-Disposition: attachment")
    ] = False,
    filename: Annotated[str | None, Query(max_length=200, pattern=r"^[\w.() -]+$")] = None,
) -> RedirectResponse:
    """An output image: 302 to a fresh presigned URL (never cached)."""
    if index < 0:
        raise ApiError(404, "not_found", "No such output.")
    job = await JobRepository(uow.session).get(caller.app_id, _job_uuid(job_id))
    if job is None:
        raise services.job_not_found()
    answer = await gateway.upstreams.storage.file_url(
        caller.app_id, job.job_id, index, download=download, filename=filename
    )
    url = answer.get("url")
    if not isinstance(url, str) or not url:
        raise ApiError(410, "expired", "This output is no longer available.")
    return RedirectResponse(url, status_code=302, headers={"Cache-Control": "no-store"})


def _job_uuid(job_id: str) -> UUID:
    try:
        return UUID(job_id)
    except ValueError:
        raise services.job_not_found() from None


# --- notifier: webhook endpoints and deliveries -------------------------------------------------


def _notifier_path(caller: AppDep, rest: str) -> str:
    return f"/internal/apps/{caller.app_id}/{rest}"


@router.post("/webhooks/endpoints", tags=["webhooks"], status_code=status.HTTP_201_CREATED)
async def create_webhook_endpoint(
    body: WebhookEndpointRequest, caller: AppDep, gateway: GatewayDep
) -> Response:
    """A webhook endpoint (optionally for some event types only); its signing secret is in the
    answer, once."""
    await gateway.urls.webhook(str(body.url), "body.url")
    payload = body.model_dump(mode="json")
    if payload["description"] is None:
        del payload["description"]  # absent, not null (event_types: null means "all")
    code, answer = await gateway.upstreams.notifier.forward(
        "POST", _notifier_path(caller, "endpoints"), json=payload
    )
    return _answer(code, answer)


@router.get("/webhooks/endpoints", tags=["webhooks"])
async def list_webhook_endpoints(caller: AppDep, gateway: GatewayDep) -> Response:
    return _answer(
        *await gateway.upstreams.notifier.forward("GET", _notifier_path(caller, "endpoints"))
    )


@router.get("/webhooks/endpoints/{endpoint_id}", tags=["webhooks"])
async def get_webhook_endpoint(endpoint_id: UUID, caller: AppDep, gateway: GatewayDep) -> Response:
    return _answer(
        *await gateway.upstreams.notifier.forward(
            "GET", _notifier_path(caller, f"endpoints/{endpoint_id}")
        )
    )


@router.patch("/webhooks/endpoints/{endpoint_id}", tags=["webhooks"])
async def update_webhook_endpoint(
    endpoint_id: UUID, body: WebhookEndpointPatch, caller: AppDep, gateway: GatewayDep
) -> Response:
    if body.url is not None:
        await gateway.urls.webhook(str(body.url), "body.url")
    return _answer(
        *await gateway.upstreams.notifier.forward(
            "PATCH",
            _notifier_path(caller, f"endpoints/{endpoint_id}"),
            json=body.model_dump(mode="json", exclude_unset=True),
        )
    )


@router.delete("/webhooks/endpoints/{endpoint_id}", tags=["webhooks"])
async def delete_webhook_endpoint(
    endpoint_id: UUID, caller: AppDep, gateway: GatewayDep
) -> Response:
    return _answer(
        *await gateway.upstreams.notifier.forward(
            "DELETE", _notifier_path(caller, f"endpoints/{endpoint_id}")
        )
    )


@router.post("/webhooks/endpoints/{endpoint_id}/rotate-secret", tags=["webhooks"])
async def rotate_webhook_secret(endpoint_id: UUID, caller: AppDep, gateway: GatewayDep) -> Response:
    """A new signing secret; the old one stays valid for the grace period (both signatures)."""
    return _answer(
        *await gateway.upstreams.notifier.forward(
            "POST", _notifier_path(caller, f"endpoints/{endpoint_id}/rotate-secret")
        )
    )


@router.get("/webhooks/deliveries", tags=["webhooks"])
async def list_webhook_deliveries(
    caller: AppDep,
    gateway: GatewayDep,
    delivery_status: Annotated[str | None, Query(alias="status", max_length=32)] = None,
    job_id: UUID | None = None,
    endpoint_id: UUID | None = None,
    since: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    """Delivery attempts of this app's webhooks, newest first, with cursor pagination."""
    params = {
        "status": delivery_status,
        "job_id": str(job_id) if job_id else None,
        "endpoint_id": str(endpoint_id) if endpoint_id else None,
        "since": since.isoformat() if since else None,
        "limit": limit,
        "cursor": cursor,
    }
    return _answer(
        *await gateway.upstreams.notifier.forward(
            "GET", _notifier_path(caller, "deliveries"), params=params
        )
    )


@router.get("/webhooks/deliveries/{delivery_id}", tags=["webhooks"])
async def get_webhook_delivery(
    delivery_id: DeliveryId, caller: AppDep, gateway: GatewayDep
) -> Response:
    """One delivery with its attempts."""
    return _answer(
        *await gateway.upstreams.notifier.forward(
            "GET", _notifier_path(caller, f"deliveries/{delivery_id}")
        )
    )


@router.post("/webhooks/deliveries/replay", tags=["webhooks"], status_code=status.HTTP_202_ACCEPTED)
async def replay_webhook_deliveries(
    body: ReplayRequest, caller: AppDep, gateway: GatewayDep
) -> Response:
    """Send again every delivery in `status` (default failed) since a time."""
    return _answer(
        *await gateway.upstreams.notifier.forward(
            "POST",
            _notifier_path(caller, "deliveries/replay"),
            json=body.model_dump(mode="json", exclude_none=True),
        )
    )


@router.post(
    "/webhooks/deliveries/{delivery_id}/replay",
    tags=["webhooks"],
    status_code=status.HTTP_202_ACCEPTED,
)
async def replay_webhook_delivery(
    delivery_id: DeliveryId, caller: AppDep, gateway: GatewayDep
) -> Response:
    """Send one delivery again (same `webhook-id`, so receivers can dedupe)."""
    return _answer(
        *await gateway.upstreams.notifier.forward(
            "POST", _notifier_path(caller, f"deliveries/{delivery_id}/replay")
        )
    )


# --- billing: batch grants and the ledger -------------------------------------------------------


@router.post(
    "/users/tokens/batch",
    tags=["users"],
    status_code=status.HTTP_201_CREATED,
    response_model=BatchGrantOut,
)
async def grant_tokens_batch(
    body: BatchGrantRequest,
    caller: AppDep,
    gateway: GatewayDep,
    runtime: RuntimeDep,
    request_id: RequestIdDep,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Grant tokens to many end users at once: all or nothing (one bad row → 422, none
    applied). Every grant is in the audit log."""
    request = body.model_dump(mode="json")
    grants: list[dict[str, Any]] = request["grants"]

    async def apply() -> tuple[dict[str, Any], list[tuple[str, dict[str, Any]]]]:
        # The app's key (namespaced) also lets billing dedupe a retry after a lost answer.
        answer = await gateway.upstreams.billing.grant_batch(
            caller.app_id, grants, billing_key(idempotency_key)
        )
        results = answer.get("results")
        if not isinstance(results, list):
            raise ApiError(502, "upstream_error", "Unexpected answer from billing: no results.")
        out = BatchGrantOut.model_validate({"results": results}).model_dump(mode="json")
        audited = [
            (grant["user_id"], {**grant, **result, "batch": True})
            for grant, result in zip(grants, out["results"], strict=False)
        ]
        return out, audited

    return await idempotent_grants(
        runtime,
        gateway,
        caller,
        request_id,
        idempotency_key,
        idem.fingerprint("POST /v1/users/tokens/batch", "", request),
        [g["user_id"] for g in grants],
        apply,
    )


@router.get("/users/{external_id}/ledger", tags=["users"])
async def get_ledger(
    external_id: str,
    caller: AppDep,
    gateway: GatewayDep,
    uow: UowDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> dict[str, Any]:
    """The end user's token history (grants, holds, charges, refunds), newest first; 404
    `user_not_found` for an id this app never named."""
    user_id = path_user_id(external_id)
    await known_user(gateway, uow, caller, user_id)
    return await gateway.upstreams.billing.ledger(caller.app_id, user_id, limit, cursor)
